"""The fine-tuned model directory: ``task.json``, the head's and (when trained) the encoder's weights; written
atomically, loaded without unpickling."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._fileutil import atomic_path, atomic_write
from ..errors import CheckpointError
from .heads import OneHotConvEncoder, build_head, encoder_width

TASK_FILE = "task.json"
HEAD_FILE = "head.safetensors"


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)


def save_model_dir(directory: Path, encoder: nn.Module, head: nn.Module, task_info: dict[str, Any],
                   feature_norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """config.json + model.safetensors (encoder), head.safetensors (+ feature_norm.*), task.json; atomic."""
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, OneHotConvEncoder):
        _save_tensors(encoder.state_dict(), directory / "model.safetensors")
        with atomic_write(directory / "config.json") as fh:
            json.dump(encoder.config(), fh, indent=2)
    else:
        encoder.save_pretrained(directory)
    head_state = dict(head.state_dict())
    if feature_norm is not None:
        head_state.update({"feature_norm.mean": feature_norm[0], "feature_norm.std": feature_norm[1]})
    _save_tensors(head_state, directory / HEAD_FILE)
    with atomic_write(directory / TASK_FILE) as fh:
        json.dump(task_info, fh, indent=2, allow_nan=True)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a fine-tuned model directory holds config.json, "
                              f"model.safetensors, {HEAD_FILE} and {TASK_FILE}")
    try:
        return load_file(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - any corruption is one clear error
        raise CheckpointError(f"{path}: cannot read weights ({exc})") from None


def load_finetuned(directory: str | os.PathLike) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """``(encoder, head, task_info)`` of a directory written by ``genesis-rna finetune`` (eval mode).

    ``task_info["feature_norm"]`` is ``(mean, std)`` tensors when the head was trained on standardised frozen
    features (apply them before the head), else ``None``.
    """
    directory = Path(directory)
    task_path = directory / TASK_FILE
    if not task_path.is_file():
        from ..structure.model import is_structure_model_dir

        if is_structure_model_dir(directory):
            raise CheckpointError(f"{directory}: a structure model (--task pair); fold with it: "
                                  f"genesis-rna fold INPUT.fa --model {directory}")
        raise CheckpointError(f"{task_path}: missing; pass a directory written by `genesis-rna finetune`")
    try:
        info = json.loads(task_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{task_path}: not valid JSON ({exc.msg})") from None
    if info.get("encoder") == "onehot":
        cfg = json.loads((directory / "config.json").read_text())
        encoder = OneHotConvEncoder(cfg["vocab_size"], cfg["width"] or 128, cfg["layers"], cfg["kernel"])
        try:
            encoder.load_state_dict(_load_tensors(directory / "model.safetensors"))
        except RuntimeError as exc:
            raise CheckpointError(f"{directory / 'model.safetensors'}: weights do not match config.json "
                                  f"({str(exc).splitlines()[0]})") from None
    else:
        from ..model.encoder import GenesisRNAModel

        encoder = GenesisRNAModel.from_pretrained(directory)
    head = build_head(info["task"], encoder_width(encoder), len(info["outputs"]), pooling=info["pooling"],
                      hidden=info["head_hidden"], dropout=info["dropout"],
                      context_layers=info.get("head_conv_layers", 0))
    state = _load_tensors(directory / HEAD_FILE)
    norm = (state.pop("feature_norm.mean", None), state.pop("feature_norm.std", None))
    info["feature_norm"] = norm if norm[0] is not None and norm[1] is not None else None
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory / HEAD_FILE}: weights do not match task.json "
                              f"({str(exc).splitlines()[0]})") from None
    return encoder.eval(), head.eval(), info


# =============================================================================================== running
