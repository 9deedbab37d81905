"""Loop closure: rigid-body least squares on the non-stem residues so the backbone joins and atoms do not clash.

The builder puts loop residues on a C4' trace with single-strand steps, but a rigid nucleotide on a fixed trace
cannot also make every O3'-P link. Here each run of consecutive non-stem residues moves as rigid nucleotides
(a rotation about its C4' and a translation each; stems stay fixed, they are ideal) to minimise, with
``scipy.optimize.least_squares``:

* ``(|O3'(k) - P(k+1)| - 1.6 A)`` for every link into, inside and out of the run (the phosphodiester bond),
* ``2 * max(0, 3.0 A - d)`` for heavy-atom pairs of the run against everything within reach (steric exclusion, a
  little wider than the 2.5 A clash criterion so that passing it has a margin),
* ``0.1 * (C4' - C4'_start)``: a weak pull to the trace the builder chose, which keeps the topology.

A neighbour list (pairs within 5 A at the start of a round) fixes the residual vector's length; a second round
renews it. The whole model is refined run by run, 5' to 3'.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from ._aform import TEMPLATES

BOND = 1.6
STERIC = 3.0
STERIC_WEIGHT = 2.0  # a clash costs more than the same stretch of a bond
PULL = 0.1
ROUNDS = 2
MAX_RUN = 12  # residues moved together at most
REACH = 5.0  # A, neighbour-list radius (atoms move less than 2 A per round)


def _template(base: str) -> tuple[tuple[str, ...], np.ndarray]:
    return TEMPLATES[base if base in TEMPLATES else "A"]


class _Run:
    """One run of movable residues ``idx`` (consecutive): flat atom arrays so residuals are vectorised."""

    def __init__(self, seq: str, rot: list, trans: list, idx: list[int]) -> None:
        self.seq, self.idx = seq, idx
        self.names = [_template(seq[i])[0] for i in idx]
        placed = [_template(seq[i])[1] @ rot[i].T + trans[i] for i in idx]
        self.start = np.array([x[n.index("C4'")] for n, x in zip(self.names, placed, strict=True)])
        self.owner = np.concatenate([np.full(len(n), k) for k, n in enumerate(self.names)])
        self.rel = np.concatenate(placed) - self.start[self.owner]  # atoms relative to their C4'
        self.offset = np.cumsum([0] + [len(n) for n in self.names])
        self.c4_rows = np.array([self.offset[k] + n.index("C4'") for k, n in enumerate(self.names)])

    def row(self, i: int, name: str) -> int:
        k = self.idx.index(i)
        return int(self.offset[k] + self.names[k].index(name))

    def coords(self, params: np.ndarray) -> np.ndarray:
        """Flat [N, 3] atoms of the run for ``params`` (per residue: rotation vector about C4', translation)."""
        p = params.reshape(-1, 6)
        turns = Rotation.from_rotvec(p[:, :3]).as_matrix()  # [m, 3, 3]
        moved = np.einsum("nij,nj->ni", turns[self.owner], self.rel)
        return moved + self.start[self.owner] + p[self.owner, 3:]

    def transform(self, params: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rotation and translation that take residue k from its start to its refined place."""
        p = params.reshape(-1, 6)[k]
        turn = Rotation.from_rotvec(p[:3]).as_matrix()
        return turn, self.start[k] - turn @ self.start[k] + p[3:]


def refine(seq: str, rot: list, trans: list, movable: np.ndarray, breaks: np.ndarray, max_nfev: int = 20) -> None:
    """Move every run of ``movable`` residues (in place: ``rot``/``trans`` updated); see the module docstring.

    ``breaks[k]`` True means no backbone link between residue k and k + 1 (chain ends).
    """
    with _one_blas_thread():
        _refine_all(seq, rot, trans, movable, breaks, max_nfev)


def _one_blas_thread():
    """Small dense algebra runs fastest on one BLAS thread; many threads on a busy machine are 10-100x slower."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the work is the same, only slower on busy many-core machines
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _refine_all(seq: str, rot: list, trans: list, movable: np.ndarray, breaks: np.ndarray, max_nfev: int) -> None:
    k, n = 0, len(seq)
    while k < n:
        if not movable[k]:
            k += 1
            continue
        start = k
        while k + 1 < n and movable[k + 1] and not breaks[k]:
            k += 1
        run = list(range(start, k + 1))
        for c in range(0, len(run), MAX_RUN):  # long runs in pieces: cost grows with the square of the run
            _refine_run(seq, rot, trans, run[c:c + MAX_RUN], breaks, max_nfev)
        k += 1


def _refine_run(seq: str, rot: list, trans: list, idx: list[int], breaks: np.ndarray, max_nfev: int) -> None:
    lo, hi = idx[0], idx[-1]
    links = [(a, a + 1) for a in range(lo - 1, hi + 1) if 0 <= a and a + 1 < len(seq) and not breaks[a]]
    run = _Run(seq, rot, trans, idx)
    inside = set(idx)
    others = [i for i in range(len(seq)) if i not in inside and rot[i] is not None]
    fixed_xyz, fixed_res, fixed_names = _fixed_atoms(seq, rot, trans, others)
    tree = cKDTree(fixed_xyz) if len(fixed_xyz) else None
    bonds = _bond_terms(run, links, rot, trans)
    params = np.zeros(6 * len(idx))
    for _ in range(ROUNDS):
        pairs_fixed, pairs_run = _neighbours(run, params, tree, fixed_res, fixed_names)
        args = (run, bonds, fixed_xyz, pairs_fixed, pairs_run)
        result = least_squares(_residuals, params, jac=_jacobian, args=args, max_nfev=max_nfev,
                               tr_solver="lsmr", ftol=1e-4, xtol=1e-4)
        params = result.x
    for k, i in enumerate(idx):
        turn, shift = run.transform(params, k)
        rot[i] = turn @ rot[i]
        trans[i] = turn @ trans[i] + shift


def _bond_terms(run: _Run, links: list[tuple[int, int]], rot: list, trans: list):
    """For each O3'(a)-P(b) link: run row or -1 and a fixed position, for both ends (vectorised lookup)."""
    rows, fixed = [], []
    for a, b in links:
        pair_rows, pair_fixed = [], []
        for i, name in ((a, "O3'"), (b, "P")):
            if i in run.idx:
                pair_rows.append(run.row(i, name))
                pair_fixed.append(np.zeros(3))
            else:
                n, x = _template(run.seq[i])
                pair_rows.append(-1)
                pair_fixed.append(rot[i] @ x[n.index(name)] + trans[i])
        rows.append(pair_rows)
        fixed.append(pair_fixed)
    return np.array(rows, dtype=int).reshape(-1, 2), np.array(fixed).reshape(-1, 2, 3)


def _fixed_atoms(seq: str, rot: list, trans: list, others: list[int]):
    xyz, res, names = [], [], []
    for i in others:
        n, x = _template(seq[i])
        xyz.append(x @ rot[i].T + trans[i])
        res += [i] * len(n)
        names += list(n)
    if not xyz:
        return np.zeros((0, 3)), np.zeros(0, int), []
    return np.concatenate(xyz), np.array(res), names


def _neighbours(run: _Run, params: np.ndarray, tree, fixed_res: np.ndarray, fixed_names: list[str]):
    """Atom pairs within REACH: (run row, fixed atom) and (run row, run row) of different residues, bonded
    neighbours across a link left out (vectorised: the lists can hold tens of thousands of pairs)."""
    xyz = run.coords(params)
    run_res = np.array(run.idx)[run.owner]
    run_names = np.array([n for names in run.names for n in names])
    run_tree = cKDTree(xyz)
    pairs_fixed = np.zeros((0, 2), dtype=int)
    if tree is not None:
        pairs_fixed = run_tree.sparse_distance_matrix(tree, REACH, output_type="ndarray")
        pairs_fixed = np.stack([pairs_fixed["i"], pairs_fixed["j"]], axis=1).astype(int)
        names = np.array(fixed_names)
        keep = ~_excluded_vec(run_res[pairs_fixed[:, 0]], run_names[pairs_fixed[:, 0]],
                              fixed_res[pairs_fixed[:, 1]], names[pairs_fixed[:, 1]])
        pairs_fixed = pairs_fixed[keep]
    pairs_run = run_tree.query_pairs(REACH, output_type="ndarray").astype(int).reshape(-1, 2)
    a, b = pairs_run[:, 0], pairs_run[:, 1]
    keep = (run.owner[a] != run.owner[b]) & ~_excluded_vec(run_res[a], run_names[a], run_res[b], run_names[b])
    return pairs_fixed, pairs_run[keep]


def _excluded_vec(res_a: np.ndarray, name_a: np.ndarray, res_b: np.ndarray, name_b: np.ndarray) -> np.ndarray:
    """Atoms bonded or two bonds apart across a link (O3'/C3' of one residue, P/OP1/OP2/O5' of the next) are
    not steric pairs."""
    def bonded(first, second):
        return (((first == "O3'") & np.isin(second, ["P", "OP1", "OP2", "O5'"]))
                | ((first == "C3'") & (second == "P")))

    return (((res_b == res_a + 1) & bonded(name_a, name_b)) | ((res_a == res_b + 1) & bonded(name_b, name_a)))


def _residuals(params, run: _Run, bonds, fixed_xyz, pairs_fixed, pairs_run) -> np.ndarray:
    xyz = run.coords(params)
    rows, fixed = bonds
    ends = np.where(rows[..., None] >= 0, xyz[np.maximum(rows, 0)], fixed)
    bond = np.linalg.norm(ends[:, 0] - ends[:, 1], axis=1) - BOND
    steric_fixed = STERIC_WEIGHT * np.maximum(0.0, STERIC - np.linalg.norm(xyz[pairs_fixed[:, 0]] - fixed_xyz[pairs_fixed[:, 1]],
                                                           axis=1)) if len(pairs_fixed) else np.zeros(0)
    steric_run = STERIC_WEIGHT * np.maximum(0.0, STERIC - np.linalg.norm(xyz[pairs_run[:, 0]] - xyz[pairs_run[:, 1]], axis=1)
                            ) if len(pairs_run) else np.zeros(0)
    pull = PULL * (xyz[run.c4_rows] - run.start).ravel()
    return np.concatenate([bond, steric_fixed, steric_run, pull])


def _jacobian(params, run: _Run, bonds, fixed_xyz, pairs_fixed, pairs_run) -> np.ndarray:
    """Analytic Jacobian of :func:`_residuals` (rotation part linearised at the current angle: d x = dw x v)."""
    xyz = run.coords(params)
    m = len(run.idx)
    centre = run.start + params.reshape(-1, 6)[:, 3:]
    lever = xyz - centre[run.owner]  # v: atom relative to its residue's pivot
    blocks = []

    def grad_rows(n_rows: int, rows_idx: np.ndarray, atom_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """d residual / d params for residual rows that depend on run atoms ``atom_rows`` along ``u``."""
        jac = np.zeros((n_rows, 6 * m))
        ok = atom_rows >= 0
        if ok.any():
            r, a, uu = rows_idx[ok], atom_rows[ok], u[ok]
            k = run.owner[a]
            rot_part = np.cross(lever[a], uu)
            for c in range(3):
                np.add.at(jac, (r, 6 * k + c), rot_part[:, c])
                np.add.at(jac, (r, 6 * k + 3 + c), uu[:, c])
        return jac

    rows, fixed = bonds
    if len(rows):
        ends = np.where(rows[..., None] >= 0, xyz[np.maximum(rows, 0)], fixed)
        diff = ends[:, 0] - ends[:, 1]
        u = diff / np.maximum(np.linalg.norm(diff, axis=1, keepdims=True), 1e-9)
        r = np.arange(len(rows))
        blocks.append(grad_rows(len(rows), r, rows[:, 0], u) + grad_rows(len(rows), r, rows[:, 1], -u))
    if len(pairs_fixed):
        diff = xyz[pairs_fixed[:, 0]] - fixed_xyz[pairs_fixed[:, 1]]
        d = np.linalg.norm(diff, axis=1, keepdims=True)
        u = -STERIC_WEIGHT * diff / np.maximum(d, 1e-9) * (d < STERIC)
        blocks.append(grad_rows(len(pairs_fixed), np.arange(len(pairs_fixed)), pairs_fixed[:, 0], u))
    if len(pairs_run):
        diff = xyz[pairs_run[:, 0]] - xyz[pairs_run[:, 1]]
        d = np.linalg.norm(diff, axis=1, keepdims=True)
        u = -STERIC_WEIGHT * diff / np.maximum(d, 1e-9) * (d < STERIC)
        r = np.arange(len(pairs_run))
        blocks.append(grad_rows(len(pairs_run), r, pairs_run[:, 0], u)
                      + grad_rows(len(pairs_run), r, pairs_run[:, 1], -u))
    pull = np.zeros((3 * m, 6 * m))
    for k in range(m):
        pull[3 * k:3 * k + 3, 6 * k + 3:6 * k + 6] = PULL * np.eye(3)
    blocks.append(pull)
    return np.vstack(blocks)
