"""FASTA reading (streaming) and writing.

Record id = first whitespace-separated token after ``>``, description = the rest of the header. Sequences
may span lines; blank lines and CRLF line endings are fine; gzip is recognised by its magic bytes.
Sequences pass through :func:`genesis_rna.tokenization.normalise`; alignment gaps (``- . ~``) are removed
and reported in ONE ``UserWarning`` per file (a per-record warning would flood the log on an alignment).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator

from ..errors import FormatError, InputError, SequenceError
from ..vocab import count_gaps, normalise
from ._text import check_record_id, check_sequence_text, locate, numbered_lines, open_output
from .records import SequenceRecord, StructureRecord

__all__ = ["iter_fasta", "read_fasta", "write_fasta"]

PathLike = str | os.PathLike


def _parse_header(line: str, lineno: int, path: PathLike) -> tuple[str, str]:
    parts = line[1:].strip().split(None, 1)
    if not parts:
        raise FormatError("empty record id in FASTA header (nothing after '>')", path=path, line=lineno)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


class _GapCounter:
    """Totals gaps over a file so the reader can warn once at the end."""

    def __init__(self) -> None:
        self.gaps = 0
        self.records = 0


def _line_of(position: int | None, chunks: list[str], chunk_lines: list[int], header_line: int) -> int:
    """File line holding the 1-based ``position`` of a record (counted without whitespace, as normalise does)."""
    if position is None:
        return header_line
    seen = 0
    for chunk, lineno in zip(chunks, chunk_lines, strict=True):
        seen += len("".join(chunk.split()))
        if position <= seen:
            return lineno
    return header_line


def _finish(rec_id: str, desc: str, chunks: list[str], chunk_lines: list[int], lineno: int, path: PathLike,
            normalise_seq: bool, gaps: _GapCounter) -> SequenceRecord:
    raw = "".join(chunks)
    if not normalise_seq:
        if not raw:
            raise SequenceError("zero-length sequence", path=path, record=rec_id, line=lineno)
        return SequenceRecord(rec_id, raw, desc)
    n_gaps = count_gaps(raw)
    try:
        seq = normalise(raw, record=rec_id, path=path)
    except InputError as err:
        # A bad character is reported on the line where it is; other problems on the record's header line.
        raise locate(err, path=path, line=_line_of(err.position, chunks, chunk_lines, lineno)) from None
    if n_gaps:
        gaps.gaps += n_gaps
        gaps.records += 1
    return SequenceRecord(rec_id, seq, desc)


def _iter_with_lines(path: PathLike, normalise_seq: bool) -> Iterator[tuple[int, SequenceRecord]]:
    """Records with the line number of their header (for duplicate-id messages)."""
    gaps = _GapCounter()
    header: tuple[int, str, str] | None = None
    chunks: list[str] = []
    chunk_lines: list[int] = []
    n = 0
    for lineno, line in numbered_lines(path, "FASTA"):
        text = line.strip()
        if not text:
            continue
        if text.startswith(">"):
            if header is not None:
                n += 1
                yield header[0], _finish(header[1], header[2], chunks, chunk_lines, header[0], path,
                                         normalise_seq, gaps)
            header = (lineno, *_parse_header(text, lineno, path))
            chunks, chunk_lines = [], []
        elif header is None:
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise FormatError(f"expected '>' at line {lineno} (a FASTA header), found {shown!r}", path=path)
        else:
            chunks.append(text)
            chunk_lines.append(lineno)
    if header is not None:
        n += 1
        yield header[0], _finish(header[1], header[2], chunks, chunk_lines, header[0], path, normalise_seq,
                                 gaps)
    if n == 0:
        raise FormatError("no FASTA records (empty file?)", path=path)
    if gaps.gaps:
        warnings.warn(f"{os.fspath(path)}: removed {gaps.gaps} alignment gap characters (- . ~) from "
                      f"{gaps.records} record(s)", UserWarning, stacklevel=3)


def iter_fasta(path: PathLike, *, normalise_sequences: bool = True) -> Iterator[SequenceRecord]:
    """Stream the records of a FASTA file (plain or gzip), one at a time, for files of any size.

    With ``normalise_sequences=False`` the sequence lines are joined as written (no gap removal, no checks
    beyond "not empty"). Errors are :class:`InputError` subclasses naming file, line and record.
    """
    for _, record in _iter_with_lines(path, normalise_sequences):
        yield record


def read_fasta(path: PathLike, *, allow_duplicates: bool = False, normalise_sequences: bool = True
               ) -> list[SequenceRecord]:
    """All records of a FASTA file; duplicate ids are an error (naming both lines) unless allowed.

    Duplicate ids usually mean two files were concatenated or an id was truncated; outputs keyed by id would
    silently overwrite each other, so the default is to refuse.
    """
    seen: dict[str, int] = {}
    out = []
    for lineno, record in _iter_with_lines(path, normalise_sequences):
        if not allow_duplicates:
            if record.id in seen:
                raise FormatError(f"duplicate record id (first at line {seen[record.id]}); ids must be unique "
                                  "(outputs are keyed by id)", path=path, record=record.id, line=lineno)
            seen[record.id] = lineno
        out.append(record)
    return out


def _as_id_seq_desc(item: SequenceRecord | StructureRecord | tuple) -> tuple[str, str, str]:
    if isinstance(item, SequenceRecord | StructureRecord):
        return item.id, item.sequence, item.description
    if isinstance(item, tuple) and len(item) in (2, 3):
        return item[0], item[1], (item[2] if len(item) == 3 else "")
    raise InputError(f"cannot write {type(item).__name__} as FASTA (expected a record or (id, sequence))")


def write_fasta(records: Iterable[SequenceRecord | StructureRecord | tuple], path: PathLike,
                line_width: int | None = 80) -> int:
    """Write records (or ``(id, sequence[, description])`` tuples) atomically; returns the number written.

    ``line_width`` wraps sequence lines (``None`` or 0: one line per sequence). Sequences are written as given.
    """
    n = 0
    with open_output(path) as fh:
        for item in records:
            rec_id, seq, desc = _as_id_seq_desc(item)
            try:
                check_record_id(rec_id, "FASTA")
                check_sequence_text(seq, rec_id, "FASTA")
            except InputError as err:
                raise locate(err, path=path) from None
            if "\n" in desc or "\r" in desc:
                raise SequenceError("description contains a line break", path=path, record=rec_id)
            header = f">{rec_id} {desc}".rstrip() if desc else f">{rec_id}"
            fh.write(header + "\n")
            width = line_width or len(seq)
            for start in range(0, len(seq), width):
                fh.write(seq[start:start + width] + "\n")
            n += 1
    return n
