"""Reading a shard store: the manifest, the memory-mapped arrays of every shard, a split's records, families."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FormatError, InputError
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IDS_SUFFIX,
    MANIFEST,
    SHARD_ARRAYS,
    SOFT_ARRAYS,
    SOURCE_NAMES,
    SPLITS,
    read_family_column,
)

_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "test": "test"}
__all__ = ["RNAPretrainSample", "ShardStore", "archiveii_kind_families", "resolve_family_list", "ARCHIVEII_KIND_PATTERN",
           "cap_per_family"]


@dataclass
class RNAPretrainSample:
    """One record of a shard store: nucleotide ids (no specials) and its per-nucleotide structure.

    ``struct``: context labels (int8, -100 unknown); ``partner``: 0-based partner within the record (int32,
    -1 unpaired, -2 unknown); ``family``: index into the store's family table (-1 none); ``soft_pairs``:
    ``(i, j, p)`` ViennaRNA base-pair probabilities (0-based, i < j) that replace the hard pair targets.
    """

    id: str
    tokens: np.ndarray
    struct: np.ndarray
    partner: np.ndarray
    family: int = -1
    structure_source: str = "none"
    soft_pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(len(self.tokens))


# ------------------------------------------------------------------------------------------------- shard store


def _load_manifest(path: Path) -> dict:
    """The manifest of a shard store, or a one-line FormatError saying why ``path`` is not one."""
    if not path.exists():
        raise InputError("no such shard store (run `genesis-rna preprocess` first)", path=path)
    manifest_path = path / MANIFEST if path.is_dir() else path
    if not manifest_path.is_file():
        raise FormatError(f"not a shard store: no {MANIFEST} (run `genesis-rna preprocess` to create one)",
                          path=path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"corrupt shard-store manifest ({' '.join(str(exc).split())})", path=manifest_path
                          ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise FormatError(f"not a genesis-rna shard-store manifest (format is not {FORMAT_NAME!r})",
                          path=manifest_path)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported shard-store format version {version!r} (this genesis-rna reads "
                          f"version {FORMAT_VERSION}); re-run `genesis-rna preprocess`", path=manifest_path)
    for key in ("shards", "n_records", "splits"):
        if key not in manifest:
            raise FormatError(f"corrupt shard-store manifest: missing {key!r}", path=manifest_path)
    return manifest


class ShardStore:
    """Read-only, memory-mapped view of a store written by :func:`genesis_rna.data.preprocess.preprocess`.

    Only the manifest is read on construction; shard arrays are memory-mapped on first use, so opening a store
    of any size is instant and a DataLoader worker maps only the shards it reads. ``split`` restricts the view
    to ``"train"``, ``"validation"`` or ``"test"`` (global indices from ``split-*.npy``). Pickling drops the
    open maps (workers reopen them), so the store travels cheaply to DataLoader worker processes.
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None, *, max_per_family: int = 0,
                 cap_seed: int = 0) -> None:
        self.path = Path(path)
        self.max_per_family, self.cap_seed = int(max_per_family), int(cap_seed)
        self.manifest = _load_manifest(self.path)
        if self.path.is_file():
            self.path = self.path.parent
        self.split = None if split is None else self._split_name(split)
        counts = [int(s["n_records"]) for s in self.manifest["shards"]]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        if int(self._starts[-1]) != int(self.manifest["n_records"]):
            raise FormatError("corrupt shard-store manifest: shard record counts do not add up", path=self.path)
        self._index = None if self.split is None else self._load_split(self.split)
        self._maps: dict[int, dict[str, np.ndarray]] = {}
        self._lengths: np.ndarray | None = None

    def _split_name(self, split: str) -> str:
        name = _SPLIT_ALIASES.get(split.lower())
        if name is None:
            raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", path=self.path)
        return name

    def _load_split(self, split: str) -> np.ndarray:
        info = self.manifest["splits"].get(split)
        file = self.path / (info or {}).get("file", f"split-{split}.npy")
        try:
            index = np.load(file, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise FormatError(f"cannot read split file {file.name} ({exc})", path=self.path) from None
        if len(index) and (int(index.max()) >= self.n_total or int(index.min()) < 0):
            raise FormatError(f"split file {file.name} has indices out of range", path=self.path)
        if self.max_per_family > 0:
            index = cap_per_family(np.asarray(index), self.family_column()[np.asarray(index)], self.max_per_family,
                                   self.cap_seed)
        return index

    def family_column(self) -> np.ndarray:
        """Family code of every record of the whole store (index into :attr:`family_ids`; -1 none)."""
        return read_family_column(self.path, self.manifest["shards"])

    # -- pickling: memory maps are reopened lazily in the receiving process
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}
        if self._index is not None:
            state["_index"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.split is not None:
            self._index = self._load_split(self.split)

    @property
    def n_total(self) -> int:
        """Records in the whole store (all splits)."""
        return int(self._starts[-1])

    def __len__(self) -> int:
        return self.n_total if self._index is None else int(len(self._index))

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        maps = self._maps.get(k)
        if maps is None:
            name = self.manifest["shards"][k]["name"]
            try:
                maps = {key: np.load(self.path / (name + suffix), mmap_mode="r")
                        for key, (suffix, _, _) in SHARD_ARRAYS.items()}
                if (self.path / (name + SOFT_ARRAYS["soft_offsets"][0])).exists():
                    maps |= {key: np.load(self.path / (name + suffix), mmap_mode="r")
                             for key, (suffix, _, _) in SOFT_ARRAYS.items()}
                ids_file = self.path / (name + IDS_SUFFIX)
                maps["ids"] = (np.memmap(ids_file, dtype=np.uint8, mode="r") if ids_file.stat().st_size
                               else np.zeros(0, np.uint8))
            except (OSError, ValueError) as exc:
                raise FormatError(f"cannot read shard {name} ({exc})", path=self.path) from None
            self._maps[k] = maps
        return maps

    def global_index(self, i: int) -> int:
        """Index in the whole store of item ``i`` of this (split) view; negative ``i`` counts from the end."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for a store of {n} records")
        i %= n
        return i if self._index is None else int(self._index[i])

    def _locate(self, g: int) -> tuple[int, int]:
        k = int(np.searchsorted(self._starts, g, side="right")) - 1
        return k, g - int(self._starts[k])

    def __getitem__(self, i: int) -> RNAPretrainSample:
        k, j = self._locate(self.global_index(int(i)))
        m = self._shard(k)
        s, e = int(m["offsets"][j]), int(m["offsets"][j + 1])
        a, b = int(m["id_offsets"][j]), int(m["id_offsets"][j + 1])
        soft = None
        if "soft_offsets" in m and m["soft_offsets"][j + 1] > m["soft_offsets"][j]:
            u, v = int(m["soft_offsets"][j]), int(m["soft_offsets"][j + 1])
            soft = (np.array(m["soft_i"][u:v]), np.array(m["soft_j"][u:v]), np.array(m["soft_p"][u:v]))
        return RNAPretrainSample(
            id=bytes(m["ids"][a:b - 1]).decode("utf-8"),
            tokens=np.array(m["tokens"][s:e]), struct=np.array(m["struct"][s:e]),
            partner=np.array(m["partner"][s:e]), family=int(m["family"][j]),
            structure_source=SOURCE_NAMES.get(int(m["source"][j]), "none"), soft_pairs=soft,
        )

    def __iter__(self) -> Iterator[RNAPretrainSample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def lengths(self) -> np.ndarray:
        """Nucleotides per record of this view (int64), from the offsets only: cheap even for huge stores."""
        if self._lengths is None:
            parts = [np.diff(self._shard(k)["offsets"]) for k in range(len(self.manifest["shards"]))]
            full = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
            self._lengths = full if self._index is None else full[np.asarray(self._index)]
        return self._lengths

    @property
    def family_ids(self) -> list[str]:
        """Family accessions, indexed by :attr:`RNAPretrainSample.family`."""
        return [f["id"] for f in self.manifest.get("families", [])]

    def family_codes(self, names_or_ids: Sequence[str]) -> list[int]:
        """Family codes of accessions or family names (either matches); an unknown one is a ConfigError."""
        by_key: dict[str, int] = {}
        for code, fam in enumerate(self.manifest.get("families", [])):
            by_key[fam["id"]] = code
            if fam.get("name"):
                by_key.setdefault(fam["name"], code)
        missing = [x for x in names_or_ids if x not in by_key]
        if missing:
            raise ConfigError(f"{self.path}: no family {', '.join(map(repr, missing))} in this store")
        return sorted({by_key[x] for x in names_or_ids})

    def split_families(self, split: str) -> list[str]:
        """Family accessions assigned to ``split`` (empty when the store has no families)."""
        return list(self.manifest["splits"][self._split_name(split)].get("families", []))

    def __repr__(self) -> str:
        view = "" if self.split is None else f", split={self.split!r}"
        return f"ShardStore({os.fspath(self.path)!r}{view}, n={len(self)})"


def cap_per_family(index: np.ndarray, family: np.ndarray, max_per_family: int, seed: int) -> np.ndarray:
    """At most ``max_per_family`` records of each family (a seeded random choice, kept in ``index`` order).

    Why: one family can dominate a corpus (GtRNAdb adds ~30,000 distinct tRNAs to Rfam's ~25 seeds per
    family), and a model then spends its budget memorising that family instead of learning what transfers to
    unseen ones. Records without a family (-1) are all kept.
    """
    index, family = np.asarray(index), np.asarray(family)
    if max_per_family <= 0 or len(index) == 0:
        return index
    rng = np.random.default_rng(seed)
    keep = np.ones(len(index), dtype=bool)
    order = rng.permutation(len(index))  # a random rank for every record; the first max_per_family per family stay
    fam_sorted = family[order]
    by_family = np.argsort(fam_sorted, kind="stable")
    fam_of = fam_sorted[by_family]
    starts = np.searchsorted(fam_of, fam_of, side="left")
    rank_in_family = np.arange(len(fam_of)) - starts
    drop = (rank_in_family >= max_per_family) & (fam_of >= 0)
    keep[order[by_family[drop]]] = False
    return index[keep]


# Rfam families of the kinds that ArchiveII's family-fold benchmark holds out (5S rRNA, tRNA, tmRNA, RNase P,
# SRP, group I intron, telomerase RNA, SSU and LSU rRNA), matched on Rfam family names. A model that will be
# scored on that benchmark must not see their structures in pretraining (issue 9); their sequences may stay in
# the masked-nucleotide task, as in the anchors' corpora.
ARCHIVEII_KIND_PATTERN = (r"^(5S_rRNA|tRNA|tRNA-Sec|mt-tRNA|Tymo_tRNA-like|.*tmRNA|RNaseP.*|.*_SRP|Intron_gpI|"
                          r".*[Tt]elomerase.*|SSU_rRNA_.*|LSU_rRNA_.*)$")


def archiveii_kind_families(store: ShardStore) -> list[str]:
    """Accessions of the store's families whose names match :data:`ARCHIVEII_KIND_PATTERN`."""
    import re

    pattern = re.compile(ARCHIVEII_KIND_PATTERN)
    return [f["id"] for f in store.manifest.get("families", []) if pattern.match(f.get("name") or "")]


def resolve_family_list(store: ShardStore, spec: str) -> list[str]:
    """Family accessions from a comma-separated list of accessions/names; ``archiveii`` expands to
    :func:`archiveii_kind_families`."""
    out: list[str] = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        names = archiveii_kind_families(store) if item.lower() == "archiveii" else [item]
        out.extend(store.family_ids[c] for c in store.family_codes(names))
    return sorted(set(out))
