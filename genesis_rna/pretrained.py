"""Shipped models and loading by name, offline.

Weights ship inside the package (``genesis_rna/weights/<name>/config.json + model.safetensors``), so loading
never touches the network: the most common complaint about RNA-FM and RiNALMo is weights that cannot be fetched.
Every command that takes a model accepts a directory or one of these names.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "genesis-rna-small"


def available_models() -> list[str]:
    """Names of the models shipped in this installation (directories with a config and weights)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir()
                  if (p / "config.json").is_file() and (p / "model.safetensors").is_file())


def resolve_model_dir(name_or_dir: str | os.PathLike) -> Path:
    """A model directory from a path or a shipped name; the error lists what is available."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    shipped = WEIGHTS_DIR / str(name_or_dir)
    if (shipped / "config.json").is_file() and (shipped / "model.safetensors").is_file():
        return shipped
    names = available_models()
    listing = ", ".join(names) if names else "none in this installation yet"
    raise CheckpointError(
        f"no model directory or shipped model named {os.fspath(name_or_dir)!r} (shipped models: {listing}); "
        "pass a directory written by save_pretrained or `genesis-rna pretrain`"
    )


def load(name_or_dir: str | os.PathLike = DEFAULT_MODEL, *, device: str = "cpu", dtype=None):
    """Load ``(model, tokenizer)`` in one call, as ``esm.pretrained.*()`` and ``fm.pretrained.*()`` do.

    >>> model, tokenizer = genesis_rna.load("path/to/model_dir")  # doctest: +SKIP
    """
    import torch

    from .model import GenesisRNAModel
    from .tokenization import RNATokenizer

    directory = resolve_model_dir(name_or_dir)
    _refuse_structure_model(directory)
    model = GenesisRNAModel.from_pretrained(directory, device=device, dtype=dtype or torch.float32)
    model.eval()
    return model, RNATokenizer.from_pretrained(directory)


def model_type(directory: str | os.PathLike) -> str:
    """``genesis-rna-fold`` for a structure model directory, else ``genesis-rna`` (an encoder)."""
    import json

    try:
        return str(json.loads((Path(directory) / "config.json").read_text()).get("model_type", "genesis-rna"))
    except (OSError, ValueError):
        return "genesis-rna"


def _refuse_structure_model(directory: Path) -> None:
    if model_type(directory) == "genesis-rna-fold":
        raise CheckpointError(f"{directory} is a structure model (use it with `genesis-rna fold --model`), "
                              "not an encoder; encoders: " + ", ".join(
                                  n for n in available_models() if model_type(WEIGHTS_DIR / n) != "genesis-rna-fold"))


def genesis_rna_small(*, device: str = "cpu"):
    """The shipped small model (256 wide, 4 layers) and its tokenizer."""
    return load("genesis-rna-small", device=device)


def random_model(preset: str = "small", *, seed: int = 0, **overrides):
    """A randomly initialised model of a preset, for smoke tests and baselines (``--random-init``)."""
    import torch

    from .config import GenesisRNAConfig
    from .model import GenesisRNAModel
    from .tokenization import RNATokenizer

    torch.manual_seed(seed)
    model = GenesisRNAModel(GenesisRNAConfig.from_preset(preset, **overrides))
    model.eval()
    return model, RNATokenizer()
