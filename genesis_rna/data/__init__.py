"""Pretraining data: the shard-store format, preprocessing (raw files -> shards), the pretraining dataset and the
token-budget batcher.

The old ``genesis_rna.data`` names resolve lazily, so that preprocessing workers (which import
``genesis_rna.data.preprocess``) never import PyTorch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "RNAPretrainSample": "store", "ShardStore": "store", "archiveii_kind_families": "store",
    "resolve_family_list": "store", "cap_per_family": "store", "RNAPretrainDataset": "dataset",
    "collate_pretrain": "dataset", "item_seed": "dataset", "TokenBudgetBatchSampler": "batching",
    "token_budget_batches": "batching", "pretrain_dataloader": "loader", "PretrainDataLoader": "loader",
    "make_dummy_samples": "dummy", "make_dummy_store": "dummy",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
