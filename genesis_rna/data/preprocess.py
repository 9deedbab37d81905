"""Raw RNA files -> sharded, memory-mapped pretraining store (``genesis-rna preprocess``).

Why shards of flat arrays: pretraining reads tens of millions of short records in random order. Concatenated
per-nucleotide arrays plus an ``offsets`` index can be memory-mapped, so a data loader touches only the bytes
of the records it samples, start-up costs nothing, and DataLoader workers share pages through the OS cache.

Preprocessing streams: records are read, normalised, de-duplicated and filtered one by one, structures are computed in worker processes
in bounded chunks, and shard buffers (flat byte arrays, 6 bytes per nucleotide) are flushed to disk every
``shard_size`` nucleotides or ``shard_records`` records, so memory stays flat however large the input is. The only
thing that grows is the set of 64-bit sequence digests used to drop duplicates (:class:`DigestSet`: a sorted
``uint64`` array, ~8 bytes per kept record, plus a bounded buffer). Worker processes import neither PyTorch nor
the tokenizer (this module keeps its top-level imports light), so each costs tens of MB, not hundreds.

Store layout (``FORMAT_NAME`` version ``FORMAT_VERSION``)::

    OUTPUT/
      manifest.json                  format, counts, sources, splits, vocab, options, command, timings
      shard-00000.tokens.npy         uint8   nucleotide ids (A=4 C=5 G=6 U=7 N=8), records concatenated
      shard-00000.offsets.npy        int64   n+1 offsets into the per-nucleotide arrays
      shard-00000.struct.npy         int8    structure-context labels per nucleotide, -100 = unknown
      shard-00000.partner.npy        int32   partner index within the record, -1 unpaired, -2 unknown
      shard-00000.family.npy         int32   per record: index into manifest["families"], -1 = none
      shard-00000.source.npy         int8    per record: 0 structure from the input, 1 ViennaRNA MFE, 2 none,
                                             3 ViennaRNA base-pair probabilities
      shard-00000.soft_offsets.npy   int64   n+1 offsets into the soft-pair arrays (optional: stores made before
                                             soft pairs existed lack the four soft_* files and read as none)
      shard-00000.soft_i.npy         uint16  soft pairs per record: 0-based i < j ...
      shard-00000.soft_j.npy         uint16  ... and j ...
      shard-00000.soft_p.npy         float16 ... and ViennaRNA's probability p(i, j) >= SOFT_PAIR_MIN_PROB
      shard-00000.ids.txt            record ids, one per line (UTF-8)
      shard-00000.id_offsets.npy     int64   n+1 byte offsets of the lines of ids.txt
      split-train.npy / split-validation.npy / split-test.npy   int64 sorted global record indices

Splits: when records carry a family (Rfam accession from Stockholm input, or one given to a whole input file
or directory with ``input_families`` / ``--input-family FAMILY=PATH``), whole families are assigned to
train/validation/test, so no family is shared between splits (homologous sequences in train and test inflate
test scores). Families are shuffled with the seed and each goes to the split least full relative to its target
share of family-carrying records among those it still fits into (see :func:`assign_family_splits`); this reaches
the fractions closely by sequence count, gives every split the same family-size mix, and sends a family larger
than a small split's whole target to the large split. Records without a family
(FASTA, CT, ...) are split by record with a seeded permutation (exact fractions, rounded). Duplicates are
dropped across all inputs, the first occurrence (in input order) being kept, with its structure and family.

The whole store is written into a temporary directory next to ``output_dir`` and renamed at the end, so a
failed or interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .errors import FormatError, GenesisRNAError, InputError, StructureError

# This module is imported by every worker process (``spawn``), so it imports nothing that pulls in PyTorch at
# module level (``genesis_rna.tokenization`` does): a worker then costs ~40 MB instead of ~230 MB. The ids are
# the fixed ones of DESIGN.md (the tests check them against the tokenizer's).
NUCLEOTIDE_IDS = {"A": 4, "C": 5, "G": 6, "U": 7, "N": 8}

FORMAT_NAME = "genesis-rna-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
#: per-record structure provenance codes stored in ``source.npy``
SOURCE_CODES = {"input": 0, "vienna_mfe": 1, "none": 2, "vienna_bpp": 3}
#: how records without a given structure are folded: ViennaRNA MFE, or its partition function (soft pairs)
FOLD_METHODS = ("mfe", "bpp")
#: soft pairs below this probability are not stored (they become 0 targets); keeps ~60 pairs per 100 nt
SOFT_PAIR_MIN_PROB = 0.05
#: partition functions are only computed up to this length (O(L^3) time, O(L^2) memory); longer records get MFE
MAX_BPP_LENGTH = 1000
SOURCE_NAMES = {v: k for k, v in SOURCE_CODES.items()}
UNPAIRED, UNKNOWN_PARTNER = -1, -2
IGNORE_INDEX = -100
#: per-shard files: key -> (file suffix, dtype, per "nucleotide" or per "record")
SHARD_ARRAYS = {
    "tokens": (".tokens.npy", np.uint8, "nucleotide"),
    "struct": (".struct.npy", np.int8, "nucleotide"),
    "partner": (".partner.npy", np.int32, "nucleotide"),
    "offsets": (".offsets.npy", np.int64, "record+1"),
    "family": (".family.npy", np.int32, "record"),
    "source": (".source.npy", np.int8, "record"),
    "id_offsets": (".id_offsets.npy", np.int64, "record+1"),
}
#: optional per-shard soft-pair arrays (see the module doc)
SOFT_ARRAYS = {
    "soft_offsets": (".soft_offsets.npy", np.int64, "record+1"),
    "soft_i": (".soft_i.npy", np.uint16, "soft pair"),
    "soft_j": (".soft_j.npy", np.uint16, "soft pair"),
    "soft_p": (".soft_p.npy", np.float16, "soft pair"),
}
IDS_SUFFIX = ".ids.txt"

FASTA_EXTS = (".fa", ".fasta", ".fna", ".fas", ".ffn", ".frn", ".fsa", ".seq")
STOCKHOLM_EXTS = (".sto", ".stk", ".sth", ".stockholm", ".seed")
STRUCTURE_EXTS = (".ct", ".bpseq", ".dbn", ".db")
TRNASCAN_EXTS = (".ss",)  # tRNAscan-SE secondary-structure output (GtRNAdb ``*-detailed.ss``)
INPUT_EXTS = FASTA_EXTS + STOCKHOLM_EXTS + STRUCTURE_EXTS + TRNASCAN_EXTS

DEFAULT_SHARD_SIZE = 1 << 24  # nucleotides per shard (16 Mi: ~112 MB of arrays)
DEFAULT_SHARD_RECORDS = 1 << 20
_CHUNK = 64  # records per worker task: large enough to amortise pickling, small enough to balance
_MAX_SKIP_MESSAGES = 50

# ASCII -> nucleotide id lookup, for turning a normalised string into tokens without a Python loop.
_LUT = np.zeros(256, dtype=np.uint8)
for _nt, _id in NUCLEOTIDE_IDS.items():
    _LUT[ord(_nt)] = _id


def encode_nucleotides(sequence: str) -> np.ndarray:
    """uint8 token ids of a normalised (``ACGUN``) sequence, without special tokens."""
    return _LUT[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


# ------------------------------------------------------------------------------------------------ shard writer


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


class ShardWriter:
    """Buffers records and writes a shard every ``shard_size`` nucleotides or ``shard_records`` records.

    Callers give fully processed arrays; the writer only concatenates and saves them, so it is also what
    :func:`genesis_rna.data.make_dummy_store` uses to build small stores for tests.
    """

    def __init__(self, directory: str | os.PathLike, *, shard_size: int = DEFAULT_SHARD_SIZE,
                 shard_records: int = DEFAULT_SHARD_RECORDS) -> None:
        if shard_size <= 0 or shard_records <= 0:
            raise InputError(f"shard_size and shard_records must be positive, got {shard_size}, {shard_records}")
        self.directory = Path(directory)
        self.shard_size, self.shard_records = shard_size, shard_records
        self.shards: list[dict] = []
        self.n_records = 0
        self.n_nucleotides = 0
        self._reset()

    def _reset(self) -> None:
        # Flat byte buffers, not lists of small arrays: a record costs its 6 bytes per nucleotide plus ~30 bytes,
        # so a shard of a million 22-nt miRNAs buffers ~160 MB, not the ~1 GB that per-record arrays would take.
        self._tokens = bytearray()
        self._struct = bytearray()
        self._partner = bytearray()
        self._lengths = array("q")
        self._family = array("i")
        self._source = bytearray()
        self._ids = bytearray()
        self._id_ends = array("q")
        self._soft_counts = array("q")
        self._soft_i = bytearray()
        self._soft_j = bytearray()
        self._soft_p = bytearray()

    def add(self, record_id: str, tokens: np.ndarray, struct: np.ndarray, partner: np.ndarray,
            family: int = -1, source: int = SOURCE_CODES["none"],
            soft_pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """Append one record (``soft_pairs``: ``(i, j, p)`` arrays, i < j); flush the shard when it is full."""
        n = len(tokens)
        if len(struct) != n or len(partner) != n:
            raise InputError("tokens, struct and partner lengths differ", record=record_id)
        if soft_pairs is None:
            self._soft_counts.append(0)
        else:
            i, j, p = soft_pairs
            self._soft_counts.append(len(i))
            self._soft_i += np.ascontiguousarray(i, dtype="<u2").data
            self._soft_j += np.ascontiguousarray(j, dtype="<u2").data
            self._soft_p += np.ascontiguousarray(p, dtype="<f2").data
        self._tokens += np.ascontiguousarray(tokens, dtype=np.uint8).data
        self._struct += np.ascontiguousarray(struct, dtype=np.int8).data
        self._partner += np.ascontiguousarray(partner, dtype="<i4").data
        self._lengths.append(n)
        self._family.append(int(family))
        self._source.append(int(source))
        self._ids += (" ".join(record_id.split()) or f"record{self.n_records}").encode("utf-8") + b"\n"
        self._id_ends.append(len(self._ids))
        self.n_records += 1
        self.n_nucleotides += n
        if len(self._tokens) >= self.shard_size or len(self._lengths) >= self.shard_records:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as the next shard (no-op when the buffer is empty)."""
        n = len(self._lengths)
        if not n:
            return
        name = shard_name(len(self.shards))
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self._lengths, dtype=np.int64), out=offsets[1:])
        id_offsets = np.zeros(n + 1, dtype=np.int64)
        id_offsets[1:] = np.frombuffer(self._id_ends, dtype=np.int64)
        arrays = {
            "tokens": np.frombuffer(self._tokens, dtype=np.uint8),
            "struct": np.frombuffer(self._struct, dtype=np.int8),
            "partner": np.frombuffer(self._partner, dtype="<i4"), "offsets": offsets,
            "family": np.frombuffer(self._family, dtype=np.int32),
            "source": np.frombuffer(self._source, dtype=np.int8), "id_offsets": id_offsets,
            "soft_offsets": np.concatenate([[0], np.cumsum(np.frombuffer(self._soft_counts, dtype=np.int64))]),
            "soft_i": np.frombuffer(self._soft_i, dtype="<u2"), "soft_j": np.frombuffer(self._soft_j, dtype="<u2"),
            "soft_p": np.frombuffer(self._soft_p, dtype="<f2"),
        }
        for key, (suffix, dtype, _) in (SHARD_ARRAYS | SOFT_ARRAYS).items():
            np.save(self.directory / (name + suffix), arrays[key].astype(dtype, copy=False))
        (self.directory / (name + IDS_SUFFIX)).write_bytes(self._ids)
        sources = np.bincount(arrays["source"], minlength=len(SOURCE_CODES))
        self.shards.append({
            "name": name, "n_records": n, "n_nucleotides": int(offsets[-1]),
            "structure_source": {SOURCE_NAMES[k]: int(sources[k]) for k in range(len(SOURCE_CODES))},
        })
        del arrays  # release the views so the buffers can be replaced
        self._reset()

    def close(self) -> list[dict]:
        self.flush()
        return self.shards


def read_family_column(directory: str | os.PathLike, shards: Sequence[dict]) -> np.ndarray:
    """The per-record family codes of all shards, in global record order (4 bytes per record)."""
    parts = [np.load(Path(directory) / (s["name"] + SHARD_ARRAYS["family"][0]), mmap_mode="r") for s in shards]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


# --------------------------------------------------------------------------------------------------- splitting


def check_split(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate train/validation/test fractions: three numbers >= 0 summing to 1."""
    if len(split) != 3 or any(not np.isfinite(x) or x < 0 for x in split) or abs(sum(split) - 1.0) > 1e-6:
        raise InputError(f"split must be three fractions >= 0 summing to 1 (train validation test), got {tuple(split)}")
    return tuple(float(x) for x in split)  # type: ignore[return-value]


def assign_family_splits(family_sizes: Sequence[int], fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split code (0 train, 1 validation, 2 test) per family, whole families only.

    Families are visited in a seeded random order. Each goes to the split that is least full relative to its
    target (``assigned / (fraction * total)``) among the splits it still fits into; a family that fits nowhere
    goes where it overshoots least relative to the target. The choice does not depend on a family's size as long
    as it fits, so validation and test get the same mix of small and large families as train (no size bias),
    every split ends close to its share of sequences, and a family larger than a small split's target (e.g.
    tens of thousands of tRNAs given Rfam's tRNA accession with ``input_families``) always goes to train.
    """
    sizes = np.asarray(family_sizes, dtype=np.int64)
    target = np.asarray(fractions, dtype=np.float64) * sizes.sum()
    usable = target > 0
    safe_target = np.where(usable, target, 1.0)
    assigned = np.zeros(3, dtype=np.float64)
    out = np.zeros(len(sizes), dtype=np.int8)
    order = np.random.default_rng([seed, 1]).permutation(len(sizes))
    for fam in order:
        size = sizes[fam]
        fits = usable & (assigned + size <= target)
        if fits.any():
            s = int(np.argmin(np.where(fits, assigned / safe_target, np.inf)))
        else:
            s = int(np.argmin(np.where(usable, (assigned + size) / safe_target, np.inf)))
        out[fam] = s
        assigned[s] += size
    return out


def assign_record_splits(n: int, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split code per record by a seeded permutation, with counts rounded from the fractions."""
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    n_val, n_test = min(n_val, n), min(n_test, max(n - n_val, 0))
    codes = np.zeros(n, dtype=np.int8)
    perm = np.random.default_rng([seed, 2]).permutation(n)
    codes[perm[:n_val]] = 1
    codes[perm[n_val:n_val + n_test]] = 2
    return codes


def compute_splits(family: np.ndarray, family_ids: Sequence[str], fractions: Sequence[float], seed: int
                   ) -> tuple[list[np.ndarray], dict]:
    """Global record indices of each split plus the manifest's description of it."""
    n_fam = len(family_ids)
    has_family = family >= 0
    sizes = np.bincount(family[has_family], minlength=n_fam) if n_fam else np.zeros(0, dtype=np.int64)
    fam_split = assign_family_splits(sizes, fractions, seed) if n_fam else np.zeros(0, dtype=np.int8)
    codes = np.empty(len(family), dtype=np.int8)
    codes[has_family] = fam_split[family[has_family]] if n_fam else 0
    no_family = np.flatnonzero(~has_family)
    codes[no_family] = assign_record_splits(len(no_family), fractions, seed)
    indices = [np.flatnonzero(codes == k).astype(np.int64) for k in range(3)]
    method = "family" if n_fam and not len(no_family) else ("record" if not n_fam else "family+record")
    info: dict = {"method": method, "seed": seed, "fractions": dict(zip(SPLITS, fractions, strict=True))}
    for k, name in enumerate(SPLITS):
        fams = sorted(family_ids[f] for f in np.flatnonzero((fam_split == k) & (sizes > 0)))
        info[name] = {
            "file": f"split-{name}.npy", "n_records": int(len(indices[k])),
            "n_records_with_family": int(((codes == k) & has_family).sum()),
            "n_families": len(fams), "families": fams,
        }
    return indices, info


# ---------------------------------------------------------------------------------------------- de-duplication


def sequence_digest(sequence: str) -> int:
    """64-bit BLAKE2b digest of a normalised sequence (collision odds ~n^2/2^65: 2e-5 at 30 million)."""
    return int.from_bytes(hashlib.blake2b(sequence.encode("ascii"), digest_size=8).digest(), "little")


class DigestSet:
    """The set of 64-bit digests of the sequences kept so far, at ~8 bytes per member.

    A Python ``set`` of fresh ints costs ~84 bytes per member (2.5 GB at 30 million, RNAcentral's scale). Here
    new digests go to a small ``set`` of at most ``buffer_size`` members, which is merged into one sorted
    ``uint64`` array when full; a lookup checks the set, then binary-searches the array (~3 us). Measured at 30
    million members: 11.7 bytes each (8 in the array, the rest the bounded buffer), 20.8 at the peak of a merge,
    which briefly holds the old and the new array.
    """

    def __init__(self, buffer_size: int = 1 << 20) -> None:
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._recent: set[int] = set()
        self._buffer_size = max(1, int(buffer_size))

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, digest: int) -> bool:
        if digest in self._recent:
            return True
        arr = self._sorted
        if not len(arr):
            return False
        key = np.uint64(digest)
        k = int(arr.searchsorted(key))
        return k < len(arr) and arr[k] == key

    def add(self, digest: int) -> bool:
        """Add ``digest``; True when it was new, False when it was already present."""
        if digest in self:
            return False
        self._recent.add(digest)
        if len(self._recent) >= self._buffer_size:
            self._merge()
        return True

    def _merge(self) -> None:
        new = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
        new.sort()
        self._sorted = np.insert(self._sorted, self._sorted.searchsorted(new), new)
        self._recent = set()

    @property
    def nbytes(self) -> int:
        """Approximate memory held: the array plus ~70 bytes per buffered member."""
        return int(self._sorted.nbytes) + 70 * len(self._recent)


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
    from .io._text import open_text  # the readers' own opener: handles .gz and reports unreadable files

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
    from . import io as gio

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
    from .io._text import numbered_lines
    from .structure import dotbracket_to_partners

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


# ---------------------------------------------------------------------------------------- structure computation


def _fold_partner(sequence: str) -> np.ndarray:
    """ViennaRNA MFE structure as a partner array (0-based, -1 unpaired)."""
    import RNA

    structure, _ = RNA.fold(sequence)
    table = np.asarray(RNA.ptable(structure), dtype=np.int32)[1:]
    return table - 1


def fold_soft_pairs(sequence: str) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """ViennaRNA base-pair probabilities: the structure of pairs with p > 0.5, and the pairs with p >= 0.05.

    Pairs above 0.5 never conflict (each base's probabilities sum to at most 1), so they form a valid nested
    structure; it gives the record's context labels. The sparse ``(i, j, p)`` list (0-based, i < j) is the soft
    target of the pair head. Long sequences are rescaled by their MFE first so the partition function cannot
    overflow.
    """
    import RNA

    fc = RNA.fold_compound(sequence)
    if len(sequence) > 200:
        _, mfe = fc.mfe()
        fc.exp_params_rescale(mfe)
    fc.pf()
    probs = np.asarray(fc.bpp(), dtype=np.float32)[1:, 1:]
    i, j = np.nonzero(probs >= SOFT_PAIR_MIN_PROB)
    keep = i < j
    i, j = i[keep], j[keep]
    p = probs[i, j]
    partner = np.full(len(sequence), UNPAIRED, dtype=np.int32)
    sure = p > 0.5
    partner[i[sure]], partner[j[sure]] = j[sure], i[sure]
    return partner, (i.astype(np.uint16), j.astype(np.uint16), p.astype(np.float16))


def process_chunk(chunk: list[tuple[str, np.ndarray | None, str | None]]) -> list[tuple]:
    """Worker task: tokens, context labels, partners, source code and soft pairs for each ``(seq, partner, fold)``.

    Runs in a worker process (module level so ``spawn`` can import it). Given structures are only labelled;
    missing ones are folded with ViennaRNA when ``fold`` names a method (``"mfe"`` or ``"bpp"``), else stored as
    unknown.
    """
    from .structure import context_labels

    out = []
    for seq, partner, fold in chunk:
        tokens = encode_nucleotides(seq)
        if partner is None and fold == "bpp" and len(seq) <= MAX_BPP_LENGTH:
            partner, soft = fold_soft_pairs(seq)
            out.append((tokens, context_labels(partner).astype(np.int8), partner, SOURCE_CODES["vienna_bpp"], soft))
            continue
        if partner is None and fold:
            partner, source = _fold_partner(seq), SOURCE_CODES["vienna_mfe"]
        elif partner is not None:
            source = SOURCE_CODES["input"]
        else:
            n = len(seq)
            out.append((tokens, np.full(n, IGNORE_INDEX, np.int8), np.full(n, UNKNOWN_PARTNER, np.int32),
                        SOURCE_CODES["none"], None))
            continue
        partner = np.asarray(partner, dtype=np.int32)
        out.append((tokens, context_labels(partner).astype(np.int8), partner, source, None))
    return out


class _ChunkRunner:
    """Runs :func:`process_chunk` in order, in a process pool with a bounded number of chunks in flight.

    ``Pool.imap`` would read the whole input iterator ahead (unbounded memory on large inputs), so chunks are
    submitted with ``apply_async`` and results are taken from the head of a FIFO, keeping output order.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = None
        if workers > 0:
            import multiprocessing as mp

            # spawn: the parent may have imported torch/OpenMP; forking such a process can deadlock.
            self._pool = mp.get_context("spawn").Pool(workers)
        self._pending: deque = deque()
        self.max_in_flight = max(2, 4 * workers)

    def submit(self, chunk: list, meta: list) -> Iterator[tuple[list, list]]:
        """Queue ``chunk``; yield ``(meta, results)`` of chunks that are done, oldest first."""
        if self._pool is None:
            yield meta, process_chunk(chunk)
            return
        self._pending.append((meta, self._pool.apply_async(process_chunk, (chunk,))))
        while len(self._pending) >= self.max_in_flight or (self._pending and self._pending[0][1].ready()):
            meta0, res = self._pending.popleft()
            yield meta0, res.get()

    def drain(self) -> Iterator[tuple[list, list]]:
        while self._pending:
            meta0, res = self._pending.popleft()
            yield meta0, res.get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


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


@dataclass
class PreprocessReport:
    """What :func:`preprocess` did: counts, splits, structure provenance, size on disk and time."""

    output_dir: str
    n_records: int
    n_nucleotides: int
    n_shards: int
    n_read: int
    n_duplicates: int
    n_too_short: int
    n_too_long: int
    n_invalid: int
    n_files_skipped: int
    structure_source: dict[str, int]
    splits: dict[str, int]
    n_families: int
    bytes_on_disk: int
    elapsed_seconds: float
    sources: list[SourceStats] = field(default_factory=list)
    skipped_messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI's stdout."""
        src = ", ".join(f"{k} {v:,}" for k, v in self.structure_source.items() if v)
        spl = "/".join(f"{self.splits[s]:,}" for s in SPLITS)
        return (f"{self.output_dir}: {self.n_records:,} records ({self.n_nucleotides:,} nt) in {self.n_shards} "
                f"shard(s), {self.bytes_on_disk / 1e6:.1f} MB; train/validation/test {spl}; structures: {src}; "
                f"dropped {self.n_duplicates:,} duplicates, {self.n_too_short + self.n_too_long:,} by length, "
                f"{self.n_invalid:,} invalid, {self.n_files_skipped} file(s) skipped; {self.elapsed_seconds:.1f} s")


# ------------------------------------------------------------------------------------------------- the pipeline


class _Pipeline:
    """State of one preprocessing run: filters, de-duplication, worker chunks and the shard writer."""

    def __init__(self, tmpdir: Path, *, min_len: int, max_len: int | None, fold_missing: bool, workers: int,
                 shard_size: int, shard_records: int, on_error: str, progress: bool, fold_method: str = "mfe",
                 fold_fraction: float = 1.0) -> None:
        from .tokenization import normalise  # here, not at module level: workers must not import torch

        self._normalise = normalise
        self.min_len, self.max_len, self.fold_missing = min_len, max_len, fold_missing
        self.fold_method, self.fold_fraction = fold_method, fold_fraction
        self.on_error = on_error
        self.writer = ShardWriter(tmpdir, shard_size=shard_size, shard_records=shard_records)
        self.runner = _ChunkRunner(workers)
        self.seen = DigestSet()
        self.family_index: dict[str, int] = {}
        self.family_names: list[str] = []
        self.skipped: list[str] = []
        self._chunk: list = []
        self._meta: list = []
        from tqdm.auto import tqdm

        self.bar = tqdm(desc="preprocess", unit=" rec", file=sys.stderr, disable=None if progress else True,
                        smoothing=0.05)

    def note_skip(self, message: str) -> None:
        if len(self.skipped) < _MAX_SKIP_MESSAGES:
            self.skipped.append(message)

    def run_file(self, path: Path, stats: SourceStats) -> None:
        family = stats.family  # records without a family of their own take the file's (``input_families``)
        for raw in iter_raw_records(path, stats.format, stats, self.on_error):
            stats.n_read += 1
            if family is not None and raw.family is None:
                raw.family = family
            item = self._accept(raw, path, stats)
            if item is not None:
                self._queue(*item)

    def _accept(self, raw: RawRecord, path: Path, stats: SourceStats) -> tuple | None:
        """Normalise, length-filter and de-duplicate one record; None when it is dropped."""
        try:
            if raw.error is not None:
                raise raw.error
            # with a structure, positions are tied to the partner array: nothing may be removed
            seq = raw.sequence if raw.normalised else self._normalise(raw.sequence, record=raw.id, path=path,
                                                                      remove_gaps=raw.partner is None)
            if raw.partner is not None and len(raw.partner) != len(seq):
                raise StructureError(f"structure has {len(raw.partner)} positions, sequence {len(seq)}",
                                     path=path, record=raw.id)
        except InputError as err:
            if self.on_error == "raise":
                raise
            stats.n_invalid += 1
            self.note_skip(str(err))
            return None
        if len(seq) < self.min_len:
            stats.n_too_short += 1
            return None
        if self.max_len is not None and len(seq) > self.max_len:
            stats.n_too_long += 1
            return None
        digest = sequence_digest(seq)
        if not self.seen.add(digest):
            stats.n_duplicates += 1
            return None
        stats.n_kept += 1
        fam = -1
        if raw.family is not None:
            fam = self.family_index.setdefault(raw.family, len(self.family_index))
            if fam == len(self.family_names):
                self.family_names.append(raw.family_name or "")
            elif raw.family_name and not self.family_names[fam]:  # named by a later (Stockholm) source
                self.family_names[fam] = raw.family_name
        return raw.id, seq, raw.partner, fam, digest

    def _fold_method(self, digest: int) -> str | None:
        """How a record without structure is folded: a fixed fraction of records, chosen by sequence digest."""
        if not self.fold_missing:
            return None
        if self.fold_fraction < 1.0 and (digest >> 11) / float(1 << 53) >= self.fold_fraction:
            return None
        return self.fold_method

    def _queue(self, rec_id: str, seq: str, partner: np.ndarray | None, fam: int, digest: int) -> None:
        self._chunk.append((seq, partner, None if partner is not None else self._fold_method(digest)))
        self._meta.append((rec_id, fam))
        if len(self._chunk) >= _CHUNK:
            self._submit()

    def _submit(self) -> None:
        if self._chunk:
            chunk, meta, self._chunk, self._meta = self._chunk, self._meta, [], []
            for done_meta, results in self.runner.submit(chunk, meta):
                self._write(done_meta, results)

    def _write(self, meta: list, results: list) -> None:
        for (rec_id, fam), (tokens, struct, partner, source, soft) in zip(meta, results, strict=True):
            self.writer.add(rec_id, tokens, struct, partner, fam, source, soft)
        self.bar.update(len(meta))

    def finish(self) -> list[dict]:
        self._submit()
        for done_meta, results in self.runner.drain():
            self._write(done_meta, results)
        self.runner.close()
        self.bar.close()
        return self.writer.close()

    def abort(self) -> None:
        self.runner.close()
        self.bar.close()


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _vienna_version() -> str | None:
    try:
        import RNA

        return str(RNA.__version__)
    except Exception:  # noqa: BLE001 - only used for provenance
        return None


def _default_command(inputs: Sequence, output_dir: str | os.PathLike, options: dict) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return f"genesis_rna.preprocess.preprocess({[os.fspath(p) for p in inputs]!r}, {os.fspath(output_dir)!r}, {opts})"


def preprocess(
    inputs: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    min_len: int = 10,
    max_len: int | None = None,
    fold_missing: bool = True,
    fold_method: str = "mfe",
    fold_fraction: float = 1.0,
    workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    shard_records: int = DEFAULT_SHARD_RECORDS,
    split: Sequence[float] = (0.9, 0.05, 0.05),
    seed: int = 0,
    progress: bool = True,
    on_error: str = "skip",
    overwrite: bool = False,
    command: str | None = None,
    input_families: Mapping[str | os.PathLike, str] | None = None,
) -> PreprocessReport:
    """Turn FASTA / Stockholm / CT / BPSEQ / dot-bracket / tRNAscan-SE files into a shard store at ``output_dir``.

    ``workers``: processes computing labels and ViennaRNA MFE structures (default: all cores; 0 = in this
    process). ``input_families`` maps an input file or directory to a family id that its records carry when
    they have none of their own (e.g. ``{"trna_gtrnadb/": "RF00005"}``), so they share the split of that Rfam
    family instead of being split record by record. ``on_error="skip"`` counts and skips records with invalid letters and files that cannot be
    parsed; ``"raise"`` stops at the first with a :class:`~genesis_rna.errors.InputError`. Either way a failed
    run leaves no output directory behind. Returns a :class:`PreprocessReport`; the same numbers are in the
    store's ``manifest.json``.
    """
    start = time.perf_counter()
    if on_error not in ("skip", "raise"):
        raise InputError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if min_len < 1 or (max_len is not None and max_len < min_len):
        raise InputError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    fractions = check_split(split)
    if fold_method not in FOLD_METHODS:
        raise InputError(f"fold_method must be one of {', '.join(FOLD_METHODS)}, got {fold_method!r}")
    if not 0.0 <= fold_fraction <= 1.0:
        raise InputError(f"fold_fraction must be in [0, 1], got {fold_fraction}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise InputError("output directory already exists (pass overwrite=True / --overwrite)", path=output_dir)
    paths = expand_inputs(inputs)
    file_families = _file_families(paths, input_families)
    options = {"min_len": min_len, "max_len": max_len, "fold_missing": fold_missing, "fold_method": fold_method,
               "fold_fraction": fold_fraction, "workers": workers,
               "shard_size": shard_size, "shard_records": shard_records, "split": list(fractions), "seed": seed,
               "on_error": on_error,
               "input_families": {os.fspath(k): v for k, v in (input_families or {}).items()}}
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        report = _run(paths, file_families, tmpdir, output_dir, fractions, seed, options, progress,
                      command or _default_command(inputs, output_dir, options), start)
        _install(tmpdir, output_dir)
        return report
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise


def _install(tmpdir: Path, output_dir: Path) -> None:
    """Rename the finished temporary store into place (replacing an old store only now, when asked)."""
    old = None
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
        os.replace(output_dir, old)
    os.replace(tmpdir, output_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _file_families(paths: list[Path], input_families: Mapping[str | os.PathLike, str] | None
                   ) -> list[str | None]:
    """The ``input_families`` family of each input file (the most specific matching path), else None."""
    if not input_families:
        return [None] * len(paths)
    rules = []
    for where, fam in input_families.items():
        fam = str(fam).strip()
        if not fam or len(fam.split()) != 1:
            raise InputError(f"input family must be one non-empty word, got {fam!r}", path=where)
        rules.append((Path(where).resolve(), fam))
    used: set[int] = set()
    out: list[str | None] = []
    for path in paths:
        rp = path.resolve()
        hits = [k for k, (root, _) in enumerate(rules) if rp == root or root in rp.parents]
        best = max(hits, key=lambda k: len(rules[k][0].parts), default=None)
        if best is not None:
            used.add(best)
        out.append(None if best is None else rules[best][1])
    unused = [k for k in range(len(rules)) if k not in used]
    if unused:
        raise InputError("input family given for a path that is none of the inputs (nor above one)",
                         path=rules[unused[0]][0])
    return out


def _run(paths: list[Path], file_families: list[str | None], tmpdir: Path, output_dir: Path,
         fractions: tuple[float, float, float], seed: int, options: dict, progress: bool, command: str,
         start: float) -> PreprocessReport:
    pipe = _Pipeline(tmpdir, min_len=options["min_len"], max_len=options["max_len"],
                     fold_missing=options["fold_missing"], workers=options["workers"],
                     shard_size=options["shard_size"], shard_records=options["shard_records"],
                     on_error=options["on_error"], progress=progress,
                     fold_method=options.get("fold_method", "mfe"), fold_fraction=options.get("fold_fraction", 1.0))
    all_stats: list[SourceStats] = []
    try:
        for path, fam in zip(paths, file_families, strict=True):
            all_stats.append(_run_one_file(pipe, path, fam))
        shards = pipe.finish()
    except BaseException:
        pipe.abort()
        raise
    if pipe.writer.n_records == 0:
        problems = "; ".join(pipe.skipped[:3]) or "every record was filtered out"
        raise InputError(f"no usable records in the input ({problems})")
    family = read_family_column(tmpdir, shards)
    family_ids = list(pipe.family_index)
    indices, split_info = compute_splits(family, family_ids, fractions, seed)
    for name, idx in zip(SPLITS, indices, strict=True):
        np.save(tmpdir / split_info[name]["file"], idx)
    manifest = _manifest(pipe, shards, all_stats, family, family_ids, split_info, options, command,
                         time.perf_counter() - start)
    manifest_path = tmpdir / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return _report(output_dir, manifest, all_stats, pipe.skipped, _dir_size(tmpdir))


def _run_one_file(pipe: _Pipeline, path: Path, family: str | None = None) -> SourceStats:
    """Read one input file into the pipeline; with on_error='skip' a file-level failure is counted, not fatal."""
    stats = SourceStats(path=os.fspath(path), format="?", family=family)
    try:
        stats.format = detect_format(path)
        pipe.run_file(path, stats)
    except InputError as err:
        if pipe.on_error == "raise":
            raise err.with_context(path=path) from None
        stats.error = str(err.with_context(path=path))
        pipe.note_skip(stats.error)
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # e.g. a truncated .gz or an unreadable file
        err = FormatError(f"cannot read file ({exc})", path=path)
        if pipe.on_error == "raise":
            raise err from None
        stats.error = str(err)
        pipe.note_skip(stats.error)
    return stats


def _manifest(pipe: _Pipeline, shards: list[dict], all_stats: list[SourceStats], family: np.ndarray,
              family_ids: list[str], split_info: dict, options: dict, command: str, elapsed: float) -> dict:
    from .tokenization import VOCAB
    sources_total = {k: sum(s["structure_source"][k] for s in shards) for k in SOURCE_CODES}
    fam_sizes = np.bincount(family[family >= 0], minlength=len(family_ids)) if family_ids else []
    counts = {key: sum(getattr(s, key) for s in all_stats)
              for key in ("n_read", "n_kept", "n_duplicates", "n_too_short", "n_too_long", "n_invalid")}
    counts["n_files_skipped"] = sum(s.error is not None for s in all_stats)
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "genesis_rna_version": __version__, "viennarna_version": _vienna_version(),
        "command": command, "elapsed_seconds": round(elapsed, 3),
        "n_records": pipe.writer.n_records, "n_nucleotides": pipe.writer.n_nucleotides,
        "counts": counts,
        "vocab": list(VOCAB), "nucleotide_ids": dict(NUCLEOTIDE_IDS),
        "structure_labels": {"NONE": 0, "STEM": 1, "LOOP": 2, "BULGE": 3, "HAIRPIN": 4, "unknown": IGNORE_INDEX},
        "partner_codes": {"unpaired": UNPAIRED, "unknown": UNKNOWN_PARTNER},
        "structure_source_codes": SOURCE_CODES, "structure_source": sources_total,
        "arrays": {k: {"suffix": v[0], "dtype": np.dtype(v[1]).name, "per": v[2]} for k, v in (SHARD_ARRAYS | SOFT_ARRAYS).items()}
        | {"ids": {"suffix": IDS_SUFFIX, "dtype": "utf-8 text", "per": "record (one line each)"}},
        "shards": shards,
        "families": [{"id": fid, "name": pipe.family_names[k], "n_records": int(fam_sizes[k])}
                     for k, fid in enumerate(family_ids)],
        "splits": split_info,
        "sources": [asdict(s) for s in all_stats],
        "skipped_messages": pipe.skipped,
        "options": options,
    }


def _report(output_dir: Path, manifest: dict, all_stats: list[SourceStats], skipped: list[str],
            size: int) -> PreprocessReport:
    c = manifest["counts"]
    return PreprocessReport(
        output_dir=os.fspath(output_dir), n_records=manifest["n_records"], n_nucleotides=manifest["n_nucleotides"],
        n_shards=len(manifest["shards"]), n_read=c["n_read"], n_duplicates=c["n_duplicates"],
        n_too_short=c["n_too_short"], n_too_long=c["n_too_long"], n_invalid=c["n_invalid"],
        n_files_skipped=c["n_files_skipped"], structure_source=dict(manifest["structure_source"]),
        splits={s: manifest["splits"][s]["n_records"] for s in SPLITS}, n_families=len(manifest["families"]),
        bytes_on_disk=size, elapsed_seconds=manifest["elapsed_seconds"], sources=all_stats,
        skipped_messages=list(skipped),
    )


# ----------------------------------------------------------------------------------------------------------- CLI


def _fractions(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return check_split([float(p) for p in parts])
    except (ValueError, InputError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input_family(text: str) -> tuple[str, str]:
    fam, sep, path = text.partition("=")
    if not sep or not fam.strip() or not path.strip() or len(fam.split()) != 1:
        raise argparse.ArgumentTypeError(f"expected FAMILY=PATH (e.g. RF00005=trna_gtrnadb/), got {text!r}")
    return path, fam.strip()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``genesis-rna preprocess`` options to ``parser`` (the CLI owns the subparser)."""
    parser.add_argument("inputs", nargs="+", help="FASTA(.gz), Stockholm(.gz, e.g. Rfam.seed.gz), .ct, .bpseq, "
                        ".dbn, tRNAscan-SE .ss files or directories of them")
    parser.add_argument("-o", "--output", required=True, help="output shard-store directory (must not exist)")
    parser.add_argument("--min-len", type=int, default=10, help="drop sequences shorter than this (default 10)")
    parser.add_argument("--max-len", type=int, default=None, help="drop sequences longer than this (default: keep)")
    parser.add_argument("--no-fold", dest="fold_missing", action="store_false",
                        help="store records without a given structure as unknown instead of folding them with "
                             "ViennaRNA (MFE)")
    parser.add_argument("--fold-method", choices=FOLD_METHODS, default="mfe",
                        help="how records without a structure are folded: ViennaRNA MFE (default) or its base-pair "
                             "probabilities (bpp: soft pair targets p >= 0.05 stored per record, labels from the "
                             "p > 0.5 pairs; records over 1,000 nt get MFE)")
    parser.add_argument("--fold-fraction", type=float, default=1.0,
                        help="fold only this fraction of the records without a structure (chosen by sequence "
                             "hash, so reproducible); the rest are stored with unknown structure (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes for structures (default: all cores; 0 = main process)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="nucleotides per shard")
    parser.add_argument("--split", type=_fractions, default=(0.9, 0.05, 0.05),
                        help="train,validation,test fractions (default 0.9,0.05,0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="skip and count bad records/files (default) or stop at the first")
    parser.add_argument("--input-family", dest="input_families", action="append", default=[], type=_input_family,
                        metavar="FAMILY=PATH",
                        help="records of input PATH (a file, or every file under a directory) that carry no family "
                             "of their own get FAMILY, so they go to that family's split; repeatable. E.g. "
                             "RF00005=trna_gtrnadb/ keeps GtRNAdb tRNAs with Rfam's tRNA family")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> PreprocessReport:
    """Run :func:`preprocess` from parsed arguments; ``argv`` (the CLI's) is recorded in the manifest."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return preprocess(
        args.inputs, args.output, min_len=args.min_len, max_len=args.max_len, fold_missing=args.fold_missing,
        fold_method=args.fold_method, fold_fraction=args.fold_fraction,
        workers=args.workers, shard_size=args.shard_size, split=args.split, seed=args.seed,
        progress=not args.quiet, on_error=args.on_error, overwrite=args.overwrite,
        command="genesis-rna " + shlex.join(argv), input_families=_family_map(getattr(args, "input_families", [])),
    )


def _family_map(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, fam in pairs:
        if out.setdefault(path, fam) != fam:
            raise InputError(f"two families given for one input ({out[path]} and {fam})", path=path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.preprocess``: the same options as ``genesis-rna preprocess``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m genesis_rna.preprocess",
                                                   description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    try:
        report = run_from_args(args, ["preprocess", *(sys.argv[1:] if argv is None else argv)])
    except GenesisRNAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
