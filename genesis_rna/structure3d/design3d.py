"""Design from 3D: base pairs read from a PDB/mmCIF -> genesis_rna.design -> recovery and refold F1.

Per chain: the canonical pairs of :func:`.pairs.find_pairs` within the chain, reduced to the largest nested set
(the designer folds with ViennaRNA, which has no pseudoknots) with hairpins of at least 3 nt, form the target.
Intermolecular pairs cannot be a single-chain target and are left out (counted in the result). Each design is
scored by native sequence recovery (fraction of positions with the native letter) and by the F1 of its MFE
structure against the target pairs. ``rnainverse`` gives ViennaRNA's RNAinverse on the same targets as baseline.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..structure import nested_subset, pair_metrics, partners_to_dotbracket
from .pairs import find_pairs
from .pdbio import read_structure

MIN_HAIRPIN = 3


@dataclass
class ChainDesign:
    """Designs for one chain of a 3D structure."""

    chain: str
    native: str
    target: str
    intermolecular_pairs: int
    sequences: list[str] = field(default_factory=list)
    recovery: list[float] = field(default_factory=list)
    refold_f1: list[float] = field(default_factory=list)
    time_s: float = 0.0

    @property
    def mean_recovery(self) -> float:
        return float(np.mean(self.recovery)) if self.recovery else float("nan")

    @property
    def mean_f1(self) -> float:
        return float(np.mean(self.refold_f1)) if self.refold_f1 else float("nan")


def recovery(designed: str, native: str) -> float:
    """Fraction of positions where the design has the native letter."""
    if len(designed) != len(native) or not native:
        raise ValueError("design and native differ in length")
    return sum(a == b for a, b in zip(designed, native, strict=True)) / len(native)


def refold_f1(designed: str, target: str) -> float:
    """F1 of the design's ViennaRNA MFE pairs against the target's pairs (1.0 when both have none)."""
    import RNA

    from ..structure import dotbracket_to_partners

    ss, _ = RNA.fold(designed)
    return float(pair_metrics(dotbracket_to_partners(ss), dotbracket_to_partners(target))["f1"])


def chain_targets(path: str | os.PathLike) -> list[tuple[str, str, str, int]]:
    """``(chain id, native sequence, nested target dot-bracket, intermolecular pairs)`` for every chain."""
    model = read_structure(path)
    partner = find_pairs(model)
    out, start = [], 0
    for chain in model.chains:
        n = len(chain.residues)
        local = partner[start:start + n].copy()
        inside = (local >= start) & (local < start + n)
        inter = int(((local >= 0) & ~inside).sum())
        local = np.where(inside, local - start, -1)
        local = np.asarray(nested_subset(local), dtype=np.int64).copy()
        for i, j in enumerate(local):
            if j > i and j - i - 1 < MIN_HAIRPIN:
                local[i] = local[j] = -1
        out.append((chain.id, chain.sequence, partners_to_dotbracket(local), inter))
        start += n
    return out


def design_from_pdb(path: str | os.PathLike, n: int = 10, seed: int = 0, *, model=None, method: str = "genesis",
                    **design_kwargs) -> list[ChainDesign]:
    """``n`` designs per chain of the 3D structure at ``path`` (see the module docstring).

    ``method="genesis"`` calls :func:`genesis_rna.design.design` (``model`` an encoder for its LM proposals,
    None for the prior alone; other keywords go to it); ``method="rnainverse"`` runs ``RNA.inverse_fold`` from
    random starts (seeded) as the baseline.
    """
    results = []
    for cid, native, target, inter in chain_targets(path):
        start = time.perf_counter()
        if method == "rnainverse":
            seqs = rnainverse(target, n, seed)
        else:
            from ._compat import design_function

            design = design_function()
            seqs = [d.sequence for d in design(target, n, model=model, seed=seed, target_id=cid, **design_kwargs)]
        res = ChainDesign(cid, native, target, inter, seqs, [recovery(s, native) for s in seqs],
                          [refold_f1(s, target) for s in seqs], time.perf_counter() - start)
        results.append(res)
    return results


def rnainverse(target: str, n: int, seed: int = 0) -> list[str]:
    """``n`` RNAinverse designs from random starts drawn with ``seed`` (ViennaRNA's own random walk)."""
    import RNA

    rng = np.random.default_rng(seed)
    RNA.cvar.give_up = 0
    out = []
    for _ in range(n):
        start = "".join(rng.choice(list("ACGU"), size=len(target)))
        seq, _dist = RNA.inverse_fold(start, target)
        out.append(seq.upper())
    return out
