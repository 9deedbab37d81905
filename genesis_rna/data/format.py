"""The shard store's format, shared by its writer (preprocessing) and its readers (the pretraining dataset):
file names, array layouts, codes and the manifest's name and version. See docs/preprocessing.md."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..vocab import NUCLEOTIDE_IDS

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


# ASCII -> nucleotide id lookup, for turning a normalised string into tokens without a Python loop.
_LUT = np.zeros(256, dtype=np.uint8)
for _nt, _id in NUCLEOTIDE_IDS.items():
    _LUT[ord(_nt)] = _id


def encode_nucleotides(sequence: str) -> np.ndarray:
    """uint8 token ids of a normalised (``ACGUN``) sequence, without special tokens."""
    return _LUT[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def read_family_column(directory: str | os.PathLike, shards: Sequence[dict]) -> np.ndarray:
    """The per-record family codes of all shards, in global record order (4 bytes per record)."""
    parts = [np.load(Path(directory) / (s["name"] + SHARD_ARRAYS["family"][0]), mmap_mode="r") for s in shards]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
