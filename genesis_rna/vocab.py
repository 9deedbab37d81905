"""The fixed vocabulary and sequence normalisation, without PyTorch (preprocessing workers and file readers use
them). The ids are fixed (see docs/architecture.md and the README): ``[PAD]=0 [MASK]=1 [CLS]=2 [SEP]=3 A=4 C=5 G=6
U=7 N=8``; :mod:`genesis_rna.tokenization` builds the tokenisers on them."""

from __future__ import annotations

import os

from .errors import SequenceError

__all__ = ["IGNORE_INDEX", "PAD_TOKEN", "MASK_TOKEN", "CLS_TOKEN", "SEP_TOKEN", "SPECIAL_TOKENS", "NUCLEOTIDES", "VOCAB", "PAD_ID", "MASK_ID", "CLS_ID", "SEP_ID", "NUCLEOTIDE_IDS", "N_ID", "RANDOM_REPLACEMENT_IDS", "IUPAC_AMBIGUITY", "GAP_CHARS", "count_gaps", "normalise"]

PAD_TOKEN, MASK_TOKEN, CLS_TOKEN, SEP_TOKEN = "[PAD]", "[MASK]", "[CLS]", "[SEP]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, MASK_TOKEN, CLS_TOKEN, SEP_TOKEN)
NUCLEOTIDES: tuple[str, ...] = ("A", "C", "G", "U", "N")
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + NUCLEOTIDES
PAD_ID, MASK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3
#: label of positions a loss ignores (unknown structure, unmasked tokens): PyTorch's default ``ignore_index``.
IGNORE_INDEX = -100
NUCLEOTIDE_IDS: dict[str, int] = {nt: i + len(SPECIAL_TOKENS) for i, nt in enumerate(NUCLEOTIDES)}
N_ID = NUCLEOTIDE_IDS["N"]
#: ids a masked position may be replaced with in the 10% "random token" case (the four bases, not N).
RANDOM_REPLACEMENT_IDS: tuple[int, ...] = tuple(NUCLEOTIDE_IDS[b] for b in "ACGU")

IUPAC_AMBIGUITY = frozenset("RYKMSWBDHV")
GAP_CHARS = frozenset("-.~")
# Letters that occur in protein one-letter code but never in nucleotide IUPAC code.
_PROTEIN_ONLY = frozenset("EFIJLOPQXZ*")
_PROTEIN_LETTERS = frozenset("ACDEFGHIKLMNPQRSTVWYXBZJUO*")
_CANONICAL = frozenset("ACGTUN")

# One translation table does the whole mapping; any character it leaves outside ACGUN is invalid.
_NORMALISE_TABLE = str.maketrans({"T": "U", **{c: "N" for c in IUPAC_AMBIGUITY}})
_VALID = frozenset("ACGUN")


def _looks_like_protein(letters: str) -> bool:
    """A record is a protein when most of its letters are not A/C/G/T/U/N but are protein letters."""
    alpha = [c for c in letters if c.isalpha() or c == "*"]
    if len(alpha) < 8:
        return False
    canonical = sum(c in _CANONICAL for c in alpha)
    proteinish = all(c in _PROTEIN_LETTERS for c in alpha)
    return canonical / len(alpha) < 0.5 and proteinish and any(c in _PROTEIN_ONLY for c in alpha)


def count_gaps(sequence: str) -> int:
    """Number of alignment gap characters (``- . ~``) in ``sequence``."""
    return sum(sequence.count(g) for g in GAP_CHARS)


def normalise(
    sequence: str,
    *,
    record: str | None = None,
    path: str | os.PathLike | None = None,
    remove_gaps: bool = True,
    allow_empty: bool = False,
) -> str:
    """Bring a raw nucleotide string to the model alphabet ``ACGUN``.

    Strips whitespace, uppercases, maps ``T -> U`` and IUPAC ambiguity codes to ``N``, and drops alignment gaps
    (callers that need the count use :func:`count_gaps` first). Anything else raises :class:`SequenceError`
    naming the record, the 1-based position in the raw string and the character, or saying that the record looks
    like a protein sequence.
    """
    if not isinstance(sequence, str):
        raise SequenceError(f"expected a string, got {type(sequence).__name__}", path=path, record=record)
    raw = "".join(sequence.split()).upper()
    if remove_gaps:
        kept = "".join(c for c in raw if c not in GAP_CHARS)
    else:
        kept = raw
    out = kept.translate(_NORMALISE_TABLE)
    if not out and not allow_empty:
        raise SequenceError("zero-length sequence", path=path, record=record)
    if any(c not in _VALID for c in out):
        if _looks_like_protein(kept):
            raise SequenceError(
                "looks like a protein sequence, not RNA/DNA (letters such as "
                + ", ".join(sorted({c for c in kept if c in _PROTEIN_ONLY})[:5])
                + ")",
                path=path,
                record=record,
            )
        # Report the position in the record as the user wrote it: 1-based over the sequence with whitespace
        # (line breaks) removed but gaps still counted, so "AC-GX" reports the X at position 5, where the user
        # sees it. Control bytes are shown visibly.
        allowed = GAP_CHARS if remove_gaps else frozenset()
        bad = next(i for i, c in enumerate(raw) if c not in allowed and c.translate(_NORMALISE_TABLE) not in _VALID)
        char = raw[bad]
        shown = repr(char) if (not char.isprintable() or char.isspace()) else f"'{char}'"
        if char in GAP_CHARS:
            problem = f"alignment gap {shown} not allowed here (allowed: A C G U T N and IUPAC codes)"
        else:
            gaps = ", gaps - . ~" if remove_gaps else ""
            problem = f"invalid character {shown} (allowed: A C G U T N, IUPAC codes{gaps})"
        raise SequenceError(problem, path=path, record=record, position=bad + 1)
    return out
