"""Model directories: the shipped ones by name, and which kind a directory holds (``model_type`` in its
``config.json``, as Hugging Face's Auto classes read it). No model code here, so every loader may use it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError

__all__ = ["WEIGHTS_DIR", "DEFAULT_MODEL", "STRUCTURE_MODEL_TYPE", "available_models", "resolve_model_dir", "model_type",
           "is_structure_model_dir"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_MODEL = "genesis-rna-small"
#: ``model_type`` of a structure model directory (genesis_rna.structure.model); encoders say ``genesis-rna``
STRUCTURE_MODEL_TYPE = "genesis-rna-fold"


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


def model_type(directory: str | os.PathLike) -> str:
    """``genesis-rna-fold`` for a structure model directory, else ``genesis-rna`` (an encoder)."""
    try:
        return str(json.loads((Path(directory) / "config.json").read_text()).get("model_type", "genesis-rna"))
    except (OSError, ValueError):
        return "genesis-rna"


def is_structure_model_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a structure model (not a plain encoder)."""
    return model_type(path) == STRUCTURE_MODEL_TYPE
