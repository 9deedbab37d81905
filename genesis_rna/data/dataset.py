"""Pretraining data: the shard store, per-item masking and cropping, collation and token-budget batching.

Reproducibility is the organising rule. Every random choice made for an item (crop start, masked positions,
replacement tokens) comes from a ``torch.Generator`` seeded from ``(seed, epoch, index)``, and the batch order
comes from ``(seed, epoch)`` alone, so a run resumed from a checkpoint (sampler ``state_dict`` + epoch) sees
exactly the batches it would have seen without the interruption, whatever the number of DataLoader workers.

Batch keys (``collate_pretrain``), with ``B`` items padded to the longest ``T`` tokens (specials included):

=================  ===========================  ============================================================
key                dtype / shape                meaning
=================  ===========================  ============================================================
input_ids          int64 [B, T]                 ``[CLS] s [SEP]`` after masking, ``[PAD]`` = 0 after
attention_mask     int64 [B, T]                 1 on real tokens (specials included), 0 on padding
mlm_labels         int64 [B, T]                 original id at masked positions, -100 elsewhere
struct_labels      int64 [B, T]                 NONE 0 STEM 1 LOOP 2 BULGE 3 HAIRPIN 4; -100 at specials,
                                                padding and unknown structure
partner            int64 [B, T]                 token index of the partner (``[CLS]`` = 0), -1 unpaired,
                                                -2 unknown / special / padding
pair_matrix        float32 [B, T, T]            1 paired, 0 not paired (ViennaRNA p(i, j) for soft-pair records), -100 where either position is
                                                padding, a special token or of unknown structure
lengths            int64 [B]                    nucleotides per item (after cropping)
indices            int64 [B]                    dataset index of each item
ids                list[str]                    record ids
=================  ===========================  ============================================================
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import ConfigError, FormatError, InputError
from .preprocess import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IDS_SUFFIX,
    IGNORE_INDEX,
    MANIFEST,
    SHARD_ARRAYS,
    SOFT_ARRAYS,
    SOURCE_CODES,
    SOURCE_NAMES,
    SPLITS,
    UNKNOWN_PARTNER,
    ShardWriter,
    compute_splits,
    read_family_column,
)
from .tokenization import CLS_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID, random_mask

__all__ = [
    "RNAPretrainSample", "ShardStore", "RNAPretrainDataset", "collate_pretrain", "TokenBudgetBatchSampler",
    "DummyPretrainDataset", "make_dummy_samples", "make_dummy_store", "pretrain_dataloader",
    "PretrainDataLoader", "item_seed",
]

_SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                  "test": "test"}


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
    """Read-only, memory-mapped view of a store written by :func:`genesis_rna.preprocess.preprocess`.

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


# ---------------------------------------------------------------------------------------------------- dataset


_MASK64 = (1 << 64) - 1


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


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit generator seed that is a fixed function of ``(seed, epoch, index)`` (splitmix64 mixing).

    Neighbouring indices and epochs give unrelated streams, and the value does not depend on worker ids, so
    masks are identical with 0 or 16 DataLoader workers and after a resume.
    """
    h = _splitmix64(seed & _MASK64)
    h = _splitmix64(h ^ (epoch & _MASK64))
    h = _splitmix64(h ^ (index & _MASK64))
    return h & ((1 << 63) - 1)


def crop_window(partner: np.ndarray, start: int, length: int) -> np.ndarray:
    """Partners of ``partner[start:start+length]`` re-indexed to the window; pairs leaving it become -1.

    Unknown (-2) stays unknown. A pair with one side outside the window is unpaired on the side that remains,
    so the window's structure is again symmetric.
    """
    window = np.asarray(partner[start:start + length], dtype=np.int64).copy()
    paired = window >= 0
    shifted = window - start
    outside = paired & ((shifted < 0) | (shifted >= length))
    window[paired] = shifted[paired]
    window[outside] = -1
    return window


class RNAPretrainDataset(Dataset):
    """Items for masked-nucleotide + structure pretraining, from a :class:`ShardStore` or a list of samples.

    ``max_len`` counts tokens including ``[CLS]`` and ``[SEP]``; longer records are cropped to
    ``max_len - 2`` nucleotides (``crop="random"``: a start drawn from the item's generator; ``"start"``:
    the 5' end). ``structure=False`` hides structure targets (all -100 / unknown), for every record or only
    for the records of ``no_structure_families`` (family codes). ``fixed_masks=True`` is the
    validation mode: masks and crops ignore the epoch, so every evaluation scores the same positions.
    """

    def __init__(
        self,
        store_or_samples: ShardStore | Sequence[RNAPretrainSample],
        *,
        max_len: int,
        mlm_probability: float = 0.15,
        seed: int = 0,
        crop: str = "random",
        structure: bool = True,
        fixed_masks: bool = False,
        no_structure_families: Sequence[int] = (),
    ) -> None:
        if max_len < 3:
            raise ConfigError(f"max_len must leave room for [CLS], one nucleotide and [SEP], got {max_len}")
        if crop not in ("random", "start"):
            raise ConfigError(f"crop must be 'random' or 'start', got {crop!r}")
        if not 0.0 <= mlm_probability <= 1.0:
            raise ConfigError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
        self.data = store_or_samples
        self.max_len, self.mlm_probability, self.seed = int(max_len), float(mlm_probability), int(seed)
        self.crop, self.structure, self.fixed_masks = crop, bool(structure), bool(fixed_masks)
        self.no_structure_families = frozenset(int(c) for c in no_structure_families)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose masks and crops ``__getitem__`` produces (call it on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def lengths(self) -> np.ndarray:
        """Nucleotides per item before cropping (what :class:`TokenBudgetBatchSampler` needs)."""
        if isinstance(self.data, ShardStore):
            return self.data.lengths
        return np.fromiter((len(s) for s in self.data), dtype=np.int64, count=len(self.data))

    def generator(self, index: int) -> torch.Generator:
        """The item's generator: a function of (seed, epoch, index), or (seed, index) with fixed masks."""
        g = torch.Generator()
        g.manual_seed(item_seed(self.seed, 0 if self.fixed_masks else self.epoch + 1, index))
        return g

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.data[index]
        g = self.generator(int(index))
        n = len(sample)
        window = self.max_len - 2
        start = 0
        if n > window and self.crop == "random":
            start = int(torch.randint(0, n - window + 1, (1,), generator=g))
        length = min(n, window)
        tokens = torch.from_numpy(np.asarray(sample.tokens[start:start + length], dtype=np.int64))
        ids = torch.cat([torch.tensor([CLS_ID]), tokens, torch.tensor([SEP_ID])])
        masked, mlm_labels = random_mask(ids, mlm_probability=self.mlm_probability, generator=g)
        struct, partner = self._structure(sample, start, length)
        return {
            "input_ids": masked, "attention_mask": torch.ones_like(ids), "mlm_labels": mlm_labels,
            "struct_labels": struct, "partner": partner, "length": length, "index": int(index), "id": sample.id,
            "soft_pairs": self._soft_pairs(sample, start, length),
        }

    def _soft_pairs(self, sample: RNAPretrainSample, start: int, length: int) -> torch.Tensor | None:
        """``[3, K]`` float tensor of token-space soft pairs (i, j, p) inside the crop window, or None."""
        if sample.soft_pairs is None or not self.structure or sample.family in self.no_structure_families:
            return None
        i, j, p = (np.asarray(a, dtype=np.float32) for a in sample.soft_pairs)
        inside = (i >= start) & (j < start + length)
        return torch.from_numpy(np.stack([i[inside] - start + 1, j[inside] - start + 1, p[inside]]))

    def _structure(self, sample: RNAPretrainSample, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-space structure targets: labels with -100 at specials, partners shifted by one for [CLS]."""
        struct = torch.full((length + 2,), IGNORE_INDEX, dtype=torch.long)
        partner = torch.full((length + 2,), UNKNOWN_PARTNER, dtype=torch.long)
        if self.structure and sample.family not in self.no_structure_families:
            struct[1:-1] = torch.from_numpy(np.asarray(sample.struct[start:start + length], dtype=np.int64))
            p = torch.from_numpy(crop_window(sample.partner, start, length))
            partner[1:-1] = torch.where(p >= 0, p + 1, p)
        return struct, partner


def collate_pretrain(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad items of :class:`RNAPretrainDataset` to the longest and build ``pair_matrix`` (see module doc)."""
    if not items:
        raise InputError("cannot collate an empty batch")
    width = max(len(it["input_ids"]) for it in items)
    b = len(items)

    def pad(key: str, value: int) -> torch.Tensor:
        out = torch.full((b, width), value, dtype=torch.long)
        for k, it in enumerate(items):
            out[k, : len(it[key])] = it[key]
        return out

    partner = pad("partner", UNKNOWN_PARTNER)
    known = partner != UNKNOWN_PARTNER
    pair = torch.where(known[:, :, None] & known[:, None, :], 0.0, float(IGNORE_INDEX)).to(torch.float32)
    bi, ti = torch.nonzero(partner >= 0, as_tuple=True)
    pair[bi, ti, partner[bi, ti]] = 1.0
    for k, it in enumerate(items):
        soft = it.get("soft_pairs")
        if soft is not None:  # ViennaRNA probabilities replace the hard targets of the p > 0.5 structure
            i, j = soft[0].long(), soft[1].long()
            pair[k, i, j] = soft[2]
            pair[k, j, i] = soft[2]
    return {
        "input_ids": pad("input_ids", PAD_ID), "attention_mask": pad("attention_mask", 0),
        "mlm_labels": pad("mlm_labels", IGNORE_INDEX), "struct_labels": pad("struct_labels", IGNORE_INDEX),
        "partner": partner, "pair_matrix": pair,
        "lengths": torch.tensor([int(it["length"]) for it in items], dtype=torch.long),
        "indices": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
        "ids": [it["id"] for it in items],
    }


# ---------------------------------------------------------------------------------------------------- sampler


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches for a token budget (or a fixed batch size), deterministic, resumable, DDP-aware.

    Per epoch: indices are shuffled with ``(seed, epoch)``, cut into buckets of ``bucket_size``, sorted by
    length inside each bucket, and grouped into batches whose padded size ``n * (min(L, max_len - 2) + 2)``
    stays within ``tokens_per_batch`` (a single longer item gets a batch of its own); with
    ``tokens_per_batch == 0`` batches hold ``batch_size`` items. The batch order is shuffled again. Without
    ``shuffle`` there is no shuffling at all: batches follow length order inside buckets of the original order
    (minimal padding for evaluation).

    With ``world_size > 1`` the epoch's batch list is padded by repeating its first batches up to a multiple
    of ``world_size`` (or truncated with ``drop_last``) and rank ``r`` takes batches ``r, r + world_size, ...``,
    so ranks get disjoint, equally many batches and never wait on each other at a collective.

    ``state_dict()`` records ``(epoch, batches yielded)``; after ``load_state_dict`` the next iteration of that
    epoch continues with exactly the next batch. When a DataLoader prefetches with workers, the sampler runs
    ahead of training, so checkpoint :class:`PretrainDataLoader`'s state instead (it counts consumed batches).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        tokens_per_batch: int = 0,
        batch_size: int = 16,
        *,
        shuffle: bool = True,
        seed: int = 0,
        bucket_size: int = 4096,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        max_len: int | None = None,
        max_batch_size: int = 0,
    ) -> None:
        if tokens_per_batch < 0 or (tokens_per_batch == 0 and batch_size <= 0):
            raise ConfigError(f"need tokens_per_batch > 0 or batch_size > 0, got {tokens_per_batch}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if bucket_size <= 0:
            raise ConfigError(f"bucket_size must be positive, got {bucket_size}")
        lengths = np.asarray(lengths, dtype=np.int64)
        self.tokens = lengths + 2 if max_len is None else np.minimum(lengths + 2, int(max_len))
        self.tokens_per_batch, self.batch_size = int(tokens_per_batch), int(batch_size)
        self.shuffle, self.seed, self.bucket_size, self.drop_last = shuffle, int(seed), int(bucket_size), drop_last
        self.rank, self.world_size, self.max_batch_size = int(rank), int(world_size), int(max_batch_size)
        self.epoch = 0
        self._start = 0  # batches of self.epoch to skip on the next iteration (resume)
        self._yielded = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    # -- batch construction
    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _all_batches(self) -> list[list[int]]:
        """Every batch of the current epoch, before the split across ranks."""
        n = len(self.tokens)
        rng = self._rng()
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        buckets = [order[i:i + self.bucket_size] for i in range(0, n, self.bucket_size)]
        ordered = [b[np.argsort(self.tokens[b], kind="stable")] for b in buckets]
        if self.tokens_per_batch:
            batches = [batch for b in ordered for batch in self._budget_batches(b)]
        else:
            flat = np.concatenate(ordered) if ordered else np.zeros(0, np.int64)
            batches = [flat[i:i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
        if self.shuffle:
            batches = [batches[k] for k in rng.permutation(len(batches))]
        return batches

    def _budget_batches(self, idx: np.ndarray) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        for i, t in zip(idx.tolist(), self.tokens[idx].tolist(), strict=True):
            new_width = max(width, t)
            full = self.max_batch_size and len(current) >= self.max_batch_size
            if current and (new_width * (len(current) + 1) > self.tokens_per_batch or full):
                batches.append(current)
                current, new_width = [], t
            current.append(i)
            width = new_width
        if current:
            batches.append(current)
        return batches

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch (cached per epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        batches = self._all_batches()
        w = self.world_size
        if w > 1 and len(batches) % w:
            if self.drop_last or len(batches) < 1:
                batches = batches[: len(batches) // w * w]
            else:
                extra = w - len(batches) % w
                batches = batches + [batches[k % len(batches)] for k in range(extra)]
        mine = batches[self.rank::w]
        self._cache = (self.epoch, mine)
        return mine

    # -- iteration, epochs, resume
    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start, self._start = self._start, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield list(batch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; changing it clears a pending resume offset (which belongs to the loaded epoch)."""
        if int(epoch) != self.epoch:
            self._start = 0
            self._yielded = 0
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_yielded": self._yielded, "seed": self.seed,
                "n_items": int(len(self.tokens)), "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts after ``state["batches_yielded"]`` batches."""
        for key in ("seed", "n_items", "world_size"):
            mine = {"seed": self.seed, "n_items": len(self.tokens), "world_size": self.world_size}[key]
            if key in state and int(state[key]) != int(mine):
                raise ConfigError(f"sampler state was saved with {key}={state[key]}, this sampler has {mine}; "
                                  "resuming would not reproduce the batches")
        self.epoch = int(state["epoch"])
        self._start = self._yielded = int(state["batches_yielded"])


# ------------------------------------------------------------------------------------------------------- loader


class PretrainDataLoader(DataLoader):
    """A DataLoader that keeps dataset and sampler epochs in step and counts the batches it hands out.

    ``state_dict()`` is ``(epoch, batches consumed)``: unlike the sampler's own count it is not inflated by
    worker prefetching, so it is the one to store in checkpoints.
    """

    def __init__(self, dataset: RNAPretrainDataset, batch_sampler: TokenBudgetBatchSampler, **kwargs: Any) -> None:
        # Our own generator: a DataLoader iterator otherwise draws its worker base seed from the global torch
        # RNG, so starting an iterator after a resume would shift the dropout stream of the model.
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(dataset, batch_sampler=batch_sampler, collate_fn=collate_pretrain, **kwargs)
        self._consumed = 0

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)
        if int(epoch) != self.batch_sampler.epoch:
            self._consumed = 0
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dataset.set_epoch(self.batch_sampler.epoch)
        self._consumed = self.batch_sampler._start
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        state = self.batch_sampler.state_dict()
        state["batches_yielded"] = self._consumed
        return state

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)
        self.dataset.set_epoch(int(state["epoch"]))
        self._consumed = int(state["batches_yielded"])


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def open_store(cfg: Any, split: str) -> ShardStore:
    """``split`` of the shard store ``cfg.data_path``, with the config's per-family cap on the training split."""
    cap = int(getattr(cfg, "max_records_per_family", 0)) if split == "train" else 0
    return ShardStore(cfg.data_path, split=split, max_per_family=cap, cap_seed=cfg.seed)


def pretrain_dataloader(
    cfg: Any,
    split: str = "train",
    *,
    store: ShardStore | Sequence[RNAPretrainSample] | None = None,
    shuffle: bool | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    bucket_size: int = 4096,
    dummy_size: int | None = None,
) -> PretrainDataLoader:
    """Dataset + :class:`TokenBudgetBatchSampler` + DataLoader for ``split`` of a :class:`TrainingConfig`.

    Reads ``cfg.data_path`` (a shard store) unless ``cfg.use_dummy_data`` (synthetic hairpins) or ``store`` is
    given. Training shuffles and draws fresh masks each epoch; other splits keep length order and fixed masks so
    validation losses are comparable between evaluations. Rank and world size default to torch.distributed's.
    """
    split = _SPLIT_ALIASES.get(split, split)
    train = split == "train"
    if store is None:
        if cfg.use_dummy_data:
            n = dummy_size or (2048 if train else 256)
            store = make_dummy_samples(n, seed=cfg.seed + SPLITS.index(split) if split in SPLITS else cfg.seed,
                                       max_len=max(cfg.max_seq_len, 16))
        else:
            if not cfg.data_path:
                raise ConfigError("data_path is empty: give a shard store from `genesis-rna preprocess` or set "
                                  "use_dummy_data")
            store = open_store(cfg, split)
    max_len = cfg.max_seq_len + 2
    hidden = ()
    if isinstance(store, ShardStore) and getattr(cfg, "structure_exclude_families", ""):
        hidden = store.family_codes(resolve_family_list(store, cfg.structure_exclude_families))
    dataset = RNAPretrainDataset(store, max_len=max_len, mlm_probability=cfg.mlm_probability, seed=cfg.seed,
                                 fixed_masks=not train, no_structure_families=hidden)
    r, w = world()
    sampler = TokenBudgetBatchSampler(
        dataset.lengths, cfg.tokens_per_batch, cfg.batch_size, shuffle=train if shuffle is None else shuffle,
        seed=cfg.seed, bucket_size=bucket_size, rank=r if rank is None else rank,
        world_size=w if world_size is None else world_size, max_len=max_len)
    workers = int(cfg.num_workers)
    return PretrainDataLoader(dataset, sampler, num_workers=workers, pin_memory=False,
                              persistent_workers=False, prefetch_factor=2 if workers else None)


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

    Structure labels come from :func:`genesis_rna.structure.context_labels`, so structure and pair heads have
    a learnable signal (stems are complementary) without any input data.
    """
    from .structure import context_labels

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


class DummyPretrainDataset(RNAPretrainDataset):
    """:class:`RNAPretrainDataset` over :func:`make_dummy_samples` (for ``--use_dummy_data`` and tests)."""

    def __init__(self, n: int = 1024, *, max_len: int = 130, data_seed: int = 0, min_len: int = 24, **kwargs: Any
                 ) -> None:
        samples = make_dummy_samples(n, seed=data_seed, min_len=min(min_len, max_len - 2), max_len=max_len - 2)
        super().__init__(samples, max_len=max_len, **kwargs)


def make_dummy_store(path: str | os.PathLike, n: int = 256, *, seed: int = 0, min_len: int = 24,
                     max_len: int = 128, shard_size: int = 1 << 14,
                     split: Sequence[float] = (0.8, 0.1, 0.1)) -> ShardStore:
    """Write a small shard store of dummy hairpin RNAs (8 pseudo-families ``DUMMY0..7``) and open it.

    Uses the same writer and manifest layout as :func:`genesis_rna.preprocess.preprocess`, so code that reads
    real stores can be tested end to end without data files.
    """
    from .preprocess import FORMAT_NAME as fmt
    from .preprocess import FORMAT_VERSION as ver

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
