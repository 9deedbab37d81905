"""Dot-bracket (DBN) files: ``>name`` / sequence / structure, one record after another.

This is what RNAfold and most deep-learning folding tools print: the structure line may end with an energy
in parentheses, ``((..)) (-12.30)``, which is dropped. The ``>name`` line of the first record may be missing
(a bare two-line file), in which case the id is the file name's stem. Pseudoknots use the pages of
:func:`genesis_rna.structure.pairs.dotbracket_to_partners`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

from ..errors import FormatError, InputError, StructureError
from ..structure.pairs import dotbracket_to_partners, partners_to_dotbracket
from ..vocab import normalise
from ._tables import check_writable
from ._text import file_stem, locate, numbered_lines, open_output
from .records import StructureRecord

__all__ = ["iter_dbn", "read_dbn", "write_dbn"]

PathLike = str | os.PathLike

_ENERGY = re.compile(r"\s+\(\s*[-+]?\d+(\.\d*)?\s*\)\s*$")


class _Pending:
    """The record being assembled: header, sequence line and structure line, each with its line number."""

    def __init__(self, rec_id: str, desc: str, lineno: int | None) -> None:
        self.id, self.desc, self.header_line = rec_id, desc, lineno
        self.seq: tuple[int, str] | None = None
        self.struct: tuple[int, str] | None = None


def _finish(rec: _Pending, path: PathLike) -> StructureRecord:
    if rec.seq is None:
        raise FormatError("record has no sequence line", path=path, record=rec.id, line=rec.header_line)
    if rec.struct is None:
        raise FormatError("record has no dot-bracket line", path=path, record=rec.id, line=rec.seq[0])
    seq_line, raw_seq = rec.seq
    struct_line, raw_struct = rec.struct
    try:
        seq = normalise(raw_seq, record=rec.id, path=path, remove_gaps=False)
    except InputError as err:
        raise locate(err, path=path, line=seq_line) from None
    db = _ENERGY.sub("", raw_struct).strip()
    try:
        if len(db) != len(seq):
            raise StructureError(f"dot-bracket has length {len(db)} but the sequence has length {len(seq)}")
        partner = dotbracket_to_partners(db)
    except InputError as err:
        raise locate(err, path=path, record=rec.id, line=struct_line) from None
    return StructureRecord(rec.id, seq, partner, rec.desc)


def iter_dbn(path: PathLike) -> Iterator[StructureRecord]:
    """Stream the records of a DBN file (plain or gzip)."""
    current: _Pending | None = None
    n = 0
    for lineno, line in numbered_lines(path, "DBN"):
        text = line.strip()
        if not text:
            continue
        if text.startswith(">"):
            if current is not None:
                n += 1
                yield _finish(current, path)
            parts = text[1:].split(None, 1)
            if not parts:
                raise FormatError("empty record id in header (nothing after '>')", path=path, line=lineno)
            current = _Pending(parts[0], parts[1].strip() if len(parts) > 1 else "", lineno)
        elif current is None and n == 0:
            current = _Pending(file_stem(path), "", None)
            current.seq = (lineno, text)
        elif current is None or current.struct is not None:
            raise FormatError(f"expected a '>' header line, found {text[:20]!r}", path=path, line=lineno)
        elif current.seq is None:
            current.seq = (lineno, text)
        else:
            current.struct = (lineno, text)
    if current is not None:
        n += 1
        yield _finish(current, path)
    if n == 0:
        raise FormatError("no DBN records (empty file?)", path=path)


def read_dbn(path: PathLike) -> list[StructureRecord]:
    """All records of a DBN file."""
    return list(iter_dbn(path))


def write_dbn(records: Iterable[StructureRecord] | StructureRecord, path: PathLike) -> int:
    """Write records as ``>id description`` / sequence / dot-bracket (pseudoknots on further pages)."""
    if isinstance(records, StructureRecord):
        records = [records]
    n = 0
    with open_output(path) as fh:
        for rec in records:
            check_writable(rec, path, "DBN")
            try:
                db = partners_to_dotbracket(rec.partner)
            except InputError as err:
                raise locate(err, path=path, record=rec.id) from None
            header = f">{rec.id} {rec.description}".rstrip() if rec.description else f">{rec.id}"
            fh.write(f"{header}\n{rec.sequence}\n{db}\n")
            n += 1
    return n
