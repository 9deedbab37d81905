"""Writing shards: records are buffered and flushed as one set of ``.npy`` arrays per shard."""

from __future__ import annotations

import os
from array import array
from pathlib import Path

import numpy as np

from ..errors import InputError
from .format import IDS_SUFFIX, SHARD_ARRAYS, SOFT_ARRAYS, SOURCE_CODES, SOURCE_NAMES, shard_name

DEFAULT_SHARD_SIZE = 1 << 24  # nucleotides per shard (16 Mi: ~112 MB of arrays)
DEFAULT_SHARD_RECORDS = 1 << 20


class ShardWriter:
    """Buffers records and writes a shard every ``shard_size`` nucleotides or ``shard_records`` records.

    Callers give fully processed arrays; the writer only concatenates and saves them, so it is also what
    :func:`genesis_rna.data.dummy.make_dummy_store` uses to build small stores for tests.
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
