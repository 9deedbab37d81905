"""Decoding base-pair probabilities into a valid structure.

A model gives a symmetric L x L matrix of pairing probabilities; a structure must be a matching
(nobody paired twice) with hairpin loops of at least three nucleotides (``j - i > 3``), canonical or GU pairs
only unless asked otherwise, and, by default, no pseudoknots. Thresholding the matrix violates all of these.
:func:`decode_nested` is a maximum-expected-accuracy style decoder: a Nussinov DP that maximises
``sum (p_ij - threshold)`` over nested sets of allowed pairs (with ``threshold = 1 / (2 gamma)`` this is the
gamma-MEA objective up to a constant: each pair of probability p counts 2 gamma p against the two unpaired
probabilities it gives up). It runs in O(L^3) time and O(L^2) memory, vectorised per diagonal with strided
views, so L = 500 takes about a second. :func:`decode_greedy` is the pseudoknot-capable variant: a greedy
maximum-weight matching (pairs in order of probability, each taken when both ends are free); with
``pseudoknots=True`` :func:`decode` keeps the nested MEA structure and adds crossing pairs greedily.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .pairs import validate_partners

__all__ = ["MIN_HAIRPIN", "CANONICAL_PAIRS", "allowed_pairs", "decode_nested", "decode_greedy", "decode"]

#: minimum number of unpaired nucleotides in a hairpin loop: pairs need ``j - i > MIN_HAIRPIN``.
MIN_HAIRPIN = 3
CANONICAL_PAIRS = frozenset({"AU", "UA", "GC", "CG", "GU", "UG"})


# ----------------------------------------------------------------------------------------------- constraints
def allowed_pairs(sequence: str, *, allow_noncanonical: bool = False, min_hairpin: int = MIN_HAIRPIN
                  ) -> np.ndarray:
    """Boolean L x L mask (symmetric) of the pairs a structure may contain.

    Canonical Watson-Crick and GU wobble pairs only unless ``allow_noncanonical``; positions closer than
    ``min_hairpin + 1`` never pair. Any letter other than ACGU (N, ambiguity codes) pairs with nothing unless
    non-canonical pairs are allowed.
    """
    seq = sequence.upper().replace("T", "U")
    n = len(seq)
    idx = np.arange(n)
    mask = np.abs(idx[:, None] - idx[None, :]) > min_hairpin
    if not allow_noncanonical:
        codes = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8) if n else np.zeros(0, np.uint8)
        canon = np.zeros((256, 256), dtype=bool)
        for pair in CANONICAL_PAIRS:
            canon[ord(pair[0]), ord(pair[1])] = True
        mask &= canon[codes[:, None], codes[None, :]]
    return mask


def _check_matrix(prob: np.ndarray) -> np.ndarray:
    arr = np.asarray(prob, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InputError(f"pair probabilities must be a square L x L matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("pair probabilities contain NaN or infinite values")
    return arr


def _weights(prob: np.ndarray, allowed: np.ndarray | None, threshold: float) -> np.ndarray:
    """Symmetrised gains ``p_ij - threshold`` of allowed pairs; -inf where a pair may not (or should not) form."""
    p = _check_matrix(prob)
    p = (p + p.T) / 2.0
    n = p.shape[0]
    ok = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) > MIN_HAIRPIN
    if allowed is not None:
        ok &= np.asarray(allowed, dtype=bool)
    w = p - threshold
    w[~ok | (w <= 0)] = -np.inf
    return w


# ----------------------------------------------------------------------------------------------- nested (MEA)
def decode_nested(prob: np.ndarray, allowed: np.ndarray | None = None, threshold: float = 0.5) -> np.ndarray:
    """Pseudoknot-free partner array maximising ``sum (p_ij - threshold)`` over allowed pairs (Nussinov DP).

    ``S[i, j]`` = best score of the segment i..j: i unpaired, j unpaired, (i, j) paired around ``S[i+1, j-1]``,
    or a split ``S[i, k] + S[k+1, j]``. All segments of one length are done at once; the split maximum reads
    ``S[i, i..j-1]`` and ``S[i+1..j, j]`` through zero-copy strided views of S and of S transposed. Only pairs
    with positive gain can help, so ``threshold`` is also the lowest probability a predicted pair can have.
    """
    w = _weights(prob, allowed, threshold)
    n = w.shape[0]
    partner = np.full(n, -1, dtype=np.int64)
    if n < MIN_HAIRPIN + 2 or not np.isfinite(w).any():
        return partner
    score = np.zeros((n + 1, n + 1))  # score[i, j] for i <= j; extra row/col keeps i+1 / j-1 in range
    score_t = np.zeros((n + 1, n + 1))  # score_t[j, i] = score[i, j]
    flat, flat_t = score.reshape(-1), score_t.reshape(-1)
    stride = score.strides[1]
    row = n + 1
    for d in range(1, n):
        i = np.arange(n - d)
        j = i + d
        best = np.maximum(score[i + 1, j], score[i, j - 1])
        if d > MIN_HAIRPIN:
            inner = score[i + 1, j - 1] if d > 1 else 0.0
            best = np.maximum(best, w[i, j] + inner)
        if d >= 2:
            # split k = i + m, m = 0..d-1: score[i, i+m] + score[i+m+1, j]
            left = np.lib.stride_tricks.as_strided(flat, shape=(n - d, d), strides=((row + 1) * stride, stride))
            right = np.lib.stride_tricks.as_strided(flat_t[d * row + 1:], shape=(n - d, d),
                                                    strides=((row + 1) * stride, stride))
            best = np.maximum(best, (left + right).max(axis=1))
        score[i, j] = best
        score_t[j, i] = best
    _traceback(score, w, partner)
    return partner


def _traceback(score: np.ndarray, w: np.ndarray, partner: np.ndarray) -> None:
    """Recover one optimal structure; ties prefer unpaired, then paired, then the first split."""
    n = partner.shape[0]
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i <= MIN_HAIRPIN:
            continue
        s = score[i, j]
        if s <= 0:
            continue
        if s == score[i + 1, j]:
            stack.append((i + 1, j))
            continue
        if s == score[i, j - 1]:
            stack.append((i, j - 1))
            continue
        if np.isfinite(w[i, j]) and s == w[i, j] + score[i + 1, j - 1]:
            partner[i], partner[j] = j, i
            stack.append((i + 1, j - 1))
            continue
        ks = np.arange(i, j)
        splits = score[i, ks] + score[ks + 1, j]
        k = int(ks[int(np.argmax(splits == s))]) if np.any(splits == s) else int(ks[int(np.argmax(splits))])
        stack.append((i, k))
        stack.append((k + 1, j))


# ----------------------------------------------------------------------------------------------- greedy
def decode_greedy(prob: np.ndarray, allowed: np.ndarray | None = None, threshold: float = 0.5,
                  start: np.ndarray | None = None) -> np.ndarray:
    """Greedy maximum-weight matching: pairs above ``threshold`` in order of probability, each taken when both
    ends are still free. Pseudoknots may result. ``start`` is a partner array to extend (its pairs are kept)."""
    w = _weights(prob, allowed, threshold)
    n = w.shape[0]
    partner = np.full(n, -1, dtype=np.int64) if start is None else np.array(start, dtype=np.int64)
    iu, ju = np.nonzero(np.triu(np.isfinite(w), k=1))
    order = np.argsort(-w[iu, ju], kind="stable")
    for k in order:
        i, j = int(iu[k]), int(ju[k])
        if partner[i] < 0 and partner[j] < 0:
            partner[i], partner[j] = j, i
    return partner


def decode(prob: np.ndarray, sequence: str | None = None, *, threshold: float = 0.5,
           allow_noncanonical: bool = False, pseudoknots: bool = False, method: str = "mea") -> np.ndarray:
    """A valid structure from pair probabilities: the nested MEA decode, plus greedy crossing pairs with
    ``pseudoknots``; ``method="greedy"`` uses the greedy matching alone (fast, pseudoknots allowed).

    Without ``sequence`` every pair type is allowed (only the hairpin rule applies).
    """
    p = _check_matrix(prob)
    if sequence is not None and len(sequence) != p.shape[0]:
        raise InputError(f"sequence has length {len(sequence)} but the pair matrix is {p.shape[0]} x {p.shape[1]}")
    allowed = None if sequence is None else allowed_pairs(sequence, allow_noncanonical=allow_noncanonical)
    if method == "greedy":
        partner = decode_greedy(p, allowed, threshold)
    elif method == "mea":
        partner = decode_nested(p, allowed, threshold)
        if pseudoknots:
            partner = decode_greedy(p, allowed, threshold, start=partner)
    else:
        raise InputError(f"unknown decoding method {method!r}: use mea or greedy")
    return validate_partners(partner)
