"""Readers and writers for sequence and structure files: FASTA, CT, BPSEQ, DBN (dot-bracket), Stockholm.

Every reader takes a ``str`` or ``Path``, reads gzip transparently (recognised by its magic bytes), passes
sequences through :func:`genesis_rna.tokenization.normalise` and raises an :class:`~genesis_rna.errors.InputError`
subclass whose one-line message names the file, the record and, where it helps, the line. Every writer writes
to a temporary file and renames it, so a failure leaves no partial output; a ``.gz`` output name is gzipped.

:func:`read_structures` / :func:`write_structures` pick the format from the file extension.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import FormatError, InputError
from ._text import strip_gz
from .bpseq import read_bpseq, write_bpseq
from .ct import iter_ct, read_ct, write_ct
from .dbn import iter_dbn, read_dbn, write_dbn
from .fasta import iter_fasta, read_fasta, write_fasta
from .records import SequenceRecord, StructureRecord
from .stockholm import StockholmFamily, iter_stockholm, read_stockholm, write_stockholm

__all__ = [
    "SequenceRecord", "StructureRecord", "StockholmFamily",
    "iter_fasta", "read_fasta", "write_fasta",
    "iter_ct", "read_ct", "write_ct",
    "read_bpseq", "write_bpseq",
    "iter_dbn", "read_dbn", "write_dbn",
    "iter_stockholm", "read_stockholm", "write_stockholm",
    "STRUCTURE_FORMATS", "structure_format", "read_structures", "write_structures",
]

#: file extension -> structure format name (a further ``.gz`` is allowed on all of them).
STRUCTURE_FORMATS: dict[str, str] = {
    ".ct": "ct", ".bpseq": "bpseq", ".dbn": "dbn", ".db": "dbn",
    ".sto": "stockholm", ".stk": "stockholm", ".stockholm": "stockholm",
}


def structure_format(path: str | os.PathLike) -> str:
    """Format name for ``path`` from its extension (``.gz`` ignored); FormatError for anything unknown."""
    ext = os.path.splitext(strip_gz(path))[1].lower()
    if ext not in STRUCTURE_FORMATS:
        known = ", ".join(STRUCTURE_FORMATS)
        raise FormatError(f"unknown structure file extension {ext or '(none)'!r}; expected one of {known} "
                          "(optionally followed by .gz), or pass format=", path=path)
    return STRUCTURE_FORMATS[ext]


def _check_format(fmt: str, path: str | os.PathLike) -> str:
    if fmt not in set(STRUCTURE_FORMATS.values()):
        raise FormatError(f"unknown structure format {fmt!r}; expected one of "
                          f"{', '.join(sorted(set(STRUCTURE_FORMATS.values())))}", path=path)
    return fmt


def read_structures(path: str | os.PathLike, format: str | None = None) -> list[StructureRecord]:
    """All structures in a CT, BPSEQ, DBN or Stockholm file (Stockholm: every sequence of every family)."""
    fmt = _check_format(format, path) if format else structure_format(path)
    if fmt == "ct":
        return read_ct(path)
    if fmt == "bpseq":
        return [read_bpseq(path)]
    if fmt == "dbn":
        return read_dbn(path)
    return [rec for fam in iter_stockholm(path) for rec in fam.records]


def write_structures(records: Iterable[StructureRecord] | StructureRecord, path: str | os.PathLike,
                     format: str | None = None) -> int:
    """Write structures in the format of ``path``'s extension (or ``format``); returns how many were written.

    BPSEQ holds exactly one structure per file, so more than one is an error rather than a silent choice.
    """
    fmt = _check_format(format, path) if format else structure_format(path)
    recs = [records] if isinstance(records, StructureRecord) else list(records)
    if fmt == "ct":
        return write_ct(recs, path)
    if fmt == "dbn":
        return write_dbn(recs, path)
    if fmt == "stockholm":
        return write_stockholm(recs, path)
    if len(recs) != 1:
        raise InputError(f"BPSEQ holds one structure per file, got {len(recs)}", path=path)
    write_bpseq(recs[0], path)
    return 1
