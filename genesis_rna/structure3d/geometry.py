"""Geometry checks of a model and comparison with a native: superposed RMSD and TM-score.

Validity ranges. Consecutive C4'-C4' and P-P distances of the 22 RNA-Puzzles natives lie between 3.7 and 7.5 A
(0.1-99.5th percentiles 4.0-7.5 A; larger values there are missing residues); a fully extended backbone cannot
put two consecutive phosphates much beyond 7.8 A. A model passes with both distances in [3.5, 8.0] A. A clash is
two heavy atoms of different residues closer than 2.5 A, bonded neighbours (O3'/C3' of one residue with
P/OP1/OP2/O5' of the next) excepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .model import Model3D

STEP_RANGE = (3.5, 8.0)
CLASH_DISTANCE = 2.5
_BOND_PREV = ("O3'", "C3'")
_BOND_NEXT = ("P", "OP1", "OP2", "O5'")
REQUIRED_ATOMS = ("P", "C4'", "C1'")


@dataclass
class GeometryReport:
    """What :func:`check_geometry` found; ``ok`` is True only with no problem of any kind."""

    n_residues: int
    bad_c4_steps: list[tuple[int, float]] = field(default_factory=list)
    bad_p_steps: list[tuple[int, float]] = field(default_factory=list)
    clashes: list[tuple[int, str, int, str, float]] = field(default_factory=list)
    missing: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.bad_c4_steps or self.bad_p_steps or self.clashes or self.missing)

    def summary(self) -> str:
        return (f"{self.n_residues} residues: {len(self.bad_c4_steps)} C4'-C4' and {len(self.bad_p_steps)} P-P "
                f"steps outside {STEP_RANGE[0]}-{STEP_RANGE[1]} A, {len(self.clashes)} clashes < {CLASH_DISTANCE} A, "
                f"{len(self.missing)} missing atoms")


def _bad_steps(model: Model3D, atom: str) -> list[tuple[int, float]]:
    trace = model.trace(atom)
    linked = ~model.chain_breaks()[:-1]
    d = np.linalg.norm(trace[1:] - trace[:-1], axis=1)
    bad = linked & ~((d >= STEP_RANGE[0]) & (d <= STEP_RANGE[1]))
    return [(int(k), float(d[k])) for k in np.flatnonzero(bad)]


def _atoms(model: Model3D) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All heavy atoms: coordinates [N, 3], residue index [N], names [N]."""
    res = model.residues
    coords = np.concatenate([r.coords for r in res]) if res else np.zeros((0, 3))
    index = np.concatenate([np.full(len(r.atoms), k) for k, r in enumerate(res)]) if res else np.zeros(0, int)
    names = [a for r in res for a in r.atoms]
    return coords, index, names


def clashes(model: Model3D, cutoff: float = CLASH_DISTANCE) -> list[tuple[int, str, int, str, float]]:
    """Heavy-atom pairs of different residues closer than ``cutoff`` (bonded neighbours excepted)."""
    from scipy.spatial import cKDTree

    coords, index, names = _atoms(model)
    breaks = model.chain_breaks()
    out = []
    for a, b in cKDTree(coords).query_pairs(cutoff, output_type="ndarray"):
        i, j = int(index[a]), int(index[b])
        if i == j:
            continue
        if i > j:
            a, b, i, j = b, a, j, i
        if j == i + 1 and not breaks[i] and names[a] in _BOND_PREV and names[b] in _BOND_NEXT:
            continue
        out.append((i, names[a], j, names[b], float(np.linalg.norm(coords[a] - coords[b]))))
    return sorted(out)


def check_geometry(model: Model3D) -> GeometryReport:
    """Backbone step distances, clashes and missing key atoms (see the module docstring for the ranges)."""
    report = GeometryReport(len(model.residues))
    report.bad_c4_steps = _bad_steps(model, "C4'")
    report.bad_p_steps = _bad_steps(model, "P")
    report.clashes = clashes(model)
    report.missing = [(k, a) for k, r in enumerate(model.residues) for a in REQUIRED_ATOMS if r.atom(a) is None]
    return report


# ------------------------------------------------------------------------------------------- comparison
def kabsch(mobile: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t minimising |R x + t - y| over the rows (Kabsch; no reflection)."""
    mc, tc = mobile.mean(axis=0), target.mean(axis=0)
    h = (mobile - mc).T @ (target - tc)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, tc - rot @ mc


def _paired_rows(model_trace: np.ndarray, native_trace: np.ndarray) -> np.ndarray:
    if model_trace.shape != native_trace.shape:
        raise InputError(f"model has {len(model_trace)} residues, native {len(native_trace)}: cannot compare")
    ok = ~(np.isnan(model_trace).any(axis=1) | np.isnan(native_trace).any(axis=1))
    if ok.sum() < 3:
        raise InputError("fewer than 3 residues with the atom in both structures")
    return ok


def rmsd(model_trace: np.ndarray, native_trace: np.ndarray) -> float:
    """RMSD after optimal superposition, residue k on residue k (rows with NaN in either are left out)."""
    ok = _paired_rows(model_trace, native_trace)
    x, y = model_trace[ok], native_trace[ok]
    rot, t = kabsch(x, y)
    return float(np.sqrt(((x @ rot.T + t - y) ** 2).sum(axis=1).mean()))


def tm_score(model_trace: np.ndarray, native_trace: np.ndarray, model_seq: str, native_seq: str) -> float:
    """TM-align (``tmtools``) TM-score normalised by the native's length (residues with the atom).

    TM-align finds its own residue alignment and uses the protein d0; see docs/structure3d.md.
    """
    import tmtools

    ok_m = ~np.isnan(model_trace).any(axis=1)
    ok_n = ~np.isnan(native_trace).any(axis=1)
    seq_m = "".join(c for c, k in zip(model_seq.replace("&", ""), ok_m, strict=True) if k)
    seq_n = "".join(c for c, k in zip(native_seq.replace("&", ""), ok_n, strict=True) if k)
    res = tmtools.tm_align(np.ascontiguousarray(model_trace[ok_m]), np.ascontiguousarray(native_trace[ok_n]),
                           seq_m, seq_n)
    return float(res.tm_norm_chain2)
