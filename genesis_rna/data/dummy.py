"""Synthetic hairpin RNAs: a smoke run (``--use_dummy_data``) and small stores for tests, without real data."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..vocab import NUCLEOTIDE_IDS
from .dataset import crop_window
from .format import (
    MANIFEST,
    SOURCE_CODES,
    SPLITS,
    read_family_column,
)
from .shards import ShardWriter
from .splits import compute_splits
from .store import RNAPretrainSample, ShardStore

# ------------------------------------------------------------------------------------------------- dummy data


_PAIRS = ("AU", "UA", "GC", "CG", "GU", "UG")
_PAIR_WEIGHTS = np.array([0.25, 0.25, 0.2, 0.2, 0.05, 0.05])


def _hairpin(rng: np.random.Generator, offset: int) -> tuple[list[str], list[tuple[int, int]]]:
    """One stem-loop: 4-10 bp stem (with an optional 1-nt bulge), 3-8 nt hairpin loop."""
    stem = int(rng.integers(4, 11))
    loop = int(rng.integers(3, 9))
    pick = rng.choice(len(_PAIRS), size=stem, p=_PAIR_WEIGHTS)
    left = [_PAIRS[k][0] for k in pick]
    right = [_PAIRS[k][1] for k in pick][::-1]
    bulge = rng.random() < 0.3 and stem >= 6
    bulge_at = int(rng.integers(2, stem - 2)) if bulge else -1
    seq: list[str] = []
    pos_left: list[int] = []
    for k, nt in enumerate(left):
        if k == bulge_at:
            seq.append("ACGU"[int(rng.integers(4))])
        pos_left.append(offset + len(seq))
        seq.append(nt)
    seq.extend("ACGU"[int(x)] for x in rng.integers(0, 4, loop))
    pos_right = []
    for nt in right:
        pos_right.append(offset + len(seq))
        seq.append(nt)
    pairs = list(zip(pos_left, pos_right[::-1], strict=True))
    return seq, pairs


def _dummy_record(rng: np.random.Generator, target_len: int) -> tuple[str, np.ndarray]:
    """Random linkers and hairpins until ``target_len`` is reached; returns sequence and partner array."""
    seq: list[str] = []
    pairs: list[tuple[int, int]] = []
    while True:
        seq.extend("ACGU"[int(x)] for x in rng.integers(0, 4, int(rng.integers(1, 6))))
        hp_seq, hp_pairs = _hairpin(rng, len(seq))
        if len(seq) + len(hp_seq) > target_len and pairs:
            break
        seq.extend(hp_seq)
        pairs.extend(hp_pairs)
        if len(seq) >= target_len:
            break
    partner = np.full(len(seq), -1, dtype=np.int32)
    for i, j in pairs:
        partner[i], partner[j] = j, i
    return "".join(seq), partner


def make_dummy_samples(n: int, *, seed: int = 0, min_len: int = 24, max_len: int = 128) -> list[RNAPretrainSample]:
    """``n`` synthetic RNAs made of hairpins whose stems really pair (Watson-Crick/GU), deterministic by seed.

    Structure labels come from :func:`genesis_rna.structure.pairs.context_labels`, so structure and pair heads have
    a learnable signal (stems are complementary) without any input data.
    """
    from ..structure.pairs import context_labels

    if n < 0 or min_len < 1 or max_len < min_len:
        raise ConfigError(f"need n >= 0 and 1 <= min_len <= max_len, got {n}, {min_len}, {max_len}")
    rng = np.random.default_rng([seed, 7])
    lut = NUCLEOTIDE_IDS
    out = []
    for k in range(n):
        seq, partner = _dummy_record(rng, int(rng.integers(min_len, max_len + 1)))
        seq, partner = seq[:max_len], crop_window(partner, 0, max_len).astype(np.int32)
        out.append(RNAPretrainSample(
            id=f"dummy{k}", tokens=np.array([lut[c] for c in seq], dtype=np.uint8),
            struct=context_labels(partner).astype(np.int8), partner=partner, family=k % 8,
            structure_source="input"))
    return out


def make_dummy_store(path: str | os.PathLike, n: int = 256, *, seed: int = 0, min_len: int = 24,
                     max_len: int = 128, shard_size: int = 1 << 14,
                     split: Sequence[float] = (0.8, 0.1, 0.1)) -> ShardStore:
    """Write a small shard store of dummy hairpin RNAs (8 pseudo-families ``DUMMY0..7``) and open it.

    Uses the same writer and manifest layout as :func:`genesis_rna.data.preprocess.preprocess`, so code that reads
    real stores can be tested end to end without data files.
    """
    from .format import FORMAT_NAME as fmt
    from .format import FORMAT_VERSION as ver

    path = Path(path)
    path.mkdir(parents=True, exist_ok=False)
    samples = make_dummy_samples(n, seed=seed, min_len=min_len, max_len=max_len)
    writer = ShardWriter(path, shard_size=shard_size)
    for s in samples:
        writer.add(s.id, s.tokens, s.struct, s.partner, s.family, SOURCE_CODES["input"])
    shards = writer.close()
    family_ids = [f"DUMMY{k}" for k in range(8)]
    indices, split_info = compute_splits(read_family_column(path, shards), family_ids, split, seed)
    for name, idx in zip(SPLITS, indices, strict=True):
        np.save(path / split_info[name]["file"], idx)
    manifest = {
        "format": fmt, "format_version": ver, "n_records": writer.n_records, "n_nucleotides": writer.n_nucleotides,
        "shards": shards, "families": [{"id": f, "name": "dummy hairpins", "n_records": int(math.ceil((n - k) / 8))}
                                       for k, f in enumerate(family_ids)],
        "splits": split_info, "structure_source": {"input": n, "vienna_mfe": 0, "none": 0},
        "command": f"genesis_rna.data.make_dummy_store(n={n}, seed={seed})", "sources": [],
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return ShardStore(path)
