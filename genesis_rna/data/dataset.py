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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, InputError
from ..tokenization import random_mask
from ..vocab import CLS_ID, IGNORE_INDEX, PAD_ID, SEP_ID
from .format import UNKNOWN_PARTNER
from .store import RNAPretrainSample, ShardStore

__all__ = ["RNAPretrainDataset", "collate_pretrain", "item_seed", "crop_window"]

# ---------------------------------------------------------------------------------------------------- dataset


_MASK64 = (1 << 64) - 1


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


