"""BPSEQ files: one structure per file, one line ``index base partner`` per nucleotide (1-based, 0 unpaired).

Lines starting with ``#`` are comments; header lines before the first nucleotide line (the Gutell CRW
files start with ``Filename:``, ``Organism:``, ``Accession Number:``, ``Citation ...``) are tolerated.

Record id: the ``Filename:`` header when present; else, when the first line is a comment ``# <id> <text>``
(what :func:`write_bpseq` writes, and a comment every BPSEQ tool skips), that id with ``<text>`` as the
description; else the file name's stem.
"""

from __future__ import annotations

import os

from ..errors import FormatError, InputError
from ._tables import build_record, check_writable, parse_int
from ._text import file_stem, numbered_lines, open_output
from .records import StructureRecord

__all__ = ["read_bpseq", "write_bpseq"]

PathLike = str | os.PathLike


def _is_data(fields: list[str]) -> bool:
    return bool(fields) and fields[0].lstrip("-+").isdigit()


def read_bpseq(path: PathLike) -> StructureRecord:
    """The structure of a BPSEQ file (plain or gzip), validated (indices in order, symmetric partners)."""
    rec_id, desc = file_stem(path), ""
    filename_id: str | None = None
    bases: list[str] = []
    partners: list[int] = []
    where: list[int] = []
    for lineno, line in numbered_lines(path, "BPSEQ"):
        fields = line.split()
        if not fields:
            continue
        if fields[0].startswith("#"):
            if lineno == 1:
                words = line.lstrip("#").split(None, 1)
                if words:
                    rec_id, desc = words[0], (words[1].strip() if len(words) > 1 else "")
            continue
        if not _is_data(fields):
            if bases:
                raise FormatError(f"expected 'index base partner', found {line.strip()!r}", path=path,
                                  record=filename_id or rec_id, line=lineno)
            if fields[0].lower() == "filename:" and len(fields) > 1:
                filename_id = fields[1]
            continue
        _read_line(fields, lineno, len(bases) + 1, path, filename_id or rec_id, bases, partners, where)
    if filename_id is not None:
        rec_id, desc = filename_id, ""
    if not bases:
        raise FormatError("no BPSEQ nucleotide lines (empty file?)", path=path)
    return build_record(rec_id, desc, bases, partners, where, path=path, kind="BPSEQ")


def _read_line(fields: list[str], lineno: int, expected: int, path: PathLike, rec_id: str,
               bases: list[str], partners: list[int], where: list[int]) -> None:
    if len(fields) != 3:
        raise FormatError(f"expected 'index base partner', found {' '.join(fields)!r}", path=path,
                          record=rec_id, line=lineno)
    index = parse_int(fields[0], "index", path=path, record=rec_id, line=lineno)
    if index != expected:
        raise FormatError(f"nucleotide index {index}, expected {expected}", path=path, record=rec_id,
                          line=lineno)
    bases.append(fields[1])
    partners.append(parse_int(fields[2], "partner", path=path, record=rec_id, line=lineno))
    where.append(lineno)


def write_bpseq(record: StructureRecord, path: PathLike) -> None:
    """Write one structure as BPSEQ, with a first comment line ``# <id> <description>``."""
    if not isinstance(record, StructureRecord):
        raise InputError(f"write_bpseq takes one StructureRecord, got {type(record).__name__}", path=path)
    check_writable(record, path, "BPSEQ")
    partner = record.partner.tolist()
    with open_output(path) as fh:
        fh.write(f"# {record.id} {record.description}".rstrip() + "\n")
        fh.write("".join(f"{k} {base} {partner[k - 1] + 1}\n" for k, base in enumerate(record.sequence, 1)))
