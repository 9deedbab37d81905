"""The pretraining data loader: a split of a shard store (or dummy data) -> this rank's batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from .batching import TokenBudgetBatchSampler
from .dataset import RNAPretrainDataset, collate_pretrain
from .dummy import make_dummy_samples
from .format import (
    SPLITS,
)
from .store import _SPLIT_ALIASES, RNAPretrainSample, ShardStore, resolve_family_list

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
