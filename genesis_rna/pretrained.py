"""Shipped models and loading by name, offline.

Weights ship inside the package (``genesis_rna/weights/<name>/config.json + model.safetensors``), so loading
never touches the network: the most common complaint about RNA-FM and RiNALMo is weights that cannot be fetched.
Every command that takes a model accepts a directory or one of these names.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError
from .model.registry import (
    DEFAULT_MODEL,
    WEIGHTS_DIR,
    available_models,
    is_structure_model_dir,
    model_type,
    resolve_model_dir,
)

__all__ = ["load", "genesis_rna_small", "random_model", "available_models", "resolve_model_dir", "model_type",
           "DEFAULT_MODEL", "WEIGHTS_DIR"]

def load(name_or_dir: str | os.PathLike = DEFAULT_MODEL, *, device: str = "cpu", dtype=None):
    """Load ``(model, tokenizer)`` in one call, as ``esm.pretrained.*()`` and ``fm.pretrained.*()`` do.

    >>> model, tokenizer = genesis_rna.load("path/to/model_dir")  # doctest: +SKIP
    """
    import torch

    from .model.encoder import GenesisRNAModel
    from .tokenization import RNATokenizer

    directory = resolve_model_dir(name_or_dir)
    _refuse_structure_model(directory)
    model = GenesisRNAModel.from_pretrained(directory, device=device, dtype=dtype or torch.float32)
    model.eval()
    return model, RNATokenizer.from_pretrained(directory)


def _refuse_structure_model(directory: Path) -> None:
    if is_structure_model_dir(directory):
        raise CheckpointError(f"{directory} is a structure model (use it with `genesis-rna fold --model`), "
                              "not an encoder; encoders: " + ", ".join(
                                  n for n in available_models() if not is_structure_model_dir(WEIGHTS_DIR / n)))


def genesis_rna_small(*, device: str = "cpu"):
    """The shipped small model (256 wide, 4 layers) and its tokenizer."""
    return load("genesis-rna-small", device=device)


def random_model(preset: str = "small", *, seed: int = 0, **overrides):
    """A randomly initialised model of a preset, for smoke tests and baselines (``--random-init``)."""
    import torch

    from .config import GenesisRNAConfig
    from .model.encoder import GenesisRNAModel
    from .tokenization import RNATokenizer

    torch.manual_seed(seed)
    model = GenesisRNAModel(GenesisRNAConfig.from_preset(preset, **overrides))
    model.eval()
    return model, RNATokenizer()
