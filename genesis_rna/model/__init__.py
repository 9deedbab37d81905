"""The encoder: layers, ``GenesisRNAModel``, heads, embeddings, devices, model directories, RNA-FM import.

``from genesis_rna.model import GenesisRNAModel`` keeps working as before the package had folders; the names
resolve lazily, so ``genesis_rna.model.registry`` (model directories) imports without PyTorch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"GenesisRNAEncoder": "encoder", "GenesisRNAModel": "encoder", "count_parameters": "encoder"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
