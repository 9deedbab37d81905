"""Checks shared by the one-line-per-nucleotide formats (CT, BPSEQ).

Both list ``index base partner`` per nucleotide, 1-based with 0 for unpaired; the same checks (partner in
range, not itself, symmetric) apply, and an error should name the line of the file, not an array index.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError, InputError, SequenceError, StructureError
from ..vocab import normalise
from ._text import check_record_id, check_sequence_text, locate
from .records import StructureRecord

PathLike = str | os.PathLike


def parse_int(token: str, what: str, *, path: PathLike, record: str | None, line: int) -> int:
    try:
        return int(token)
    except ValueError:
        raise FormatError(f"{what} {token!r} is not an integer", path=path, record=record, line=line) from None


def build_record(rec_id: str, description: str, bases: list[str], partners: list[int], lines: list[int],
                 *, path: PathLike, kind: str) -> StructureRecord:
    """Structure record from 1-based partners (0 = unpaired) read at the given file lines."""
    n = len(bases)
    if n == 0:
        raise SequenceError("zero-length sequence", path=path, record=rec_id)
    p1 = np.asarray(partners, dtype=np.int64)
    for k, (base, j) in enumerate(zip(bases, partners, strict=True)):
        if len(base) != 1:
            raise FormatError(f"base {base!r} must be a single letter", path=path, record=rec_id, line=lines[k])
        if not 0 <= j <= n:
            raise StructureError(f"partner {j} out of range 0..{n}", path=path, record=rec_id, line=lines[k])
        if j == k + 1:
            raise StructureError(f"nucleotide {j} paired with itself", path=path, record=rec_id, line=lines[k])
    partner = p1 - 1
    paired = np.flatnonzero(partner >= 0)
    back = partner[partner[paired]]
    bad = paired[back != paired]
    if bad.size:
        k = int(bad[0])
        j = int(partner[k])
        other = "unpaired" if partner[j] < 0 else f"paired with {partner[j] + 1}"
        raise StructureError(f"nucleotide {k + 1} is paired with {j + 1}, but {j + 1} is {other} "
                             f"({kind} pairs must be listed on both lines)", path=path, record=rec_id,
                             line=lines[k])
    try:
        seq = normalise("".join(bases), record=rec_id, path=path, remove_gaps=False)
    except InputError as err:
        line = lines[err.position - 1] if err.position and err.position <= n else lines[0]
        raise locate(err, path=path, line=line) from None
    return StructureRecord(rec_id, seq, partner, description)


def check_writable(rec: StructureRecord, path: PathLike, kind: str) -> None:
    """Reject what would not read back: wrong type, bad id, empty sequence, whitespace or '>' in it."""
    if not isinstance(rec, StructureRecord):
        raise InputError(f"expected a StructureRecord, got {type(rec).__name__}", path=path)
    try:
        check_record_id(rec.id, kind)
        check_sequence_text(rec.sequence, rec.id, kind)
    except InputError as err:
        raise locate(err, path=path) from None
    if "\n" in rec.description or "\r" in rec.description:
        raise StructureError("description contains a line break", path=path, record=rec.id)
