"""RNA secondary structures as partner arrays: conversions, pseudoknot pages, context labels, pair metrics.

A structure is a partner array (docs/architecture.md, Structures): ``partner[i] = j`` (0-based) when ``i`` pairs with
``j`` and ``-1`` when ``i`` is unpaired; it is symmetric, nobody is paired twice and nobody pairs with itself.
Pseudoknots are allowed. Everything here is NumPy plus short Python loops that are linear in the length, so
that labelling and converting thousands of structures of a few thousand nucleotides stays cheap.

Positions in error messages are 1-based, as in CT/BPSEQ files and as :func:`genesis_rna.tokenization.normalise`
reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from string import ascii_lowercase, ascii_uppercase

import numpy as np

from ..errors import InputError, StructureError
from ..vocab import IGNORE_INDEX

__all__ = [
    "STRUCTURE_LABELS", "NONE", "STEM", "LOOP", "BULGE", "HAIRPIN", "IGNORE_INDEX", "BRACKET_PAGES",
    "validate_partners", "pairs_to_partners", "partners_to_pairs", "dotbracket_to_partners",
    "partners_to_dotbracket", "wuss_to_partners", "partners_to_wuss", "nested_subset", "pseudoknot_pages",
    "context_labels", "labels_to_string", "pair_metrics", "pair_metrics_flexible", "mean_pair_metrics",
]

STRUCTURE_LABELS: tuple[str, ...] = ("NONE", "STEM", "LOOP", "BULGE", "HAIRPIN")
NONE, STEM, LOOP, BULGE, HAIRPIN = range(5)

#: bracket pairs in page order: ``()`` first, then ``[]``, ``{}``, ``<>``, then ``Aa``, ``Bb``, ... ``Zz``.
BRACKET_PAGES: tuple[tuple[str, str], ...] = (("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")) + tuple(
    zip(ascii_uppercase, ascii_lowercase, strict=True)
)
_OPENERS = {o: k for k, (o, _) in enumerate(BRACKET_PAGES)}
_CLOSERS = {c: k for k, (_, c) in enumerate(BRACKET_PAGES)}

# WUSS (Infernal/Easel esl_wuss2ct): all four bracket kinds share ONE stack (they only mark nesting depth),
# letters are pseudoknot pages with a stack each, and these characters are unpaired.
_WUSS_OPEN = {"<": ">", "(": ")", "[": "]", "{": "}"}
_WUSS_CLOSE = {v: k for k, v in _WUSS_OPEN.items()}
_WUSS_UNPAIRED = frozenset(".,_-:~")


# ----------------------------------------------------------------------------------------------------------
# Partner arrays and pair lists
# ----------------------------------------------------------------------------------------------------------

def validate_partners(partner: Sequence[int] | np.ndarray, length: int | None = None) -> np.ndarray:
    """Check a partner array and return it as a 1-D ``int64`` array (no copy when it already is one).

    Readers and models hand structures around as plain arrays; checking them once at the boundary means the
    rest of the code can index ``partner[partner[i]]`` without guarding. Raises :class:`StructureError`
    naming the first offending (1-based) position.
    """
    arr = np.asarray(partner)
    if arr.ndim != 1:
        raise StructureError(f"partner array must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "b" or (arr.size and arr.dtype.kind not in "iuf"):
        raise StructureError(f"partner array must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(arr != np.round(arr))
        if bad.size:
            raise StructureError(f"partner {arr[bad[0]]} is not an integer", position=int(bad[0]) + 1)
    arr = arr.astype(np.int64, copy=False)
    n = arr.shape[0]
    if length is not None and n != length:
        raise StructureError(f"structure has length {n} but the sequence has length {length}")
    bad = np.flatnonzero((arr < -1) | (arr >= n))
    if bad.size:
        i = int(bad[0])
        raise StructureError(f"partner {arr[i]} out of range for length {n} (use -1 for unpaired)",
                             position=i + 1)
    idx = np.arange(n)
    bad = np.flatnonzero(arr == idx)
    if bad.size:
        raise StructureError("position paired with itself", position=int(bad[0]) + 1)
    paired = arr >= 0
    back = np.where(paired, arr[np.where(paired, arr, 0)], -1) if n else arr
    bad = np.flatnonzero(paired & (back != idx))
    if bad.size:
        i = int(bad[0])
        j = int(arr[i])
        other = int(arr[j])
        what = "unpaired" if other < 0 else f"paired with {other + 1}"
        raise StructureError(f"paired with {j + 1}, but {j + 1} is {what} (partner array not symmetric)",
                             position=i + 1)
    return arr


def pairs_to_partners(pairs: Iterable[tuple[int, int]] | np.ndarray, length: int) -> np.ndarray:
    """Partner array of ``length`` from 0-based pairs ``(i, j)`` in either orientation.

    A pair listed twice (also as ``(j, i)``) is accepted; a position in two different pairs is an error.
    """
    partner = np.full(length, -1, dtype=np.int64)
    for i, j in pairs:
        i, j = int(i), int(j)
        for p in (i, j):
            if not 0 <= p < length:
                raise StructureError(f"pair ({i}, {j}) is outside a structure of length {length} (0-based)")
        if i == j:
            raise StructureError("position paired with itself", position=i + 1)
        for a, b in ((i, j), (j, i)):
            if partner[a] not in (-1, b):
                raise StructureError(f"paired with both {partner[a] + 1} and {b + 1}", position=a + 1)
        partner[i], partner[j] = j, i
    return partner


def partners_to_pairs(partner: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
    """Sorted 0-based pairs ``(i, j)`` with ``i < j``."""
    arr = np.asarray(partner, dtype=np.int64)
    i = np.flatnonzero(arr > np.arange(arr.shape[0]))
    return list(zip(i.tolist(), arr[i].tolist(), strict=True))


def _pair_arrays(partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Opening and closing positions of all pairs, sorted by opening position."""
    i = np.flatnonzero(partner > np.arange(partner.shape[0]))
    return i, partner[i]


# ----------------------------------------------------------------------------------------------------------
# Largest pseudoknot-free subset
# ----------------------------------------------------------------------------------------------------------

def _range_extrema(values_min: np.ndarray, values_max: np.ndarray, lo: np.ndarray, hi: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Min of ``values_min`` and max of ``values_max`` over ``[lo, hi)`` for many ranges (sparse table).

    Empty ranges give (+inf-like, -1). O(n log n) to build, O(1) per range, so all pairs are checked at once.
    """
    n = values_min.shape[0]
    big = np.iinfo(np.int64).max
    out_min = np.full(lo.shape, big, dtype=np.int64)
    out_max = np.full(lo.shape, -1, dtype=np.int64)
    width = hi - lo
    ok = width > 0
    if n == 0 or not ok.any():
        return out_min, out_max
    mins, maxs = [values_min], [values_max]
    step = 1
    while 2 * step <= n:
        mins.append(np.minimum(mins[-1][:-step], mins[-1][step:]))
        maxs.append(np.maximum(maxs[-1][:-step], maxs[-1][step:]))
        step *= 2
    lo_ok, hi_ok, w = lo[ok], hi[ok], width[ok]
    level = np.floor(np.log2(w)).astype(np.int64)
    res_min = np.empty(w.shape, dtype=np.int64)
    res_max = np.empty(w.shape, dtype=np.int64)
    for k in np.unique(level):
        sel = level == k
        a, b = lo_ok[sel], hi_ok[sel] - (1 << int(k))
        res_min[sel] = np.minimum(mins[k][a], mins[k][b])
        res_max[sel] = np.maximum(maxs[k][a], maxs[k][b])
    out_min[ok], out_max[ok] = res_min, res_max
    return out_min, out_max


def _crossed_mask(partner: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True for pairs (i, j) that cross some other pair: a position strictly inside pairs outside."""
    n = partner.shape[0]
    paired = partner >= 0
    vmin = np.where(paired, partner, n)
    vmax = np.where(paired, partner, -1)
    inner_min, inner_max = _range_extrema(vmin, vmax, i + 1, j)
    return (inner_min < i) | (inner_max > j)


def _components(cross: np.ndarray) -> list[np.ndarray]:
    """Connected components of the (symmetric) crossing graph, as index arrays."""
    m = cross.shape[0]
    seen = np.zeros(m, dtype=bool)
    comps = []
    for s in range(m):
        if seen[s]:
            continue
        members = np.zeros(m, dtype=bool)
        members[s] = seen[s] = True
        frontier = np.array([s])
        while frontier.size:
            reach = cross[frontier].any(axis=0) & ~seen
            seen |= reach
            members |= reach
            frontier = np.flatnonzero(reach)
        comps.append(np.flatnonzero(members))
    return comps


def _max_noncrossing_component(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Exact maximum non-crossing subset of a few pairs: interval DP over their compressed endpoints.

    ``best[x][y]`` = most non-crossing pairs with both ends among points x..y. Row x is built from row x+1 and
    row partner(x)+1 with one vectorised max, so m pairs cost O(m) NumPy calls of length 2m. Ties are broken
    towards taking the pair that opens first, so of two equal stems the 5' one stays on the first page.
    Returns a boolean mask over the input pairs.
    """
    m = i.shape[0]
    pos = np.concatenate([i, j])
    order = np.argsort(pos, kind="stable")
    rank = np.empty(2 * m, dtype=np.int64)
    rank[order] = np.arange(2 * m)
    npts = 2 * m
    pt = np.empty(npts, dtype=np.int64)  # point -> partner point
    pt[rank[:m]] = rank[m:]
    pt[rank[m:]] = rank[:m]
    pair_of_point = np.empty(npts, dtype=np.int64)
    pair_of_point[rank[:m]] = np.arange(m)
    best = np.zeros((npts + 1, npts), dtype=np.int32)
    for x in range(npts - 1, -1, -1):
        row = best[x + 1].copy()
        k = pt[x]
        if k > x:
            inside = best[x + 1, k - 1] if k - 1 >= x + 1 else 0
            cand = 1 + inside + best[k + 1, k:]
            np.maximum(row[k:], cand, out=row[k:])
        best[x] = row
    keep = np.zeros(m, dtype=bool)
    stack = [(0, npts - 1)]
    while stack:
        x, y = stack.pop()
        if x >= y:
            continue
        k = pt[x]
        if x < k <= y:
            inside = best[x + 1, k - 1] if k - 1 >= x + 1 else 0
            if best[x, y] == 1 + inside + best[k + 1, y]:
                keep[pair_of_point[x]] = True
                stack.append((k + 1, y))
                stack.append((x + 1, k - 1))
                continue
        stack.append((x + 1, y))
    return keep


def _max_noncrossing(partner: np.ndarray) -> np.ndarray:
    """Mask over :func:`_pair_arrays` order of a largest pseudoknot-free (non-crossing) subset of pairs.

    Pairs that cross nothing are in every maximum subset; the rest split into connected components of the
    crossing graph, which are independent, and each component is solved exactly by an interval DP. Real
    structures have few crossing pairs, so this is a sparse-table query plus a few tiny DPs.
    """
    i, j = _pair_arrays(partner)
    keep = np.ones(i.shape[0], dtype=bool)
    crossed = np.flatnonzero(_crossed_mask(partner, i, j))
    if crossed.size == 0:
        return keep
    ci, cj = i[crossed], j[crossed]
    cross = (ci[:, None] < ci[None, :]) & (ci[None, :] < cj[:, None]) & (cj[:, None] < cj[None, :])
    cross |= cross.T
    for comp in _components(cross):
        sub = crossed[comp]
        keep[sub] = _max_noncrossing_component(i[sub], j[sub])
    return keep


def nested_subset(partner: Sequence[int] | np.ndarray) -> np.ndarray:
    """The largest pseudoknot-free subset of a structure, as a new partner array.

    Used for context labels (loops are only defined for nested structures) and as the first bracket page.
    """
    arr = validate_partners(partner)
    i, j = _pair_arrays(arr)
    keep = _max_noncrossing(arr)
    out = np.full(arr.shape[0], -1, dtype=np.int64)
    out[i[keep]], out[j[keep]] = j[keep], i[keep]
    return out


def pseudoknot_pages(partner: Sequence[int] | np.ndarray) -> np.ndarray:
    """Page number of every position (-1 unpaired): page 0 is the largest non-crossing subset, page 1 the
    largest non-crossing subset of the rest, and so on (greedy, as docs/architecture.md fixes for writers)."""
    arr = validate_partners(partner).copy()
    pages = np.full(arr.shape[0], -1, dtype=np.int64)
    page = 0
    while (arr >= 0).any():
        i, j = _pair_arrays(arr)
        keep = _max_noncrossing(arr)
        pages[i[keep]] = page
        pages[j[keep]] = page
        arr[i[keep]] = -1
        arr[j[keep]] = -1
        page += 1
    return pages


# ----------------------------------------------------------------------------------------------------------
# Dot-bracket and WUSS
# ----------------------------------------------------------------------------------------------------------

def dotbracket_to_partners(db: str) -> np.ndarray:
    """Partner array of a dot-bracket string with pseudoknot pages.

    Pages ``()`` ``[]`` ``{}`` ``<>`` ``Aa`` ... ``Zz`` (upper case opens, lower case closes) each have their own
    stack, so any pseudoknot that the page assignment of :func:`partners_to_dotbracket` can write is read back.
    """
    partner = np.full(len(db), -1, dtype=np.int64)
    stacks: list[list[int]] = [[] for _ in BRACKET_PAGES]
    for pos, ch in enumerate(db):
        if ch == ".":
            continue
        if ch in _OPENERS:
            stacks[_OPENERS[ch]].append(pos)
        elif ch in _CLOSERS:
            stack = stacks[_CLOSERS[ch]]
            if not stack:
                raise StructureError(f"unmatched closing bracket {ch!r}", position=pos + 1)
            other = stack.pop()
            partner[pos], partner[other] = other, pos
        else:
            raise StructureError(f"invalid dot-bracket character {ch!r} (allowed: . ()[]{{}}<> Aa-Zz)",
                                 position=pos + 1)
    _check_stacks_empty(stacks, db)
    return partner


def _check_stacks_empty(stacks: list[list[int]], text: str) -> None:
    """Raise for the leftmost opening bracket that was never closed."""
    left = [s[0] for s in stacks if s]
    if left:
        first = min(left)
        raise StructureError(f"unmatched opening bracket {text[first]!r}", position=first + 1)


def partners_to_dotbracket(partner: Sequence[int] | np.ndarray) -> str:
    """Dot-bracket string with pseudoknot pages assigned greedily (largest non-crossing subset first).

    Reading the result with :func:`dotbracket_to_partners` gives back exactly ``partner``. More than 30 pages
    (``()[]{}<>`` and ``Aa``-``Zz``) cannot be written and raise :class:`StructureError`.
    """
    return _write_pages(partner, BRACKET_PAGES, "dot-bracket")


def _write_pages(partner: Sequence[int] | np.ndarray, pages_chars: Sequence[tuple[str, str]], what: str) -> str:
    pages = pseudoknot_pages(partner)
    arr = np.asarray(partner, dtype=np.int64)
    if pages.size and pages.max() >= len(pages_chars):
        raise StructureError(f"structure needs {pages.max() + 1} bracket pages; {what} can write at most "
                             f"{len(pages_chars)}")
    out = ["."] * arr.shape[0]
    for pos in np.flatnonzero(pages >= 0).tolist():
        opener, closer = pages_chars[pages[pos]]
        out[pos] = opener if arr[pos] > pos else closer
    return "".join(out)


def wuss_to_partners(ss: str) -> np.ndarray:
    """Partner array of a WUSS string (Stockholm ``#=GC SS_cons``, Infernal), following Easel's esl_wuss2ct.

    ``< ( [ {`` share one stack and must be closed by their own kind; ``Aa``, ``Bb``, ... are pseudoknot
    pages; ``. , _ - : ~`` are unpaired. Anything else, or an unbalanced bracket, raises StructureError.
    """
    partner = np.full(len(ss), -1, dtype=np.int64)
    main: list[int] = []
    letters: list[list[int]] = [[] for _ in ascii_uppercase]
    for pos, ch in enumerate(ss):
        if ch in _WUSS_UNPAIRED:
            continue
        if ch in _WUSS_OPEN:
            main.append(pos)
        elif ch in _WUSS_CLOSE:
            if not main:
                raise StructureError(f"unmatched closing bracket {ch!r}", position=pos + 1)
            other = main.pop()
            if ss[other] != _WUSS_CLOSE[ch]:
                raise StructureError(f"{ch!r} closes {ss[other]!r} opened at position {other + 1}",
                                     position=pos + 1)
            partner[pos], partner[other] = other, pos
        elif "A" <= ch <= "Z":
            letters[ord(ch) - 65].append(pos)
        elif "a" <= ch <= "z":
            stack = letters[ord(ch) - 97]
            if not stack:
                raise StructureError(f"unmatched pseudoknot letter {ch!r}", position=pos + 1)
            other = stack.pop()
            partner[pos], partner[other] = other, pos
        else:
            raise StructureError(f"invalid WUSS character {ch!r}", position=pos + 1)
    _check_stacks_empty([main, *letters], ss)
    return partner


def partners_to_wuss(partner: Sequence[int] | np.ndarray) -> str:
    """Simplified WUSS (``<>`` for the nested page, ``Aa`` ... ``Zz`` for pseudoknot pages, ``.`` unpaired).

    Plain dot-bracket pages ``[]`` ``{}`` cannot be used here because WUSS reads all bracket kinds as one
    nested page.
    """
    return _write_pages(partner, (("<", ">"), *zip(ascii_uppercase, ascii_lowercase, strict=True)), "WUSS")


# ----------------------------------------------------------------------------------------------------------
# Structure-context labels (bpRNA loop types)
# ----------------------------------------------------------------------------------------------------------

def context_labels(partner: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-position structure-context labels (``int8``, ids of :data:`STRUCTURE_LABELS`), bpRNA-style.

    Paired positions (pseudoknotted pairs included) are STEM. An unpaired position takes the type of the loop
    that encloses it in the largest nested subset: HAIRPIN when the closing pair has no pair inside; BULGE
    when the loop is closed by exactly one outer and one inner pair and the other side of the loop has no
    unpaired base; LOOP for other interior loops and multiloops; NONE in the exterior loop. A pseudoknotted
    base counts as unpaired when measuring the sides of an interior loop (loops are defined on the nested
    part only), but is itself labelled STEM. One stack pass, linear in the length.
    """
    full = validate_partners(partner)
    nested = nested_subset(full)
    n = full.shape[0]
    labels = np.zeros(n, dtype=np.int8)
    enclosing = np.full(n, -1, dtype=np.int64)  # opening position of the innermost enclosing pair
    n_children = np.zeros(n, dtype=np.int64)
    last_child = np.full(n, -1, dtype=np.int64)  # opening position of the (only, when one) inner pair
    stack: list[int] = []
    for pos, other in enumerate(nested.tolist()):
        if other > pos:
            if stack:
                n_children[stack[-1]] += 1
                last_child[stack[-1]] = pos
            stack.append(pos)
        elif other >= 0:
            stack.pop()
        elif stack:
            enclosing[pos] = stack[-1]
    for pos in np.flatnonzero((nested < 0) & (enclosing >= 0)).tolist():
        labels[pos] = _loop_type(int(enclosing[pos]), nested, n_children, last_child)
    labels[full >= 0] = STEM
    return labels


def _loop_type(outer: int, nested: np.ndarray, n_children: np.ndarray, last_child: np.ndarray) -> int:
    """Loop label of the loop closed by the pair that opens at ``outer``."""
    kids = n_children[outer]
    if kids == 0:
        return HAIRPIN
    if kids > 1:
        return LOOP
    inner = int(last_child[outer])
    left = inner - outer - 1
    right = int(nested[outer]) - int(nested[inner]) - 1
    return BULGE if left == 0 or right == 0 else LOOP


def labels_to_string(labels: Sequence[int] | np.ndarray) -> str:
    """One letter per label (N S L B H), handy in tests and when eyeballing labels next to dot-bracket."""
    letters = "NSLBH"
    return "".join(letters[int(x)] if x != IGNORE_INDEX else "?" for x in labels)


# ----------------------------------------------------------------------------------------------------------
# Pair metrics
# ----------------------------------------------------------------------------------------------------------

def _pair_set(partner: np.ndarray) -> set[tuple[int, int]]:
    return set(partners_to_pairs(partner))


def _checked_pair(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    p, t = validate_partners(pred), validate_partners(true)
    if p.shape != t.shape:
        raise StructureError(f"predicted structure has length {p.shape[0]}, true structure {t.shape[0]}")
    return p, t


def _scores(tp: int, n_pred: int, n_true: int, length: int) -> tuple[float, float, float, float]:
    """Precision, recall, F1, MCC from counts; MCC over all L(L-1)/2 candidate pairs.

    Conventions for empty sets (no 0/0): both empty -> all 1.0 (a perfect prediction of "no pairs");
    exactly one empty -> all 0.0. When a denominator of MCC is zero otherwise, MCC is 0.0.
    """
    if n_pred == 0 and n_true == 0:
        return 1.0, 1.0, 1.0, 1.0
    if n_pred == 0 or n_true == 0:
        return 0.0, 0.0, 0.0, 0.0
    fp, fn = n_pred - tp, n_true - tp
    precision, recall = tp / n_pred, tp / n_true
    f1 = 2 * tp / (2 * tp + fp + fn)
    tn = length * (length - 1) // 2 - tp - fp - fn
    denom = float(n_pred) * float(n_true) * float(tn + fp) * float(tn + fn)
    mcc = (tp * tn - fp * fn) / np.sqrt(denom) if denom > 0 else 0.0
    return precision, recall, f1, float(mcc)


def pair_metrics(pred_partner: Sequence[int] | np.ndarray, true_partner: Sequence[int] | np.ndarray
                 ) -> dict[str, float]:
    """Exact base-pair ``precision``, ``recall``, ``f1`` and ``mcc`` of one prediction.

    MCC counts true negatives over all L(L-1)/2 possible pairs: TN = L(L-1)/2 - TP - FP - FN.
    Empty structures: both empty gives 1.0 everywhere, exactly one empty gives 0.0 everywhere.
    """
    p, t = _checked_pair(pred_partner, true_partner)
    ps, ts = _pair_set(p), _pair_set(t)
    precision, recall, f1, mcc = _scores(len(ps & ts), len(ps), len(ts), p.shape[0])
    return {"precision": precision, "recall": recall, "f1": f1, "mcc": mcc}


def _flexible_tp(pred: set[tuple[int, int]], true: set[tuple[int, int]]) -> int:
    """Size of a maximum one-to-one matching of predicted to true pairs within a shift of one.

    A predicted (i, j) may match a true (i, j), (i+-1, j) or (i, j+-1). Each true pair is credited to at most
    one predicted pair and vice versa, so flexible scores never exceed 1 and never fall below exact ones.
    Every pair has at most two candidates (they must share i or j), so augmenting paths are short.
    """
    cand = {p: [q for q in ((p[0], p[1]), (p[0] - 1, p[1]), (p[0] + 1, p[1]), (p[0], p[1] - 1),
                            (p[0], p[1] + 1)) if q in true] for p in pred}
    match_of_true: dict[tuple[int, int], tuple[int, int]] = {}
    for start in sorted(p for p in pred if cand[p]):
        _augment(start, cand, match_of_true)
    return len(match_of_true)


def _augment(start: tuple[int, int], cand: dict, match_of_true: dict) -> bool:
    """Kuhn's augmenting path from predicted pair ``start`` (iterative, so long chains cannot overflow)."""
    visited: set = set()
    stack = [(start, iter(cand[start]))]
    path: list[tuple[tuple[int, int], tuple[int, int]]] = []
    while stack:
        p, it = stack[-1]
        q = next((q for q in it if q not in visited), None)
        if q is None:
            stack.pop()
            if path:
                path.pop()
            continue
        visited.add(q)
        path.append((p, q))
        if q not in match_of_true:
            for pp, qq in path:
                match_of_true[qq] = pp
            return True
        nxt = match_of_true[q]
        stack.append((nxt, iter(cand[nxt])))
    return False


def pair_metrics_flexible(pred_partner: Sequence[int] | np.ndarray, true_partner: Sequence[int] | np.ndarray
                          ) -> dict[str, float]:
    """Shift-tolerant ``flex_precision``, ``flex_recall``, ``flex_f1``, ``flex_mcc``.

    A predicted pair (i, j) is correct when (i, j), (i+-1, j) or (i, j+-1) is a true pair, as in bpRNA /
    SPOT-RNA evaluation, with one difference we chose deliberately: matching is one-to-one (a maximum
    matching), so one true pair never makes two predicted pairs correct. TP is the matching size, FP and FN
    the unmatched predicted and true pairs; empty-set conventions as in :func:`pair_metrics`.
    """
    p, t = _checked_pair(pred_partner, true_partner)
    ps, ts = _pair_set(p), _pair_set(t)
    precision, recall, f1, mcc = _scores(_flexible_tp(ps, ts), len(ps), len(ts), p.shape[0])
    return {"flex_precision": precision, "flex_recall": recall, "flex_f1": f1, "flex_mcc": mcc}


def mean_pair_metrics(
    items: Iterable[tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray]], *, flexible: bool = False
) -> dict[str, float]:
    """Per-sequence average (mean of per-sequence scores, as docs/architecture.md asks) over ``(pred, true)`` pairs.

    Returns the keys of :func:`pair_metrics`, plus those of :func:`pair_metrics_flexible` when ``flexible``.
    """
    rows = []
    for pred, true in items:
        row = pair_metrics(pred, true)
        if flexible:
            row.update(pair_metrics_flexible(pred, true))
        rows.append(row)
    if not rows:
        raise InputError("no (prediction, truth) pairs to average")
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
