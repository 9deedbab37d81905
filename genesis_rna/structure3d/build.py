"""Secondary structure -> 3D coordinates: ideal A-form stems, loops on arcs, junctions by restrained sampling.

Method (docs/structure3d.md says why):

1. Stems (runs of stacked pairs of the nested 2D) are ideal A-RNA duplexes (:mod:`._aform`), exact to the
   template.
2. An interior loop or bulge continues its outer stem coaxially: the inner stem starts ``min(left, right)`` levels
   further on, a side with that many residues takes the A-form positions of those levels, a longer side bulges out.
3. Unpaired runs that have no helix positions (hairpins, bulges, junction linkers) lie on a circular arc between
   their two placed neighbours with every C4'-C4' step 5.9 A (the median single-strand step of RNA), the arc
   bowed away from the helix axis or junction centre; each residue is oriented along the arc with its base
   towards the arc's centre, as in a helix.
4. Multiloops: the child stem with the shorter linker to the closing pair stacks coaxially on it (the commonest
   junction arrangement); every other stem, and every stem of the exterior loop after the first, is placed by
   sampling: random axis directions and distances from the junction, its whole substructure built for each try,
   and the try kept that minimises C4'/base-centre contacts under 4.5 A with what is already built plus the
   linker strain (distance beyond what its unpaired residues can span). No fragment library, no native.
5. Single-stranded ends continue their stem's A-form strand while those places are free, else run straight out.
   :mod:`.refine` then closes the loop backbones (fold3d does both).
"""

from __future__ import annotations

import numpy as np

from ._aform import DYAD, TEMPLATES, level_transform
from .model import Chain, Model3D, Residue

STEP = 5.9  # A, C4'-C4' of a single-stranded step
CONTACT = 4.5  # A, bead contact distance in junction sampling
FREE = 3.0  # A, closer beads mean an A-form place is taken
SAMPLES = 24
STRAIN_WEIGHT = 3.0  # contacts per A of linker over-stretch
MIN_HAIRPIN = 3
#: levels between coaxially stacked stems across a nick: 1.3 leaves O3'-P 3.2 A apart instead of bonded 1.8 A
STACK_GAP = 1.3


# ------------------------------------------------------------------------------------------- frames
def _rot_to(vec_from: np.ndarray, vec_to: np.ndarray) -> np.ndarray:
    """A rotation taking unit vector ``vec_from`` onto unit vector ``vec_to``."""
    a, b = vec_from / np.linalg.norm(vec_from), vec_to / np.linalg.norm(vec_to)
    v, c = np.cross(a, b), float(a @ b)
    if c < -0.999999:
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return _axis_angle(axis / np.linalg.norm(axis), np.pi)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _template_frame() -> tuple[np.ndarray, np.ndarray]:
    """The level-0 nucleotide's local frame (C4', columns tangent/outward/normal) used to orient arc residues."""
    names, xyz = TEMPLATES["A"]
    c4 = xyz[names.index("C4'")]
    nxt = level_transform(1)[0] @ c4 + level_transform(1)[1]
    prv = level_transform(-1)[0] @ c4 + level_transform(-1)[1]
    return c4, _frame(nxt - prv, np.array([c4[0], c4[1], 0.0]))


def _frame(tangent: np.ndarray, outward: np.ndarray) -> np.ndarray:
    t = tangent / np.linalg.norm(tangent)
    o = outward - (outward @ t) * t
    if np.linalg.norm(o) < 1e-6:
        o = np.cross(t, [1.0, 0.0, 0.0] if abs(t[0]) < 0.9 else [0.0, 1.0, 0.0])
    o = o / np.linalg.norm(o)
    return np.stack([t, o, np.cross(t, o)], axis=1)


_TMPL_C4, _TMPL_FRAME = _template_frame()
#: the template's P and O3' relative to its C4' (what put_chained aligns)
_TMPL_P = TEMPLATES["A"][1][0] - _TMPL_C4
_TMPL_O3 = TEMPLATES["A"][1][TEMPLATES["A"][0].index("O3'")] - _TMPL_C4


def _wahba(vectors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The rotation that best turns the rows of ``vectors`` onto the rows of ``targets`` (SVD, no centring)."""
    u, _, vt = np.linalg.svd(vectors.T @ targets)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def _key_points(base: str) -> np.ndarray:
    """C4' and base centroid of the template: the two beads used for contacts during sampling."""
    names, xyz = TEMPLATES[base]
    ring = [k for k, n in enumerate(names) if "'" not in n and n not in ("P", "OP1", "OP2")]
    return np.stack([xyz[names.index("C4'")], xyz[ring].mean(axis=0)])


_BEADS = {b: _key_points(b) for b in TEMPLATES}


class Helix:
    """A helix frame: level k of strand 1 is ``rot @ level_transform(k)`` applied to the template."""

    def __init__(self, rot: np.ndarray, trans: np.ndarray) -> None:
        self.rot, self.trans = rot, trans

    def at(self, level: float, strand: int) -> tuple[np.ndarray, np.ndarray]:
        r, t = level_transform(level)
        rot = self.rot @ r @ (DYAD if strand == 2 else np.eye(3))
        return rot, self.rot @ t + self.trans

    def shifted(self, levels: float) -> Helix:
        r, t = level_transform(levels)
        return Helix(self.rot @ r, self.rot @ t + self.trans)

    @property
    def forward(self) -> np.ndarray:
        """Direction in which levels grow (strand 1 runs 5'->3' this way)."""
        return self.rot @ np.array([0.0, 0.0, -1.0])

    def axis_point(self, level: float) -> np.ndarray:
        return self.rot @ np.array([0.0, 0.0, -2.81 * level]) + self.trans


# ------------------------------------------------------------------------------------------- builder
class _Builder:
    """Places every residue of one joined sequence; ``rot[i]``, ``trans[i]`` move the template of residue i."""

    def __init__(self, sequence: str, partner: np.ndarray, rng: np.random.Generator) -> None:
        self.seq = sequence
        self.partner = partner
        self.rng = rng
        n = len(sequence)
        self.rot: list[np.ndarray | None] = [None] * n
        self.trans: list[np.ndarray | None] = [None] * n
        self.kind = ["exterior"] * n
        self.placed: list[int] = []

    # -- placement primitives
    def base(self, i: int) -> str:
        return self.seq[i] if self.seq[i] in TEMPLATES else "A"

    def put(self, i: int, rot: np.ndarray, trans: np.ndarray, kind: str) -> None:
        if self.rot[i] is None:
            self.placed.append(i)
        self.rot[i], self.trans[i], self.kind[i] = rot, trans, kind

    def c4(self, i: int) -> np.ndarray:
        return self.rot[i] @ _BEADS[self.base(i)][0] + self.trans[i]

    def beads(self, idx) -> np.ndarray:
        return np.concatenate([_BEADS[self.base(i)] @ self.rot[i].T + self.trans[i] for i in idx]).reshape(-1, 3)

    def rollback(self, mark: int) -> None:
        for i in self.placed[mark:]:
            self.rot[i] = self.trans[i] = None
        del self.placed[mark:]

    # -- structure elements
    def helix(self, i: int, j: int, frame: Helix) -> None:
        """Stem from pair (i, j) at level 0 of ``frame`` inwards, then the loop it closes."""
        p, q, level = i, j, 0
        while True:
            self.put(p, *frame.at(level, 1), "stem")
            self.put(q, *frame.at(level, 2), "stem")
            if self.partner[p + 1] == q - 1 and p + 1 < q - 1:
                p, q, level = p + 1, q - 1, level + 1
            else:
                break
        self.loop(p, q, frame, level)

    def children(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """Pairs directly inside the open interval (lo, hi)."""
        out, k = [], lo + 1
        while k < hi:
            j = int(self.partner[k])
            if j > k:
                out.append((k, j))
                k = j + 1
            else:
                k += 1
        return out

    def loop(self, p: int, q: int, frame: Helix, level: int) -> None:
        kids = self.children(p, q)
        if not kids:
            self.arc(p, q, list(range(p + 1, q)), frame.axis_point(level - 2), "hairpin")
        elif len(kids) == 1:
            self.interior(p, q, kids[0], frame, level)
        else:
            self.junction(p, q, kids, frame, level)

    def interior(self, p: int, q: int, kid: tuple[int, int], frame: Helix, level: int) -> None:
        a, b = kid
        left, right = list(range(p + 1, a)), list(range(b + 1, q))
        s = min(len(left), len(right))
        self.helix(a, b, frame.shifted(level + 1 + s))
        if len(left) == s:
            for k, i in enumerate(left):
                self.put(i, *frame.at(level + 1 + k, 1), "interior")
        else:
            self.arc(p, a, left, frame.axis_point(level + 0.5 + s / 2), "interior")
        if len(right) == s:
            for k, i in enumerate(right):
                self.put(i, *frame.at(level + s - k, 2), "interior")
        else:
            self.arc(b, q, right, frame.axis_point(level + 0.5 + s / 2), "interior")

    def junction(self, p: int, q: int, kids: list[tuple[int, int]], frame: Helix, level: int) -> None:
        first_linker, last_linker = kids[0][0] - p - 1, q - kids[-1][1] - 1
        stacked = 0 if first_linker <= last_linker else len(kids) - 1
        self.helix(*kids[stacked], frame.shifted(level + STACK_GAP))
        centre = frame.axis_point(level + 0.5)
        order = [k for k in range(len(kids)) if k != stacked]
        for k in order:
            self.sample_helix(kids[k], centre, frame.forward)
        anchors = [p] + [x for kid in kids for x in kid] + [q]
        for k in range(0, len(anchors), 2):
            lo, hi = anchors[k], anchors[k + 1]
            self.arc(lo, hi, list(range(lo + 1, hi)), centre, "junction")

    def sample_helix(self, kid: tuple[int, int], centre: np.ndarray, forward: np.ndarray) -> None:
        """Place stem ``kid`` (and everything inside it) by sampling: the least-strained, least-crowded try."""
        a, b = kid
        old = list(self.placed)
        old_beads = self.beads(old)
        before = max((i for i in old if i < a), default=None)
        after = min((i for i in old if i > b), default=None)
        mark = len(self.placed)
        best = None
        for _ in range(SAMPLES):
            d = self.rng.normal(size=3)
            d = d / np.linalg.norm(d)
            if d @ forward < -0.2:
                d = d - 2 * (d @ forward) * forward
            rot = _axis_angle(d, self.rng.uniform(0, 2 * np.pi)) @ _rot_to(np.array([0.0, 0.0, -1.0]), d)
            origin = self.sample_origin(a, before, rot, centre, d)
            self.helix(a, b, Helix(rot, origin))
            score = self.score(self.placed[mark:], old_beads, (before, a), (b, after))
            if best is None or score < best[0]:
                best = (score, rot, origin)
            self.rollback(mark)
            if score == 0.0:
                break
        self.helix(a, b, Helix(best[1], best[2]))

    def sample_origin(self, a: int, before: int | None, rot: np.ndarray, centre: np.ndarray,
                      d: np.ndarray) -> np.ndarray:
        """Helix origin for one try: C4'(a) within reach of the residue before it (the linker restraint), on
        the far side from the junction centre; without a placed predecessor, 8-16 A out along ``d``."""
        if before is None or self.rot[before] is None:
            return centre + d * self.rng.uniform(8.0, 16.0)
        reach = min((a - before) * STEP, 3 * STEP) * self.rng.uniform(0.6, 1.0)
        u = self.rng.normal(size=3)
        u = u / np.linalg.norm(u)
        anchor = self.c4(before)
        if u @ (anchor - centre) < 0:
            u = -u
        c4_local = rot @ _BEADS[self.base(a)][0]
        return anchor + reach * u - c4_local

    def score(self, new: list[int], old_beads: np.ndarray, *links: tuple[int | None, int | None]) -> float:
        from scipy.spatial import cKDTree

        contacts = 0
        if len(old_beads):
            contacts = sum(len(x) for x in cKDTree(old_beads).query_ball_point(self.beads(new), CONTACT))
        strain = 0.0
        for lo, hi in links:
            if lo is None or hi is None or self.rot[lo] is None or self.rot[hi] is None:
                continue
            span = (hi - lo) * STEP
            strain += max(0.0, float(np.linalg.norm(self.c4(hi) - self.c4(lo))) - span)
        return contacts + STRAIN_WEIGHT * strain

    def arc(self, lo: int, hi: int, idx: list[int], centre: np.ndarray, kind: str) -> None:
        """Residues ``idx`` between placed residues lo and hi: the first stacks on lo and the last under hi in
        A-form where those places are free and the rest can still span the gap; the others lie on a circular
        arc bowed away from ``centre``."""
        if not idx:
            return
        if len(idx) >= 2 and self.stack_ends(lo, hi, idx, kind, both=True):
            lo, hi, idx = idx[0], idx[-1], idx[1:-1]
        elif idx and self.stack_ends(lo, hi, idx, kind, both=False):
            lo, idx = idx[0], idx[1:]
        if not idx:
            return
        a, b = self.c4(lo), self.c4(hi)
        points = arc_points(a, b, len(idx), (a + b) / 2 - centre)
        full = np.concatenate([a[None], points, b[None]])
        prev = lo
        for k, i in enumerate(idx):
            towards = self.atom_position(hi, "P") if k == len(idx) - 1 else full[k + 2]
            self.put_chained(i, full[k + 1], towards, prev, kind, last=k == len(idx) - 1)
            prev = i

    def stack_ends(self, lo: int, hi: int, idx: list[int], kind: str, both: bool) -> bool:
        """Put idx[0] stacked on lo (and idx[-1] under hi when ``both``) if free and the rest spans the gap."""
        mark = len(self.placed)
        self.put(idx[0], *self.stacked(lo, +1), kind)
        end, inner = idx[0], len(idx) - 1
        if both:
            self.put(idx[-1], *self.stacked(hi, -1), kind)
            end, inner = idx[-1], len(idx) - 2
        far = hi if not both else idx[0]
        gap = float(np.linalg.norm(self.c4(end) - self.c4(far)))
        ok = self.free(idx[0], (idx[-1],)) and (not both or self.free(idx[-1], (idx[0],)))
        if ok and 4.0 <= gap <= (inner + 1) * 7.0:
            return True
        self.rollback(mark)
        return False

    def stacked(self, i: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The A-form place of the residue after (step +1) or before (-1) residue i on its strand."""
        r, t = level_transform(step)
        return self.rot[i] @ r, self.rot[i] @ t + self.trans[i]

    def put_chained(self, i: int, c4: np.ndarray, towards: np.ndarray, prev: int, kind: str,
                    last: bool = False) -> None:
        """Residue i with its C4' at ``c4``, turned (about C4') so that its P points at the O3' of the residue
        before it and its O3' at ``towards`` (the next C4', or the next residue's P when ``last``): the
        backbone stays as connected as a rigid nucleotide on a fixed C4' trace allows."""
        o3 = self.atom_position(prev, "O3'")
        ahead = towards - c4
        if not last:
            ahead = ahead / max(np.linalg.norm(ahead), 1e-6) * np.linalg.norm(_TMPL_O3)
        rot = _wahba(np.stack([_TMPL_P, _TMPL_O3]), np.stack([o3 - c4, ahead]))
        self.put(i, rot, c4 - rot @ _TMPL_C4, kind)

    def atom_position(self, i: int, name: str) -> np.ndarray:
        names, xyz = TEMPLATES[self.base(i)]
        return self.rot[i] @ xyz[names.index(name)] + self.trans[i]

    def free(self, i: int, ignore: tuple[int, ...] = ()) -> bool:
        """True when residue i's beads touch nothing placed but its chain neighbours (which stack on it)."""
        from scipy.spatial import cKDTree

        others = [k for k in self.placed if abs(k - i) > 1 and k not in ignore]
        if not others:
            return True
        return not any(cKDTree(self.beads(others)).query_ball_point(self.beads([i]), FREE))

    def tail(self, anchor: int, idx: list[int], frame: Helix, strand: int) -> None:
        """A single-stranded end: the A-form strand continued past level 0 while those positions are free,
        else a straight run of 5.9 A steps away from the centre of what is built."""
        for k, i in enumerate(idx):
            self.put(i, *frame.at(-(k + 1), strand), "exterior")
            if not self.free(i):
                self.rot[i] = self.trans[i] = None
                self.placed.remove(i)
                self.dangle(idx[k - 1] if k else anchor, idx[k:])
                return

    def dangle(self, anchor: int, idx: list[int]) -> None:
        start = self.c4(anchor)
        d = start - self.beads(self.placed).mean(axis=0)
        d = d / max(np.linalg.norm(d), 1e-6)
        prev = anchor
        for k, i in enumerate(idx, start=1):
            self.put_chained(i, start + k * STEP * d, start + (k + 1) * STEP * d, prev, "exterior")
            prev = i


def arc_points(a: np.ndarray, b: np.ndarray, m: int, bow: np.ndarray, step: float = STEP) -> np.ndarray:
    """``m`` points from ``a`` to ``b`` on a circular arc with equal chords ``step`` (straight when too far)."""
    d = float(np.linalg.norm(b - a))
    u = (b - a) / d if d > 1e-9 else np.array([1.0, 0.0, 0.0])
    w = bow - (bow @ u) * u
    if np.linalg.norm(w) < 1e-6:
        w = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    w = w / np.linalg.norm(w)
    t = np.arange(1, m + 1) / (m + 1)
    if d >= (m + 1) * step * 0.999:
        return a + np.outer(t, b - a)
    lo, hi = 1e-6, np.pi - 1e-6  # half-angle alpha: chord d = 2 R sin(alpha), step = 2 R sin(alpha / (m + 1))
    for _ in range(60):
        alpha = (lo + hi) / 2
        if d * np.sin(alpha / (m + 1)) / np.sin(alpha) < step:
            lo = alpha
        else:
            hi = alpha
    radius = d / (2 * np.sin(alpha))
    centre = (a + b) / 2 - w * radius * np.cos(alpha)
    phi = -alpha + 2 * alpha * t
    return centre + radius * (np.outer(np.sin(phi), u) + np.outer(np.cos(phi), w))


def _circle_centre(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Centre of the circle through a, the middle point and b (falls back to the chord's midpoint)."""
    p = points[len(points) // 2]
    ab, ap = b - a, p - a
    n = np.cross(ab, ap)
    nn = n @ n
    if nn < 1e-9:
        return (a + b) / 2 + np.cross(ab, [0.0, 0.0, 1.0])
    return a + (np.cross(n, ab) * (ap @ ap) + np.cross(ap, n) * (ab @ ab)) / (2 * nn)


def _clean_partner(partner: np.ndarray) -> np.ndarray:
    """Nested pairs only (a stem builder cannot thread pseudoknots), hairpins of at least 3 nt."""
    from ..structure import nested_subset

    out = np.asarray(nested_subset(partner), dtype=np.int64).copy()
    for i, j in enumerate(out):
        if j > i and j - i - 1 < MIN_HAIRPIN:
            out[i] = out[j] = -1
    return out


def build_coordinates(sequence: str, partner: np.ndarray, *, seed: int = 0) -> tuple[list, list, list]:
    """Rotations, translations and element kinds of every residue of one joined chain (see the module doc)."""
    partner = _clean_partner(partner)
    builder = _Builder(sequence, partner, np.random.default_rng(seed))
    n = len(sequence)
    top = builder.children(-1, n)
    if not top:
        frame = Helix(np.eye(3), np.zeros(3))
        for i in range(n):
            builder.put(i, *frame.at(i, 1), "exterior")
        return builder.rot, builder.trans, builder.kind
    first_frame = Helix(np.eye(3), np.zeros(3))
    builder.helix(*top[0], first_frame)
    frames = [first_frame]
    for k in range(1, len(top)):
        prev, (a, b) = top[k - 1], top[k]
        linker = list(range(prev[1] + 1, a))
        if len(linker) <= 2:
            frame = frames[-1].shifted(-(STACK_GAP + len(linker)))
            frame = Helix(frame.rot @ DYAD, frame.trans)
            mark = len(builder.placed)
            builder.helix(a, b, frame)
            for m, i in enumerate(linker):
                builder.put(i, *frames[-1].at(-(m + 1), 2), "exterior")
            if all(builder.free(i) for i in builder.placed[mark:]):
                frames.append(frame)
                continue
            builder.rollback(mark)
        end = builder.c4(prev[1])
        builder.sample_helix((a, b), end, end - builder.beads(builder.placed).mean(axis=0))
        frames.append(Helix(builder.rot[a], builder.trans[a]))
    for k in range(len(top) - 1):
        lo, hi = top[k][1], top[k + 1][0]
        if hi > lo + 1 and builder.rot[lo + 1] is None:
            centre = (builder.c4(top[k][0]) + builder.c4(top[k + 1][1])) / 2
            builder.arc(lo, hi, list(range(lo + 1, hi)), centre, "exterior")
    builder.tail(top[0][0], list(range(top[0][0] - 1, -1, -1)), frames[0], 1)
    builder.tail(top[-1][1], list(range(top[-1][1] + 1, n)), frames[-1], 2)
    return builder.rot, builder.trans, builder.kind


def residues_from_frames(sequence: str, rot: list, trans: list) -> list[Residue]:
    """Full-atom residues: each template moved by its residue's rotation and translation."""
    out = []
    for k, (c, r, t) in enumerate(zip(sequence, rot, trans, strict=True)):
        names, xyz = TEMPLATES[c if c in TEMPLATES else "A"]
        out.append(Residue(c, names, xyz @ r.T + t, 0.0, k + 1))
    return out


def assemble(chains: list[tuple[str, str]], residues: list[Residue], keep: np.ndarray) -> list[Chain]:
    """Split the joined residues into chains, dropping linker residues (``keep`` False)."""
    out, k = [], 0
    kept = [r for r, ok in zip(residues, keep, strict=True) if ok]
    for cid, seq in chains:
        part = kept[k:k + len(seq)]
        for n, r in enumerate(part, start=1):
            r.number = n
        out.append(Chain(cid, part))
        k += len(seq)
    return out


__all__ = ["build_coordinates", "residues_from_frames", "arc_points", "Helix", "Model3D"]
