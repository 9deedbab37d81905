"""Connectivity-table (CT) files, as written by RNAstructure, mfold and the ArchiveII benchmark.

A structure is a header ``<length> <name...>`` (tab or spaces; the name may be missing or start with
``ENERGY = -12.3`` / ``dG = -12.3``) followed by one line per nucleotide:
``index base index-1 index+1 partner natural-index`` (partner 0 = unpaired). A file may hold several
structures one after another (RNAstructure writes suboptimal structures that way).

Record id = first token of the name (energy removed), description = the rest of the name followed by the
energy when there was one; a header without a name takes the file name's stem as id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

from ..errors import FormatError, InputError
from ._tables import build_record, check_writable, parse_int
from ._text import file_stem, numbered_lines, open_output
from .records import StructureRecord

__all__ = ["read_ct", "iter_ct", "write_ct"]

PathLike = str | os.PathLike

_ENERGY = re.compile(r"^(ENERGY|Energy|energy|dG)\s*=\s*(\S+)\s*")
_NUCLEOTIDE_LINE = re.compile(r"^\s*\d+\s+\S\s+\d+\s+\d+\s+\d+(\s+\d+)?\s*$")


def _parse_header(text: str, lineno: int, path: PathLike) -> tuple[int, str, str]:
    """``(length, id, description)`` of a CT header line."""
    if _NUCLEOTIDE_LINE.match(text):
        raise FormatError("expected a CT header '<length> <name>', found a nucleotide line (more nucleotide "
                          "lines than the header before promised?)", path=path, line=lineno)
    parts = text.split(None, 1)
    length = parse_int(parts[0], "CT header length", path=path, record=None, line=lineno)
    if length <= 0:
        raise FormatError(f"CT header gives length {length}; expected a positive number of nucleotides",
                          path=path, line=lineno)
    name = parts[1].strip() if len(parts) > 1 else ""
    energy = ""
    match = _ENERGY.match(name)
    if match:
        energy = f"{match.group(1)} = {match.group(2)}"
        name = name[match.end():]
    tokens = name.split(None, 1)
    rec_id = tokens[0] if tokens else file_stem(path)
    rest = tokens[1].strip() if len(tokens) > 1 else ""
    return length, rec_id, " ".join(x for x in (rest, energy) if x)


def _read_one(lines: Iterator[tuple[int, str]], header: tuple[int, str], path: PathLike) -> StructureRecord:
    lineno, text = header
    length, rec_id, desc = _parse_header(text, lineno, path)
    bases: list[str] = []
    partners: list[int] = []
    where: list[int] = []
    for lineno, line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            raise FormatError(f"expected 'index base prev next partner [natural]', found {line.strip()!r}",
                              path=path, record=rec_id, line=lineno)
        index = parse_int(fields[0], "index", path=path, record=rec_id, line=lineno)
        if index != len(bases) + 1:
            raise FormatError(f"nucleotide index {index}, expected {len(bases) + 1}", path=path,
                              record=rec_id, line=lineno)
        bases.append(fields[1])
        partners.append(parse_int(fields[4], "partner", path=path, record=rec_id, line=lineno))
        where.append(lineno)
        if len(bases) == length:
            break
    if len(bases) < length:
        raise FormatError(f"header promises {length} nucleotides, file ends after {len(bases)}", path=path,
                          record=rec_id)
    return build_record(rec_id, desc, bases, partners, where, path=path, kind="CT")


def iter_ct(path: PathLike) -> Iterator[StructureRecord]:
    """Stream the structures of a CT file (plain or gzip)."""
    lines = numbered_lines(path, "CT")
    n = 0
    for lineno, text in lines:
        if not text.strip():
            continue
        n += 1
        yield _read_one(lines, (lineno, text), path)
    if n == 0:
        raise FormatError("no CT records (empty file?)", path=path)


def read_ct(path: PathLike) -> list[StructureRecord]:
    """All structures of a CT file, validated (indices in order, partners in range and symmetric)."""
    return list(iter_ct(path))


def write_ct(records: Iterable[StructureRecord] | StructureRecord, path: PathLike) -> int:
    """Write one or more structures as CT (RNAstructure layout: ``index+1`` is 0 on the last line)."""
    if isinstance(records, StructureRecord):
        records = [records]
    n = 0
    with open_output(path) as fh:
        for rec in records:
            check_writable(rec, path, "CT")
            name = f"{rec.id} {rec.description}".rstrip() if rec.description else rec.id
            if _ENERGY.match(name):
                raise InputError("record id cannot be written to CT: the header would read as an energy "
                                 f"({name[:20]!r}...)", path=path, record=rec.id)
            length = len(rec.sequence)
            fh.write(f"{length}\t{name}\n")
            partner = rec.partner.tolist()
            rows = [f"{k}\t{base}\t{k - 1}\t{k + 1 if k < length else 0}\t{partner[k - 1] + 1}\t{k}\n"
                    for k, base in enumerate(rec.sequence, start=1)]
            fh.write("".join(rows))
            n += 1
    return n
