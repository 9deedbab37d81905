"""Inverse folding: RNA sequences whose ViennaRNA MFE structure is a target (``genesis-rna design``).

Why this recipe. ViennaRNA's own designer (``RNAinverse``) starts from random sequences and walks on MFE
distance; sequences found that way fold correctly but look nothing like real RNA. Here

* paired positions start as canonical pairs (GC/CG/AU/UA/GU/UG, GC-rich) and unpaired ones are sampled from the
  language model given the pairs (or A-rich without a model), which puts the start near a folding sequence;
* a move changes one site: a loop base, or a whole base pair (both partners together, so every target pair
  stays a valid pair); sites are chosen in proportion to how wrong they are (per-position ensemble defect, or
  MFE mismatch), and the new letters are drawn from the LM's masked marginals at the site times a prior
  (``--lm-weight`` 0 turns the LM off); several sites are proposed at once and scored in one batched forward;
* candidates are scored by ViennaRNA's normalised ensemble defect (``fc.ensemble_defect(target)`` after
  ``fc.pf()``), accepted by simulated annealing, and the walk stops as soon as the MFE structure equals the
  target. For long targets (``objective='auto'`` above 150 nt) the partition function is too slow to run at
  every step, so the cost is the MFE base-pair distance plus the energy gap ``E(target) - MFE`` instead.

Each design reports its sequence, MFE structure, solved flag, ensemble defect, GC content, the LM's
pseudo-log-likelihood (naturalness: sum over positions of log p(base | rest), all L masked forwards batched) and
the time it took.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, StructureError
from ..structure.pairs import dotbracket_to_partners

PAIRS = ("GC", "CG", "AU", "UA", "GU", "UG")
PAIR_PRIOR = np.array([0.3, 0.3, 0.15, 0.15, 0.05, 0.05])
BASES = "ACGU"
LOOP_PRIOR = np.array([0.5, 0.15, 0.1, 0.25])  # A-rich loops: A stacks and rarely pairs, as in natural loops
OBJECTIVES = ("auto", "defect", "mfe")
AUTO_DEFECT_MAX_LEN = 150
MIN_HAIRPIN = 3


@dataclass
class Design:
    """One designed sequence and how good it is (see the module docstring)."""

    id: str
    target: str
    sequence: str
    mfe_structure: str
    mfe: float
    solved: bool
    ensemble_defect: float
    gc_content: float
    pseudo_log_likelihood: float | None
    iterations: int
    time_s: float


# --------------------------------------------------------------------------------------------- targets
def parse_target(structure: str, record: str | None = None) -> np.ndarray:
    """Partner array of a nested dot-bracket target; errors for anything ViennaRNA cannot design.

    Only ``.()`` are accepted (ViennaRNA's MFE structures are nested), brackets must balance, and every hairpin
    loop needs at least 3 unpaired bases (ViennaRNA's minimum), or no sequence could fold into the target.
    """
    text = structure.strip()
    if not text:
        raise StructureError("empty target structure", record=record)
    bad = next((k for k, c in enumerate(text) if c not in ".()"), None)
    if bad is not None:
        raise StructureError(f"character {text[bad]!r} in the target: only '.', '(' and ')' can be designed "
                             "(ViennaRNA folds nested structures, no pseudoknots)", record=record, position=bad + 1)
    try:
        partner = dotbracket_to_partners(text)
    except StructureError as err:
        raise err.with_context(record=record) from None
    for i, j in enumerate(partner):
        if j > i and j - i - 1 < MIN_HAIRPIN:
            raise StructureError(f"pair ({i + 1}, {j + 1}) closes a hairpin of {j - i - 1} nt; ViennaRNA needs at "
                                 f"least {MIN_HAIRPIN}", record=record, position=i + 1)
    return partner


def read_targets(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, structure)`` from a file: one dot-bracket per line, optionally ``id structure``, or ``>id`` lines
    before each structure (a dot-bracket FASTA); ``#`` comments and blank lines skipped."""
    from ..io._text import numbered_lines

    out: list[tuple[str, str]] = []
    pending: str | None = None
    for lineno, line in numbered_lines(path, "target structure"):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text.startswith(">"):
            pending = text[1:].split()[0] if text[1:].split() else None
            continue
        fields = text.split()
        if len(fields) > 2:
            raise StructureError("expected 'structure' or 'id structure'", path=path, line=lineno)
        rid = fields[0] if len(fields) == 2 else pending or f"target_{len(out) + 1}"
        try:
            parse_target(fields[-1], record=rid)
        except StructureError as err:
            raise err.with_context(path=path, line=lineno) from None
        out.append((rid, fields[-1]))
        pending = None
    if not out:
        raise InputError("no target structures in file", path=path)
    return out


# --------------------------------------------------------------------------------------------- scoring
class _Evaluator:
    """ViennaRNA cost of a sequence for one target: ``(cost, mfe_structure, per-position badness)``."""

    def __init__(self, target: str, partner: np.ndarray, objective: str) -> None:
        self.target = target
        self.partner = partner
        self.objective = objective
        self.paired = partner >= 0
        self.idx = np.arange(len(target))

    def __call__(self, seq: str) -> tuple[float, str, np.ndarray]:
        import RNA

        fc = RNA.fold_compound(seq)
        ss, mfe = fc.mfe()
        wrong = np.fromiter((a != b for a, b in zip(ss, self.target, strict=True)), bool, len(seq))
        if self.objective == "mfe":
            gap = fc.eval_structure(self.target) - mfe
            return (RNA.bp_distance(ss, self.target) + 0.1 * gap) / len(seq), ss, wrong.astype(float)
        fc.exp_params_rescale(mfe)
        fc.pf()
        probs = np.array(fc.bpp())[1:, 1:]
        probs = probs + probs.T
        unpaired = 1.0 - probs.sum(axis=1)
        correct = np.where(self.paired, probs[self.idx, np.maximum(self.partner, 0)], unpaired)
        return float(fc.ensemble_defect(self.target)), ss, (1.0 - correct) + wrong


def _sites(partner: np.ndarray) -> list[tuple[int, ...]]:
    """Mutation sites: ``(i,)`` for an unpaired position, ``(i, j)`` (i < j) for a target pair."""
    return [(i,) if j < 0 else (i, int(j)) for i, j in enumerate(partner) if j < 0 or j > i]


def _site_weights(sites: Sequence[tuple[int, ...]], badness: np.ndarray) -> np.ndarray:
    w = np.array([badness[list(s)].sum() for s in sites]) + 0.02
    return w / w.sum()


def _options(site: tuple[int, ...], seq: list[str]) -> tuple[list[str], np.ndarray]:
    """Letters a site may take (not its current ones) and their prior probabilities."""
    if len(site) == 1:
        keep = [k for k, b in enumerate(BASES) if b != seq[site[0]]]
        return [BASES[k] for k in keep], LOOP_PRIOR[keep]
    current = seq[site[0]] + seq[site[1]]
    keep = [k for k, p in enumerate(PAIRS) if p != current]
    return [PAIRS[k] for k in keep], PAIR_PRIOR[keep]


def _lm_logp(options: list[str], logp: np.ndarray) -> np.ndarray:
    """LM log-probability of each option from the ``[len(site), 4]`` masked log-probs at the site."""
    return np.array([sum(logp[k, BASES.index(c)] for k, c in enumerate(opt)) for opt in options])


class _Proposer:
    """Draws new letters for sites from ``prior * p_LM^lm_weight``; the LM part is one batched forward.

    A site's masked marginals change little when some other site mutates, and the forward costs more than the
    ViennaRNA evaluations, so they are cached per site and recomputed once ``refresh`` moves have been accepted
    since (``refresh=1``: always fresh).
    """

    def __init__(self, model, lm_weight: float, rng: np.random.Generator, device: str, dtype: str,
                 refresh: int = 8) -> None:
        self.model = model if lm_weight > 0 else None
        self.lm_weight = lm_weight
        self.rng = rng
        self.device, self.dtype = device, dtype
        self.refresh = refresh
        self.accepted = 0
        self.cache: dict[tuple[int, ...], tuple[np.ndarray, int]] = {}

    def lm(self, seq: str, groups: Sequence[Sequence[int]]) -> list[np.ndarray | None]:
        if self.model is None:
            return [None] * len(groups)
        from .mutations import masked_log_probs

        keys = [tuple(g) for g in groups]
        todo = [k for k in dict.fromkeys(keys)
                if k not in self.cache or self.accepted - self.cache[k][1] >= self.refresh]
        if todo:
            fresh = masked_log_probs(self.model, [(seq, list(k)) for k in todo], device=self.device,
                                     dtype=self.dtype)
            self.cache.update({k: (v, self.accepted) for k, v in zip(todo, fresh, strict=True)})
        return [self.cache[k][0] for k in keys]

    def draw(self, options: list[str], prior: np.ndarray, logp: np.ndarray | None) -> str:
        logq = np.log(prior)
        if logp is not None:
            logq = logq + self.lm_weight * _lm_logp(options, logp)
        q = np.exp(logq - logq.max())
        return options[self.rng.choice(len(options), p=q / q.sum())]


def _initial(partner: np.ndarray, proposer: _Proposer) -> list[str]:
    """Pairs from the pair prior; loop bases from the LM given the pairs (all loops masked at once) or A-rich."""
    rng = proposer.rng
    seq = ["A"] * len(partner)
    for i, j in enumerate(partner):
        if j > i:
            seq[i], seq[j] = PAIRS[rng.choice(len(PAIRS), p=PAIR_PRIOR)]
    loops = [i for i, j in enumerate(partner) if j < 0]
    logp = proposer.lm("".join(seq), [loops])[0] if loops else None
    for k, i in enumerate(loops):
        seq[i] = proposer.draw(list(BASES), LOOP_PRIOR, None if logp is None else logp[k : k + 1])
    return seq


# --------------------------------------------------------------------------------------------- the walk
def design_one(
    target: str,
    *,
    model=None,
    seed: int = 0,
    max_iter: int = 2000,
    time_limit: float | None = 60.0,
    objective: str = "auto",
    lm_weight: float = 1.0,
    proposals: int = 4,
    device: str = "cpu",
    dtype: str = "fp32",
    design_id: str = "design_1",
    naturalness: bool = True,
    defect: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> Design:
    """One design for ``target`` (dot-bracket): see the module docstring for the method.

    ``time_limit`` is measured with ``clock`` (wall time by default; benchmarks on shared machines pass
    ``time.process_time``). ``naturalness`` / ``defect`` False skip the PLL / the final partition function.
    """
    start = clock()
    partner = parse_target(target)
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    if objective == "auto":
        objective = "defect" if len(target) <= AUTO_DEFECT_MAX_LEN else "mfe"
    rng = np.random.default_rng(seed)
    proposer = _Proposer(model, lm_weight, rng, device, dtype)
    evaluate = _Evaluator(target, partner, objective)
    sites = _sites(partner)
    seq = _initial(partner, proposer)
    cost, ss, badness = evaluate("".join(seq))
    best = (cost, "".join(seq), ss)
    temperature0 = 1.0 / len(target)
    iteration = 0
    while ss != target and iteration < max_iter:
        if time_limit is not None and clock() - start > time_limit:
            break
        iteration += 1
        weights = _site_weights(sites, badness)
        chosen = rng.choice(len(sites), size=min(proposals, len(sites)), replace=False, p=weights)
        groups = [sites[c] for c in chosen]
        logps = proposer.lm("".join(seq), groups)
        candidates = []
        for site, logp in zip(groups, logps, strict=True):
            options, prior = _options(site, seq)
            new = list(seq)
            for pos, letter in zip(site, proposer.draw(options, prior, logp), strict=True):
                new[pos] = letter
            candidates.append((evaluate("".join(new)), new))
        (c_cost, c_ss, c_bad), c_seq = min(candidates, key=lambda c: c[0][0])
        temperature = temperature0 * max(1e-3, 1.0 - iteration / max_iter)
        if c_ss == target or c_cost <= cost or rng.random() < math.exp(-(c_cost - cost) / temperature):
            seq, cost, ss, badness = c_seq, c_cost, c_ss, c_bad
            proposer.accepted += 1
            if cost < best[0] or ss == target:
                best = (cost, "".join(seq), ss)
    final = "".join(seq) if ss == target else best[1]
    elapsed = clock() - start  # the walk's time; the report below is not part of the search
    return _report(design_id, target, final, model if naturalness else None, iteration, elapsed, device, dtype,
                   defect)


def _report(design_id: str, target: str, seq: str, model, iterations: int, elapsed: float, device: str,
            dtype: str, with_defect: bool = True) -> Design:
    import RNA

    fc = RNA.fold_compound(seq)
    ss, mfe = fc.mfe()
    defect = float("nan")
    if with_defect:
        fc.exp_params_rescale(mfe)
        fc.pf()
        defect = float(fc.ensemble_defect(target))
    pll = pseudo_log_likelihood(model, seq, device=device, dtype=dtype) if model is not None else None
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    return Design(design_id, target, seq, ss, float(mfe), ss == target, defect, gc, pll, iterations, elapsed)


def pseudo_log_likelihood(model, sequence: str, *, device: str = "cpu", dtype: str = "fp32") -> float:
    """Sum over positions of log p(base_i | sequence with i masked): L masked forwards in a few batches."""
    from .mutations import masked_log_probs

    rows = masked_log_probs(model, [(sequence, [i]) for i in range(len(sequence))], device=device, dtype=dtype)
    return float(sum(r[0, BASES.index(c)] for r, c in zip(rows, sequence, strict=True) if c in BASES))


def design(
    target: str,
    n: int = 10,
    *,
    model=None,
    seed: int = 0,
    target_id: str = "target",
    **kwargs,
) -> list[Design]:
    """``n`` independent designs for ``target`` (seeds ``seed .. seed + n - 1``); keywords go to :func:`design_one`."""
    parse_target(target, record=target_id)
    if n < 1:
        raise InputError(f"number of designs must be at least 1, got {n}")
    return [design_one(target, model=model, seed=seed + k, design_id=f"{target_id}_design{k + 1}", **kwargs)
            for k in range(n)]


def write_designs(designs: Sequence[Design], path: str | os.PathLike) -> None:
    """FASTA (``key=value`` report in each header) or, for a ``.csv`` name, a CSV; written atomically."""
    import csv

    from ..io._text import open_output, strip_gz

    fields = ["id", "sequence", "target", "mfe_structure", "mfe", "solved", "ensemble_defect", "gc_content",
              "pseudo_log_likelihood", "iterations", "time_s"]
    rows = [[d.id, d.sequence, d.target, d.mfe_structure, f"{d.mfe:.2f}", int(d.solved), f"{d.ensemble_defect:.4f}",
             f"{d.gc_content:.3f}", "" if d.pseudo_log_likelihood is None else f"{d.pseudo_log_likelihood:.3f}",
             d.iterations, f"{d.time_s:.3f}"] for d in designs]
    with open_output(path) as fh:
        if strip_gz(path).lower().endswith(".csv"):
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(fields)
            writer.writerows(rows)
            return
        for row in rows:
            desc = " ".join(f"{k}={v}" for k, v in zip(fields[2:], row[2:], strict=True) if v != "")
            fh.write(f">{row[0]} {desc}\n{row[1]}\n")


__all__ = ["Design", "PAIRS", "OBJECTIVES", "parse_target", "read_targets", "design_one", "design",
           "pseudo_log_likelihood", "write_designs"]
