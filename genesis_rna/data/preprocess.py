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

import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import FormatError, InputError, StructureError
from ..structure.pairs import context_labels
from ..vocab import IGNORE_INDEX, NUCLEOTIDE_IDS, VOCAB, normalise
from .format import (
    FOLD_METHODS,
    FORMAT_NAME,
    FORMAT_VERSION,
    IDS_SUFFIX,
    MANIFEST,
    MAX_BPP_LENGTH,
    SHARD_ARRAYS,
    SOFT_ARRAYS,
    SOFT_PAIR_MIN_PROB,
    SOURCE_CODES,
    SPLITS,
    UNKNOWN_PARTNER,
    UNPAIRED,
    encode_nucleotides,
    read_family_column,
)
from .shards import DEFAULT_SHARD_RECORDS, DEFAULT_SHARD_SIZE, ShardWriter
from .sources import RawRecord, SourceStats, detect_format, expand_inputs, iter_raw_records
from .splits import DigestSet, check_split, compute_splits, sequence_digest

# This module is imported by every worker process (``spawn``), so it imports nothing that pulls in PyTorch at
# module level (``genesis_rna.tokenization`` does): a worker then costs ~40 MB instead of ~230 MB.


_CHUNK = 64  # records per worker task: large enough to amortise pickling, small enough to balance
_MAX_SKIP_MESSAGES = 50

# ------------------------------------------------------------------------------------------------ shard writer


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
    return f"genesis_rna.data.preprocess.preprocess({[os.fspath(p) for p in inputs]!r}, {os.fspath(output_dir)!r}, {opts})"


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

