"""Reading raw inputs for preprocessing: format detection, FASTA/Stockholm/CT/BPSEQ/dbn/tRNAscan-SE records,
per-file counts."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, InputError, StructureError

FASTA_EXTS = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".fsa", ".seq")
STOCKHOLM_EXTS = (".sto", ".stk", ".sth", ".stockholm", ".seed")
STRUCTURE_EXTS = (".ct", ".bpseq", ".dbn", ".db")
TRNASCAN_EXTS = (".ss",)  # tRNAscan-SE secondary-structure output (GtRNAdb ``*-detailed.ss``)
INPUT_EXTS = FASTA_EXTS + STOCKHOLM_EXTS + STRUCTURE_EXTS + TRNASCAN_EXTS


# ------------------------------------------------------------------------------------------------ input reading


@dataclass
class RawRecord:
    """One record as read from an input file, before normalisation (structure ``None`` when not given)."""

    id: str
    sequence: str
    partner: np.ndarray | None = None
    family: str | None = None
    family_name: str | None = None
    normalised: bool = False  # the structure readers normalise already; FASTA is read raw (see below)
    error: InputError | None = None  # a record-level problem found by the reader: skipped (or raised) as invalid


def detect_format(path: str | os.PathLike) -> str:
    """``fasta``, ``stockholm``, ``structure`` or ``trnascan`` from the file name, else from the first non-blank
    line."""
    name = os.fspath(path).lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for exts, fmt in ((FASTA_EXTS, "fasta"), (STOCKHOLM_EXTS, "stockholm"), (STRUCTURE_EXTS, "structure"),
                      (TRNASCAN_EXTS, "trnascan")):
        if name.endswith(exts):
            return fmt
    return _sniff_format(path)


def _sniff_format(path: str | os.PathLike) -> str:
    from ..io._text import open_text  # the readers' own opener: handles .gz and reports unreadable files

    try:
        with open_text(path, encoding="latin-1") as fh:
            for line in fh:
                if line.strip():
                    break
            else:
                line = ""
    except OSError as exc:
        raise FormatError(f"cannot read file ({exc.strerror or exc})", path=path) from None
    if line.startswith(">"):
        return "fasta"
    if line.startswith("# STOCKHOLM"):
        return "stockholm"
    if _TRNASCAN_HEADER.match(line):
        return "trnascan"
    raise FormatError("unknown input format; use .fa/.fasta, .sto/.seed (Stockholm), .ct, .bpseq, .dbn or .ss "
                      "(tRNAscan-SE), optionally .gz", path=path)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Input paths with directories expanded to their recognised files (sorted, recursive)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file()
                           and f.name.lower().removesuffix(".gz").endswith(INPUT_EXTS))
            if not found:
                raise InputError("directory holds no FASTA, Stockholm, CT, BPSEQ, dot-bracket or tRNAscan-SE .ss "
                                 "files", path=p)
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise InputError("no such file or directory", path=p)
    return out


def iter_raw_records(path: Path, fmt: str, stats: SourceStats, on_error: str) -> Iterator[RawRecord]:
    """Records of one file in file order; the readers' own errors propagate (file-level failures)."""
    from .. import io as gio

    if fmt == "fasta":
        # Sequences are normalised here, per record, so one bad record is skipped without ending the stream.
        for rec in gio.iter_fasta(path, normalise_sequences=False):
            yield RawRecord(rec.id, rec.sequence)
    elif fmt == "stockholm":
        for fam in gio.iter_stockholm(path, on_error=on_error):
            stats.n_invalid += int(fam.n_skipped)
            stats.n_read += int(fam.n_skipped)
            stats.n_families += 1
            for rec in fam.records:
                yield RawRecord(rec.id, rec.sequence, rec.partner, fam.accession, fam.name, normalised=True)
    elif fmt == "trnascan":
        yield from iter_trnascan_ss(path)
    else:
        for rec in gio.read_structures(path):
            yield RawRecord(rec.id, rec.sequence, rec.partner, normalised=True)


_TRNASCAN_HEADER = re.compile(r"^(\S+)\s+\(\d+-\d+\)\s+Length:\s*(\d+)\s*bp")
#: tRNAscan-SE writes a pair as ``>`` ... ``<`` (nested); translated to ``(`` ``)`` for the dot-bracket parser
_TRNASCAN_TO_DB = str.maketrans({">": "(", "<": ")"})


def iter_trnascan_ss(path: str | os.PathLike) -> Iterator[RawRecord]:
    """Records of a tRNAscan-SE secondary-structure file (``tRNAscan-SE -f``; GtRNAdb ``*-detailed.ss``).

    Each record is a block: ``NAME (start-end)  Length: N bp``, free-text lines (type, anticodon, scores,
    ``Possible intron``), ``Seq: ...`` and ``Str: ...`` of equal length where ``>`` and ``<`` are the two
    sides of a base pair (nested, like ``(`` ``)``) and ``.`` is unpaired. Lower-case letters in ``Seq:``
    (non-consensus bases, introns) are kept and upper-cased by normalisation. The record id is ``NAME``.
    A block without its ``Seq:``/``Str:`` lines, or with lengths that disagree, is a :class:`FormatError`
    naming the line (the file cannot be trusted); an unbalanced ``Str:`` comes back as a record whose ``error``
    is a :class:`StructureError` naming the record and position, so the pipeline skips just that record.
    """
    from ..io._text import numbered_lines
    from ..structure.pairs import dotbracket_to_partners

    header: tuple[int, str, int] | None = None  # (line number, name, length) of the open record
    seq: str | None = None
    for lineno, line in numbered_lines(path, "tRNAscan-SE .ss"):
        m = _TRNASCAN_HEADER.match(line)
        if m:
            if header is not None:
                raise FormatError(f"record {header[1]!r} has no 'Seq:'/'Str:' lines", path=path, line=header[0])
            header, seq = (lineno, m.group(1), int(m.group(2))), None
        elif line.startswith("Seq:"):
            if header is None:
                raise FormatError("'Seq:' line outside a record (no 'NAME (start-end) Length: N bp' header)",
                                  path=path, line=lineno)
            seq = line[4:].strip()
        elif line.startswith("Str:"):
            if header is None or seq is None:
                raise FormatError("'Str:' line without a 'Seq:' line before it", path=path, line=lineno)
            rec_id, ss = header[1], line[4:].strip()
            if len(ss) != len(seq):
                raise FormatError(f"record {rec_id!r}: 'Seq:' has {len(seq)} letters but 'Str:' {len(ss)}",
                                  path=path, line=lineno)
            bad = next((i for i, c in enumerate(ss) if c not in "<>."), None)
            try:
                if bad is not None:
                    raise StructureError(f"invalid 'Str:' character {ss[bad]!r} (allowed: > < .)",
                                         position=bad + 1)
                partner = dotbracket_to_partners(ss.translate(_TRNASCAN_TO_DB)).astype(np.int32)
            except StructureError as err:
                # one bad structure skips (or, with on_error="raise", stops at) this record, not the file
                error = StructureError(err.problem, path=path, record=rec_id, position=err.position)
                yield RawRecord(rec_id, seq, None, error=error)
            else:
                yield RawRecord(rec_id, seq, partner)
            header, seq = None, None
    if header is not None:
        raise FormatError(f"record {header[1]!r} has no 'Seq:'/'Str:' lines", path=path, line=header[0])


# ------------------------------------------------------------------------------------------------------ report


@dataclass
class SourceStats:
    """Per-input-file counts (written to the manifest's ``sources``)."""

    path: str
    format: str
    n_read: int = 0
    n_kept: int = 0
    n_duplicates: int = 0
    n_too_short: int = 0
    n_too_long: int = 0
    n_invalid: int = 0
    n_families: int = 0
    family: str | None = None  # the family given to this file's records by ``input_families``
    error: str | None = None
