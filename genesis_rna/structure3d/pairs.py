"""Base pairs read back from coordinates: canonical Watson-Crick and G-U wobble pairs by hydrogen-bond geometry.

Criterion (tested on ideal helices built here and on the natives): two residues of a canonical combination pair
when both of the pair's defining donor-acceptor distances are at most 3.5 A (the usual hydrogen-bond cut-off)

* G-C: G N1 - C N3 and G O6 - C N4 (the third, G N2 - C O2, is not required: it is the first to open),
* A-U: A N1 - U N3 and A N6 - U O4,
* G-U wobble: G N1 - U O2 and G O6 - U N3.

Two hydrogen bonds between the Watson-Crick edges fix the pair's geometry, so stacked or sheared neighbours, which
can be close in space, do not pass. A residue that passes with several partners keeps the one with the shortest
summed distance (greedy, shortest first). Non-canonical pairs are not reported: the 2D that fold, ViennaRNA and
the designer use is canonical.
"""

from __future__ import annotations

import numpy as np

from .model import Model3D

HBOND_MAX = 3.5
#: (base i, base j) -> the two (atom of i, atom of j) distances that define the pair.
CRITERIA: dict[tuple[str, str], tuple[tuple[str, str], tuple[str, str]]] = {
    ("G", "C"): (("N1", "N3"), ("O6", "N4")),
    ("A", "U"): (("N1", "N3"), ("N6", "O4")),
    ("G", "U"): (("N1", "O2"), ("O6", "N3")),
}


def _pair_distance(res_i, res_j) -> float | None:
    """Summed H-bond distance of a canonical pair i-j, or None when the bases cannot or do not pair."""
    key = (res_i.name, res_j.name)
    swap = key not in CRITERIA
    if swap:
        key = key[::-1]
        res_i, res_j = res_j, res_i
    if key not in CRITERIA:
        return None
    total = 0.0
    for a, b in CRITERIA[key]:
        xa, xb = res_i.atom(a), res_j.atom(b)
        if xa is None or xb is None:
            return None
        d = float(np.linalg.norm(xa - xb))
        if d > HBOND_MAX:
            return None
        total += d
    return total


def find_pairs(model: Model3D) -> np.ndarray:
    """Partner array over all residues of all chains (chains in order, 0-based, -1 unpaired)."""
    from scipy.spatial import cKDTree

    residues = model.residues
    anchor = np.array([_anchor(r) for r in residues])
    candidates = []
    ok = ~np.isnan(anchor).any(axis=1)
    idx = np.flatnonzero(ok)
    if len(idx) > 1:
        for a, b in cKDTree(anchor[idx]).query_pairs(5.0):
            i, j = sorted((int(idx[a]), int(idx[b])))
            d = _pair_distance(residues[i], residues[j])
            if d is not None:
                candidates.append((d, i, j))
    partner = np.full(len(residues), -1, dtype=np.int64)
    for _, i, j in sorted(candidates):
        if partner[i] < 0 and partner[j] < 0:
            partner[i], partner[j] = j, i
    return partner


def _anchor(res) -> np.ndarray:
    """N1 of purines / N3 of pyrimidines: the atoms that face each other in every canonical pair (< 3.2 A)."""
    x = res.atom("N1" if res.name in "AG" else "N3")
    return np.full(3, np.nan) if x is None else x
