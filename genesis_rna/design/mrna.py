"""mRNA codon optimisation: synonymous codons that trade folding stability against codon adaptation.

The objective follows LinearDesign (Zhang et al., Nature 2023), which minimises ``MFE + lambda * (-sum log w)``:

    J(design) = MFE(utr5 + cds + utr3)  -  lambda * sum_i ln w(codon_i)  -  lm_weight * PLL(mRNA)

* MFE: ViennaRNA minimum free energy (kcal/mol) of the whole mRNA; lower = more stable = longer-lived mRNA.
* w: relative adaptiveness of a codon (Sharp & Li 1987): its usage fraction over the largest fraction among its
  synonyms, from a codon-usage table shipped in ``genesis_rna/codon_tables/`` (source in each file's header).
  The sum runs over the codons that enter CAI (Met, Trp and stops excluded), so ``sum ln w = n * ln CAI``.
* PLL: the genesis-rna model's pseudo-log-likelihood of the mRNA (nats), optional (``lm_weight`` 0 = off).

LinearDesign solves the MFE+CAI problem exactly with lattice parsing; this module uses a practical search
instead: a greedy codon-by-codon sweep and simulated annealing with random synonymous swaps, both scored by
ViennaRNA on a local window around the changed codon (a full fold of a 1,000 nt mRNA costs ~0.7 s, a 150 nt
window ~5 ms), and a full-length fold to score and pick the finished designs. The LM term is applied when
ranking the finished candidates (a PLL costs several forward passes, too many for every annealing step).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, FormatError, SequenceError
from ..vocab import normalise

__all__ = [
    "GENETIC_CODE", "ORGANISMS", "CodonUsage", "MRNADesign", "load_codon_usage", "cai", "gc_content", "mfe",
    "check_protein", "protein_from_cds", "translate", "most_frequent_cds", "random_cds", "evaluate",
    "optimize_mrna", "lm_pseudo_log_likelihood",
]

# Standard genetic code (NCBI table 1), codons ordered UCAG x UCAG x UCAG. Written out here rather than taken
# from Biopython so that the tests can use Biopython's translate as an independent reference.
_BASES = "UCAG"
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
GENETIC_CODE: dict[str, str] = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES) for j, b in enumerate(_BASES) for k, c in enumerate(_BASES)
}
AMINO_ACIDS = frozenset("ACDEFGHIKLMNPQRSTVWY")
#: amino acids left out of CAI (Sharp & Li 1987): a single codon (Met, Trp) carries no choice; stops are not
#: amino acids.
CAI_EXCLUDED = frozenset("MW*")
#: floor on w so that a codon with usage 0 in a table gives a large finite penalty rather than log(0).
W_FLOOR = 1e-3
ORGANISMS = {"human": "human.tsv", "ecoli": "ecoli.tsv", "yeast": "yeast.tsv"}


# ------------------------------------------------------------------------------------------ codon usage
@dataclass
class CodonUsage:
    """A codon-usage table: each codon's fraction among its synonyms, and the derived weights ``w``.

    ``synonyms[aa]`` lists the codons of ``aa`` best first (highest fraction; ties broken alphabetically), so
    ``synonyms[aa][0]`` is the most frequent codon.
    """

    name: str
    fraction: dict[str, float]
    source: str = ""
    weight: dict[str, float] = field(init=False)
    synonyms: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.synonyms = {}
        for codon in sorted(GENETIC_CODE):
            self.synonyms.setdefault(GENETIC_CODE[codon], []).append(codon)
        self.weight = {}
        for aa, codons in self.synonyms.items():
            codons.sort(key=lambda c: (-self.fraction[c], c))
            top = self.fraction[codons[0]]
            if top <= 0:
                raise FormatError(f"codon table {self.name!r}: every codon of {aa!r} has usage 0")
            for c in codons:
                self.weight[c] = max(self.fraction[c] / top, W_FLOOR)

    def cost(self, codon: str) -> float:
        """``-ln w`` of a codon, 0 for the codons CAI leaves out (Met, Trp, stops)."""
        return 0.0 if GENETIC_CODE[codon] in CAI_EXCLUDED else -math.log(self.weight[codon])

    @classmethod
    def from_tsv(cls, path: str | os.PathLike, name: str | None = None) -> CodonUsage:
        """Read ``codon<TAB>amino_acid<TAB>fraction`` lines ('#' comments kept as ``source``); all 64 codons."""
        text = Path(path).read_text(encoding="utf-8")
        return cls._parse(text, name or Path(path).stem, path=path)

    @classmethod
    def _parse(cls, text: str, name: str, path: str | os.PathLike | None = None) -> CodonUsage:
        fraction: dict[str, float] = {}
        comments = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.startswith("#"):
                comments.append(line[1:].strip())
                continue
            fields = line.split()
            if not fields or fields[0] == "codon":
                continue
            if len(fields) != 3:
                raise FormatError("expected 3 columns: codon, amino_acid, fraction", path=path, line=lineno)
            codon, aa, value = fields[0].upper().replace("T", "U"), fields[1], fields[2]
            if codon not in GENETIC_CODE or GENETIC_CODE[codon] != aa:
                raise FormatError(f"codon {codon!r} does not code for {aa!r} in the standard genetic code",
                                  path=path, line=lineno)
            try:
                fraction[codon] = float(value)
            except ValueError:
                raise FormatError(f"usage {value!r} is not a number", path=path, line=lineno) from None
            if not fraction[codon] >= 0:
                raise FormatError(f"usage {value!r} is negative", path=path, line=lineno)
        missing = sorted(set(GENETIC_CODE) - set(fraction))
        if missing:
            raise FormatError(f"codon table lacks {len(missing)} codon(s), e.g. {missing[0]}", path=path)
        return cls(name, fraction, "\n".join(comments))


def load_codon_usage(organism: str | os.PathLike = "human") -> CodonUsage:
    """The shipped table of ``organism`` (human, ecoli, yeast) or a TSV file in the same format."""
    if str(organism) in ORGANISMS:
        text = resources.files("genesis_rna").joinpath("codon_tables", ORGANISMS[str(organism)]).read_text("utf-8")
        return CodonUsage._parse(text, str(organism))
    if os.path.isfile(organism):
        return CodonUsage.from_tsv(organism)
    raise ConfigError(f"unknown organism {str(organism)!r}: choose {', '.join(ORGANISMS)} or give a codon-table TSV")


# ------------------------------------------------------------------------------------------ metrics
def codons_of(cds: str) -> list[str]:
    return [cds[k:k + 3] for k in range(0, len(cds) - len(cds) % 3, 3)]


def translate(cds: str) -> str:
    """Protein of an RNA CDS in the standard code (stops as ``*``)."""
    return "".join(GENETIC_CODE[c] for c in codons_of(cds))


def cai(cds: str, usage: CodonUsage) -> float:
    """Codon adaptation index (Sharp & Li 1987): geometric mean of w over codons other than Met, Trp, stop.

    NaN when no codon counts (a CDS of only Met/Trp/stop).
    """
    costs = [usage.cost(c) for c in codons_of(cds) if GENETIC_CODE[c] not in CAI_EXCLUDED]
    return math.exp(-sum(costs) / len(costs)) if costs else float("nan")


def gc_content(seq: str) -> float:
    return (seq.count("G") + seq.count("C")) / len(seq) if seq else float("nan")


def mfe(seq: str) -> tuple[str, float]:
    """ViennaRNA MFE structure and energy (kcal/mol) with default parameters (37 C, Turner 2004)."""
    import RNA

    structure, energy = RNA.fold(seq)
    return structure, float(energy)


def _window_energy(seq: str) -> float:
    import RNA

    return float(RNA.fold(seq)[1])


# ------------------------------------------------------------------------------------------ input checks
def check_protein(protein: str, *, record: str = "protein", path: str | os.PathLike | None = None) -> str:
    """Upper-case one-letter protein; one trailing ``*`` is dropped; anything but the 20 amino acids is an error."""
    seq = "".join(protein.split()).upper()
    if seq.endswith("*"):
        seq = seq[:-1]
    if not seq:
        raise SequenceError("empty protein sequence", path=path, record=record)
    for k, aa in enumerate(seq):
        if aa == "*":
            raise SequenceError("stop '*' in the middle of the protein", path=path, record=record, position=k + 1)
        if aa not in AMINO_ACIDS:
            raise SequenceError(f"{aa!r} is not one of the 20 standard amino acids (ACDEFGHIKLMNPQRSTVWY)",
                                path=path, record=record, position=k + 1)
    return seq


def protein_from_cds(cds: str, *, record: str = "cds", path: str | os.PathLike | None = None) -> str:
    """Protein encoded by a CDS (DNA or RNA letters); a length not a multiple of 3, N, or an internal stop is an error.

    A final stop codon is allowed and dropped (the design appends its own stop).
    """
    seq = normalise(cds, record=record, path=path)
    if len(seq) % 3:
        raise SequenceError(f"CDS length {len(seq)} is not a multiple of 3", path=path, record=record)
    protein = []
    codons = codons_of(seq)
    for k, codon in enumerate(codons):
        if codon not in GENETIC_CODE:
            raise SequenceError(f"codon {k + 1} ({codon}) contains N", path=path, record=record, position=3 * k + 1)
        aa = GENETIC_CODE[codon]
        if aa == "*" and k < len(codons) - 1:
            raise SequenceError(f"stop codon {codon} at codon {k + 1} of {len(codons)}, before the end of the CDS",
                                path=path, record=record, position=3 * k + 1)
        protein.append(aa)
    if protein and protein[-1] == "*":
        protein.pop()
    if not protein:
        raise SequenceError("CDS holds no codon besides a stop", path=path, record=record)
    return "".join(protein)


# ------------------------------------------------------------------------------------------ baselines
def most_frequent_cds(protein: str, usage: CodonUsage, *, stop: bool = True) -> str:
    """Each amino acid's most frequent codon (CAI = 1 by construction), plus the most frequent stop."""
    aas = protein + ("*" if stop else "")
    return "".join(usage.synonyms[aa][0] for aa in aas)


def random_cds(protein: str, usage: CodonUsage, rng: random.Random, *, stop: bool = True) -> str:
    """Uniformly random synonymous codons (the 'no optimisation' baseline)."""
    aas = protein + ("*" if stop else "")
    return "".join(rng.choice(usage.synonyms[aa]) for aa in aas)


@dataclass
class MRNADesign:
    """One design and its measured properties (MFE on the full mRNA, CAI and GC on the CDS and the mRNA)."""

    id: str
    mrna: str
    cds: str
    protein: str
    cds_start: int  # 1-based first nucleotide of the CDS in ``mrna``
    structure: str
    mfe: float
    mfe_per_nt: float
    cai: float
    gc: float
    gc_cds: float
    objective: float
    lm_score: float | None = None
    seconds: float = 0.0

    def header(self, lam: float) -> str:
        lm = "" if self.lm_score is None else f" lm_pll={self.lm_score:.2f}"
        return (f"mfe={self.mfe:.2f} mfe_per_nt={self.mfe_per_nt:.4f} cai={self.cai:.4f} gc={self.gc:.4f}"
                f" cds={self.cds_start}-{self.cds_start + len(self.cds) - 1} lambda={lam:g}{lm}")


def evaluate(cds: str, usage: CodonUsage, *, utr5: str = "", utr3: str = "", lam: float = 0.0,
             design_id: str = "design", protein: str | None = None) -> MRNADesign:
    """Measure a CDS in its mRNA: full-length ViennaRNA MFE, CAI, GC content and the objective at ``lam``."""
    mrna = utr5 + cds + utr3
    structure, energy = mfe(mrna)
    value = cai(cds, usage)
    cost = sum(usage.cost(c) for c in codons_of(cds))
    return MRNADesign(design_id, mrna, cds, protein if protein is not None else translate(cds).rstrip("*"),
                      len(utr5) + 1, structure, energy, energy / len(mrna), value, gc_content(mrna),
                      gc_content(cds), energy + lam * cost)


# ------------------------------------------------------------------------------------------ search
@dataclass
class _Problem:
    """Codon positions of one design problem: the synonyms at each position and their CAI costs."""

    utr5: str
    utr3: str
    choices: list[list[str]]
    costs: list[list[float]]
    lam: float
    window: int

    @property
    def free(self) -> list[int]:
        return [i for i, c in enumerate(self.choices) if len(c) > 1]

    def cds(self, state: Sequence[int]) -> str:
        return "".join(self.choices[i][s] for i, s in enumerate(state))

    def mrna(self, state: Sequence[int]) -> str:
        return self.utr5 + self.cds(state) + self.utr3

    def local(self, state: list[int], i: int, option: int) -> float:
        """Window energy around codon ``i`` (set to ``option``) plus lambda * that codon's CAI cost."""
        a = len(self.utr5) + 3 * i
        total = len(self.utr5) + 3 * len(state) + len(self.utr3)
        lo, hi = max(0, a - self.window), min(total, a + 3 + self.window)
        saved, state[i] = state[i], option
        text = "".join(t for _, t in self._segments(state, lo, hi))
        state[i] = saved
        return _window_energy(text) + self.lam * self.costs[i][option]

    def _segments(self, state: Sequence[int], lo: int, hi: int):
        n5 = len(self.utr5)
        if lo < n5:
            yield lo, self.utr5[lo:min(hi, n5)]
        first = max(0, (lo - n5) // 3)
        last = min(len(state), (hi - n5 + 2) // 3)
        for j in range(first, last):
            start = n5 + 3 * j
            codon = self.choices[j][state[j]]
            s, e = max(lo, start), min(hi, start + 3)
            if s < e:
                yield s, codon[s - start:e - start]
        end_cds = n5 + 3 * len(state)
        if hi > end_cds:
            yield max(lo, end_cds), self.utr3[max(lo, end_cds) - end_cds:hi - end_cds]

    def objective(self, state: Sequence[int]) -> float:
        return mfe(self.mrna(state))[1] + self.lam * sum(self.costs[i][s] for i, s in enumerate(state))


def _greedy(problem: _Problem, state: list[int], sweeps: int) -> list[int]:
    """Codon-by-codon, left to right: keep the synonym with the lowest window energy + lambda * cost."""
    for _ in range(sweeps):
        changed = False
        for i in problem.free:
            scores = [problem.local(state, i, o) for o in range(len(problem.choices[i]))]
            best = min(range(len(scores)), key=scores.__getitem__)
            changed |= best != state[i]
            state[i] = best
        if not changed:
            break
    return state


def _anneal(problem: _Problem, state: list[int], steps: int, rng: random.Random,
            t_start: float, t_end: float) -> list[int]:
    """Simulated annealing over random synonymous swaps, each scored by the change of its window objective."""
    free = problem.free
    if not free or steps <= 0:
        return state
    for step in range(steps):
        temp = t_start * (t_end / t_start) ** (step / max(1, steps - 1))
        i = rng.choice(free)
        option = rng.choice([o for o in range(len(problem.choices[i])) if o != state[i]])
        delta = problem.local(state, i, option) - problem.local(state, i, state[i])
        if delta <= 0 or rng.random() < math.exp(-delta / temp):
            state[i] = option
    return state


def _make_problem(protein: str, usage: CodonUsage, utr5: str, utr3: str, lam: float, window: int,
                  stop: bool) -> _Problem:
    aas = protein + ("*" if stop else "")
    choices = [list(usage.synonyms[aa]) for aa in aas]
    costs = [[usage.cost(c) for c in opts] for opts in choices]
    return _Problem(utr5, utr3, choices, costs, lam, window)


def optimize_mrna(
    protein: str,
    usage: CodonUsage | str = "human",
    *,
    utr5: str = "",
    utr3: str = "",
    lam: float = 1.0,
    n: int = 1,
    steps: int | None = None,
    window: int = 60,
    sweeps: int = 2,
    t_start: float = 2.0,
    t_end: float = 0.05,
    stop: bool = True,
    seed: int = 0,
    record: str = "protein",
    model=None,
    lm_weight: float = 0.0,
    lm_stride: int = 8,
    pool: int | None = None,
) -> list[MRNADesign]:
    """Design ``n`` mRNAs encoding ``protein``: low full-length MFE and high CAI, traded by ``lam``.

    Search: start from the most-frequent-codon CDS, ``sweeps`` greedy passes scored on a +-``window`` nt
    ViennaRNA window around each codon, then one simulated-annealing chain per candidate (``steps`` random
    synonymous swaps, default 4 per codon, temperature ``t_start`` -> ``t_end`` kcal/mol). Each candidate
    (and the greedy start and the most-frequent-codon CDS, so a design is never worse than that baseline on the
    objective) is refolded at full length; the ``n`` with the lowest objective are returned, best first. With ``lm_weight > 0`` and a ``model``, ``pool`` candidates (default 3n) are also scored by the
    model's pseudo-log-likelihood and ranked by ``MFE + lam*cost - lm_weight*PLL``.
    Returns designs whose CDS translates to ``protein`` (checked before returning).
    """
    t0 = time.perf_counter()
    usage = load_codon_usage(usage) if isinstance(usage, str) else usage
    protein = check_protein(protein, record=record)
    utr5 = normalise(utr5, record=f"{record} 5'UTR", allow_empty=True)
    utr3 = normalise(utr3, record=f"{record} 3'UTR", allow_empty=True)
    for name, utr in (("5'UTR", utr5), ("3'UTR", utr3)):
        if "N" in utr:
            raise SequenceError(f"{name} contains N or an ambiguity code; give A C G U/T only", record=record)
    if lam < 0 or lm_weight < 0 or n < 1 or window < 10:
        raise ConfigError("need lambda >= 0, lm_weight >= 0, n >= 1 and window >= 10")
    use_lm = lm_weight > 0
    if use_lm and model is None:
        raise ConfigError("lm_weight > 0 needs a model")
    problem = _make_problem(protein, usage, utr5, utr3, lam, window, stop)
    n_pool = max(n, pool if pool is not None else (3 * n if use_lm else n))
    steps = 4 * len(problem.choices) if steps is None else steps

    start = _greedy(problem, [0] * len(problem.choices), sweeps)
    states = {tuple(start), (0,) * len(start)}  # the most-frequent-codon CDS competes too: never worse than it
    for k in range(n_pool):
        states.add(tuple(_anneal(problem, list(start), steps, random.Random(seed + k), t_start, t_end)))
    designs = [evaluate(problem.cds(s), usage, utr5=utr5, utr3=utr3, lam=lam, protein=protein) for s in states]
    if use_lm:
        scores = lm_pseudo_log_likelihood(model, [d.mrna for d in designs], stride=lm_stride)
        for d, s in zip(designs, scores, strict=True):
            d.lm_score = s
            d.objective -= lm_weight * s
    designs.sort(key=lambda d: (d.objective, d.mrna))
    designs = designs[:n]
    elapsed = time.perf_counter() - t0
    for k, d in enumerate(designs):
        d.id = f"{record}_design{k + 1}"
        d.seconds = elapsed
        if translate(d.cds) != protein + ("*" if stop else ""):  # cannot happen by construction; guard anyway
            raise RuntimeError(f"internal error: design {d.id} does not translate to the protein")
    return designs


# ------------------------------------------------------------------------------------------ language model
def lm_pseudo_log_likelihood(model, sequences: Sequence[str], *, stride: int = 8, batch_size: int = 16
                             ) -> list[float]:
    """Pseudo-log-likelihood (nats, summed over nucleotides) of each sequence under a genesis-rna MLM.

    Position ``j`` is scored with ``[MASK]`` at every position congruent to ``j`` modulo ``stride`` (``stride``
    passes per sequence instead of one per nucleotide; ``stride >= len`` is the exact PLL of Salazar et al.
    2020). Sequences longer than the model window are scored in consecutive windows.
    """
    import torch

    from ..vocab import CLS_ID, MASK_ID, NUCLEOTIDE_IDS, SEP_ID

    if stride < 1:
        raise ConfigError("stride must be >= 1")
    device = next(model.parameters()).device
    width = int(model.config.max_len) - 2
    jobs: list[tuple[int, list[int], list[int]]] = []  # (sequence index, token ids, masked positions)
    for k, seq in enumerate(sequences):
        ids = [NUCLEOTIDE_IDS[c] for c in normalise(seq, record=f"#{k + 1}")]
        for lo in range(0, len(ids), width):
            chunk = ids[lo:lo + width]
            for r in range(min(stride, len(chunk))):
                jobs.append((k, chunk, list(range(r, len(chunk), stride))))
    totals = [0.0] * len(sequences)
    model.eval()
    with torch.no_grad():
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b:b + batch_size]
            longest = max(len(c) for _, c, _ in batch) + 2
            inp = torch.zeros((len(batch), longest), dtype=torch.long)
            att = torch.zeros_like(inp)
            for row, (_, chunk, masked) in enumerate(batch):
                toks = [CLS_ID, *chunk, SEP_ID]
                for p in masked:
                    toks[p + 1] = MASK_ID
                inp[row, :len(toks)] = torch.tensor(toks)
                att[row, :len(toks)] = 1
            out = model(inp.to(device), att.to(device), return_pair_logits=False)
            logp = torch.log_softmax(out["mlm_logits"].float(), dim=-1).cpu()
            for row, (k, chunk, masked) in enumerate(batch):
                pos = torch.tensor(masked) + 1
                true = torch.tensor([chunk[p] for p in masked])
                totals[k] += float(logp[row, pos, true].sum())
    return totals


# ------------------------------------------------------------------------------------------ files
def read_proteins(*, protein: str | None = None, cds: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``(record id, protein)`` pairs from a protein string or protein FASTA (``protein``) or a CDS FASTA (``cds``).

    Every problem is an :class:`~genesis_rna.errors.InputError` naming the file and record.
    """
    from ..io import read_fasta

    if (protein is None) == (cds is None):
        raise ConfigError("give a protein (sequence or FASTA file) or a CDS FASTA file, not both or neither")
    if cds is not None:
        return [(r.id, protein_from_cds(r.sequence, record=r.id, path=cds))
                for r in read_fasta(cds, normalise_sequences=False)]
    if os.path.isfile(protein):
        return [(r.id, check_protein(r.sequence, record=r.id, path=protein))
                for r in read_fasta(protein, normalise_sequences=False)]
    if any(c in protein for c in "./\\"):  # meant as a file name: say so rather than "'.' is not an amino acid"
        raise SequenceError("no such file (and not a protein sequence)", path=protein)
    return [("protein", check_protein(protein, record="protein"))]


SUMMARY_COLUMNS = ("id", "protein_length", "mrna_length", "cds_start", "cds_end", "mfe", "mfe_per_nt", "cai",
                   "gc", "gc_cds", "objective", "lm_pll", "lambda", "organism", "seconds")


def default_summary_path(output: str | os.PathLike) -> str:
    """``designs.fa`` -> ``designs.tsv`` (beside the FASTA)."""
    out = os.fspath(output)
    for ext in (".fa.gz", ".fasta.gz", ".fa", ".fasta", ".fna"):
        if out.lower().endswith(ext):
            return out[: -len(ext)] + ".tsv"
    return out + ".tsv"


def write_designs(designs: Sequence[MRNADesign], output: str | os.PathLike, summary: str | os.PathLike,
                  *, lam: float, organism: str) -> None:
    """FASTA of the mRNAs (metrics in the headers) and a TSV (or CSV, by extension) summary, both atomic."""
    import csv

    from .._fileutil import atomic_write
    from ..io import write_fasta

    write_fasta([(d.id, d.mrna, d.header(lam)) for d in designs], output)
    delimiter = "," if os.fspath(summary).lower().endswith(".csv") else "\t"
    with atomic_write(summary, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        for d in designs:
            writer.writerow([d.id, len(d.protein), len(d.mrna), d.cds_start, d.cds_start + len(d.cds) - 1,
                             f"{d.mfe:.2f}", f"{d.mfe_per_nt:.5f}", f"{d.cai:.5f}", f"{d.gc:.5f}",
                             f"{d.gc_cds:.5f}", f"{d.objective:.4f}",
                             "" if d.lm_score is None else f"{d.lm_score:.3f}", f"{lam:g}", organism,
                             f"{d.seconds:.2f}"])
