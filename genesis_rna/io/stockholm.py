"""Stockholm alignments (Rfam seed) with the consensus structure projected onto every sequence.

Parsing is Biopython's (``Bio.AlignIO.StockholmIO.StockholmIterator``, what ``Bio.AlignIO.parse(handle,
"stockholm")`` uses); it streams the 22 MB Rfam 14.2 seed in well under a few seconds. Two things it does not
do are added here by a thin wrapper around the file handle that sees every line Biopython reads:

* Biopython 1.88 reads ``#=GF`` lines but throws them away (``AlignIO`` alignments carry no ``AC``/``ID``),
  so the wrapper notes ``#=GF AC`` and ``#=GF ID`` of each block, and counts lines for error messages.
* Biopython stops the whole iteration at an alignment without sequences (its ``__next__`` raises
  ``StopIteration`` there), which would silently drop every later family; the wrapper knows whether the
  file really ended, and the iteration continues past such a block.

Rfam's free-text ``#=GF`` lines mix Latin-1 and UTF-8, so each line is decoded as UTF-8 when it is valid
UTF-8 (as everything :func:`write_stockholm` writes is) and as Latin-1 otherwise (every byte is a character;
sequence and ``#=GC`` lines are ASCII anyway).

Projection: ``#=GC SS_cons`` (WUSS) gives column pairs; for each sequence a pair is kept only when both of its
columns hold a nucleotide in that sequence; pairs with a gap (``- . ~``) on either side are dropped, and the
gap columns are removed. The resulting per-sequence structures are always valid (nested pages stay nested).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from Bio.AlignIO.StockholmIO import StockholmIterator

from ..errors import FormatError, InputError, StructureError
from ..structure.pairs import partners_to_wuss, wuss_to_partners
from ..vocab import normalise
from ._tables import check_writable
from ._text import locate, open_binary, open_output
from .records import StructureRecord

__all__ = ["StockholmFamily", "iter_stockholm", "read_stockholm", "write_stockholm"]

PathLike = str | os.PathLike

_GAP_LOOKUP = np.zeros(256, dtype=bool)
for _c in b"-.~":
    _GAP_LOOKUP[_c] = True


@dataclass
class StockholmFamily:
    """One alignment: ``accession`` (``#=GF AC``), ``name`` (``#=GF ID``), its ungapped structure records, and
    how many sequences were skipped because they failed normalisation (``on_error="skip"``)."""

    accession: str
    name: str
    records: list[StructureRecord] = field(default_factory=list)
    n_skipped: int = 0


@dataclass
class _Block:
    start_line: int
    accession: str = ""
    name: str = ""
    descriptions: dict[str, list[str]] = field(default_factory=dict)  # "#=GS <id> DE <text>" lines


class _TrackingHandle:
    """File handle for Biopython that counts lines and notes ``#=GF AC``/``ID`` per ``# STOCKHOLM`` block."""

    def __init__(self, handle, path: PathLike) -> None:
        self._handle = handle
        self._path = path
        self.line_no = 0
        self.eof = False
        self.blocks: list[_Block] = []

    def readline(self) -> str:
        try:
            data = self._handle.readline()
        except (OSError, EOFError, zlib.error) as err:
            raise FormatError(f"cannot read file ({err})", path=self._path, line=self.line_no + 1) from err
        if not data:
            self.eof = True
            return ""
        try:  # UTF-8 where the line is UTF-8 (what write_stockholm writes), else Latin-1 (every byte decodes)
            line = data.decode("utf-8-sig")  # -sig: a byte-order mark (first line) is dropped
        except UnicodeDecodeError:
            line = data.decode("latin-1")
        if line.endswith("\r\n"):
            line = line[:-2] + "\n"
        self.line_no += 1
        if "\x00" in line:
            raise FormatError("not a text Stockholm file (NUL byte)", path=self._path, line=self.line_no)
        if line.strip() == "# STOCKHOLM 1.0":  # the exact test Biopython uses to start a block
            self.blocks.append(_Block(self.line_no))
        elif line.startswith("#=GF ") and self.blocks:
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[1] in ("AC", "ID"):
                setattr(self.blocks[-1], "accession" if parts[1] == "AC" else "name", parts[2].strip())
        elif line.startswith("#=GS ") and self.blocks:
            parts = line[5:].strip().split(None, 2)  # "#=GS <id> <feature> <free text>", split as Biopython does
            if len(parts) == 3 and parts[1] == "DE":
                self.blocks[-1].descriptions.setdefault(parts[0], []).append(parts[2].strip())
        return line


def _project(gapped: str, ss_partner: np.ndarray) -> tuple[str, np.ndarray]:
    """Residues of one aligned row and the consensus pairs whose two columns both hold a residue."""
    if gapped.isascii():  # always, in real alignments: one byte per column, vectorised
        raw = np.frombuffer(gapped.encode("ascii"), dtype=np.uint8)
        is_res = ~_GAP_LOOKUP[raw]
    else:  # a non-ASCII character, which normalise will report by name: keep the text exact until then
        raw = None
        is_res = np.array([c not in "-.~" for c in gapped], dtype=bool)
    new_index = np.cumsum(is_res) - 1
    cols = np.flatnonzero(is_res)
    partner_cols = ss_partner[cols]
    ok = partner_cols >= 0
    ok[ok] = is_res[partner_cols[ok]]
    partner = np.where(ok, new_index[np.where(ok, partner_cols, 0)], -1)
    residues = raw[cols].tobytes().decode("ascii") if raw is not None else "".join(gapped[k] for k in cols.tolist())
    return residues, partner


def _family(alignment, block: _Block, path: PathLike, on_error: str) -> StockholmFamily:
    fam = StockholmFamily(block.accession, block.name)
    label = block.accession or block.name or f"alignment at line {block.start_line}"
    ss = alignment.column_annotations.get("secondary_structure")
    try:
        if ss is None:
            raise StructureError("alignment has no '#=GC SS_cons' line")
        ss_partner = wuss_to_partners(ss)
    except InputError as err:
        err = FormatError(f"{label}: {err.problem}" + (f" (column {err.position})" if err.position else ""),
                          path=path, line=block.start_line)
        if on_error == "raise":
            raise err from None
        fam.n_skipped = len(alignment)
        return fam
    for row in alignment:
        seq_id = row.id
        residues, partner = _project(str(row.seq), ss_partner)
        try:
            seq = normalise(residues, record=seq_id, path=path, remove_gaps=False)
        except InputError as err:
            if on_error == "raise":
                raise locate(err, path=path) from None
            fam.n_skipped += 1
            continue
        desc = " ".join(block.descriptions.get(seq_id, ()))
        fam.records.append(StructureRecord(seq_id, seq, partner, desc))
    return fam


def iter_stockholm(path: PathLike, *, on_error: str = "raise") -> Iterator[StockholmFamily]:
    """Stream the alignments of a Stockholm file (plain or gzip), one :class:`StockholmFamily` each.

    ``on_error="raise"`` stops at the first sequence that fails normalisation (or a family whose SS_cons is
    missing or unbalanced); ``"skip"`` drops it and counts it in ``n_skipped``. Malformed files (not Stockholm,
    rows of different lengths, binary) always raise :class:`FormatError` naming the file and line.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    with open_binary(path) as fh:
        handle = _TrackingHandle(fh, path)
        parser = StockholmIterator(handle)
        used = 0
        while True:
            try:
                alignment = next(parser)
            except StopIteration:
                alignment = None
            except (ValueError, AssertionError, IndexError) as err:
                raise FormatError(f"not a valid Stockholm alignment ({_one_line(err)})", path=path,
                                  line=handle.line_no) from None
            if alignment is None and handle.eof and used == len(handle.blocks):
                break
            if used >= len(handle.blocks):  # Biopython returned something without a header: cannot happen
                raise FormatError("alignment without '# STOCKHOLM 1.0' header", path=path, line=handle.line_no)
            block = handle.blocks[used]
            used += 1
            if alignment is None:  # a block without sequences: Biopython ends iteration there; we go on
                yield StockholmFamily(block.accession, block.name)
                continue
            yield _family(alignment, block, path, on_error)
        if used == 0:
            raise FormatError("no Stockholm alignments (empty file?)", path=path)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] if text else type(err).__name__


def read_stockholm(path: PathLike, *, on_error: str = "raise") -> list[StockholmFamily]:
    """All families of a Stockholm file (see :func:`iter_stockholm`)."""
    return list(iter_stockholm(path, on_error=on_error))


def write_stockholm(records: list[StructureRecord] | StructureRecord, path: PathLike) -> int:
    """Write each structure as its own one-sequence alignment with its structure as ``#=GC SS_cons``.

    Unaligned structures have no common columns, so one block per record is the faithful way to store them;
    the structure is simplified WUSS (``<>`` nested, ``Aa``... pseudoknots) and reads back exactly, and the
    description is written as ``#=GS <id> DE`` (Pfam's per-sequence description), which the reader restores.
    """
    if isinstance(records, StructureRecord):
        records = [records]
    n = 0
    with open_output(path) as fh:
        for rec in records:
            check_writable(rec, path, "Stockholm")
            if rec.id.startswith("#"):
                raise InputError("record id cannot be written to Stockholm: a line starting with '#' is markup",
                                 path=path, record=rec.id)
            try:
                ss = partners_to_wuss(rec.partner)
            except InputError as err:
                raise locate(err, path=path, record=rec.id) from None
            width = max(len(rec.id), len("#=GC SS_cons")) + 2
            fh.write("# STOCKHOLM 1.0\n")
            fh.write(f"#=GF ID   {rec.id}\n")
            fh.write("#=GF SQ   1\n")
            if rec.description:  # per-sequence description, read back into the record's description
                fh.write(f"#=GS {rec.id} DE {rec.description}\n")
            fh.write(f"{rec.id:<{width}}{rec.sequence}\n{'#=GC SS_cons':<{width}}{ss}\n//\n")
            n += 1
    return n
