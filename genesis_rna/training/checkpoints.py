"""Run folders: checkpoints (model directory + trainer state, written atomically, RNG states for a bitwise resume),
the metrics log (``metrics.jsonl``) and the training-curve plot."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._fileutil import atomic_path, atomic_write
from ..errors import CheckpointError
from .steps import _unwrap

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
TRAINER_STATE = "trainer_state.pt"
METRICS = "metrics.jsonl"

__all__ = ["latest_checkpoint", "save_checkpoint", "load_trainer_state", "MetricsLog", "read_metrics",
           "plot_training_curves", "CHECKPOINT_DIR", "LATEST", "TRAINER_STATE", "METRICS"]


# --------------------------------------------------------------------------------------------- checkpoints

def _rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain values, so that ``torch.load(weights_only=True)`` reads it back."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                       float(gauss)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint directory of a run, or ``None``."""
    root = Path(output_dir) / CHECKPOINT_DIR
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / TRAINER_STATE).is_file() else None


def _save_model_dir(model: nn.Module, directory: Path) -> None:
    """``save_pretrained`` into a temporary sibling, then rename: a reader never sees half a model."""
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _unwrap(model).save_pretrained(tmp)
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(output_dir: Path, step: int, model: nn.Module, trainer_state: dict[str, Any],
                    keep: int) -> Path:
    """Write ``checkpoints/step-N`` (model + trainer state) atomically, point ``latest`` at it, prune old ones."""
    root = output_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _unwrap(model).save_pretrained(tmp)
    torch.save(trainer_state, tmp / TRAINER_STATE)
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    with atomic_write(root / LATEST) as fh:
        fh.write(name + "\n")
    olds = sorted(p for p in root.glob("step-*") if p.is_dir() and p.name != name)
    for p in olds[: max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def load_trainer_state(path: Path) -> dict[str, Any]:
    """The trainer state of a checkpoint. Only tensors and plain containers: ``weights_only`` loading."""
    try:
        return torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any corruption is one clear error
        raise CheckpointError(f"{path / TRAINER_STATE}: cannot read trainer state ({exc})") from None


# ------------------------------------------------------------------------------------------------- metrics

class MetricsLog:
    """Append-only ``metrics.jsonl`` (rank 0 only); on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            with atomic_write(path) as fh:
                fh.write("".join(line + "\n" for line in kept))
        elif enabled and resume_step is None and path.exists():
            path.unlink()

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a run's ``metrics.jsonl``."""
    path = Path(output_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training_curves(output_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path | None:
    """``training_curves.png``: training and validation losses, AST activation rate, measured FLOPs saved."""
    records = read_metrics(output_dir)
    train_rows = [r for r in records if r.get("kind") == "train"]
    if not train_rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val_rows = [r for r in records if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for key in ("loss", "mlm_loss", "structure_loss", "pair_loss"):
        xs = [r["step"] for r in train_rows if key in r]
        if xs:
            ax.plot(xs, [r[key] for r in train_rows if key in r], label=f"train {key}")
    for key in ("val_loss", "val_mlm_loss"):
        xs = [r["step"] for r in val_rows if key in r]
        if xs:
            ax.plot(xs, [r[key] for r in val_rows if key in r], "o-", label=key)
    ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_title("losses")
    ax = axes[1]
    xs = [r["step"] for r in train_rows if "activation" in r]
    if xs:
        ax.plot(xs, [r["activation"] for r in train_rows if "activation" in r], label="activation (step)")
        ax.plot(xs, [r["activation_cumulative"] for r in train_rows if "activation" in r], label="cumulative")
    ax.set_ylim(0, 1.05), ax.set_xlabel("step"), ax.set_title("AST activation rate")
    ax = axes[2]
    flops = [r for r in train_rows if r.get("flops_dense")]
    if flops:
        ax.plot([r["step"] for r in flops], [1 - r["flops_executed"] / r["flops_dense"] for r in flops], ".-",
                label="step (measured)")
        ax.plot([r["step"] for r in flops],
                [1 - r["flops_executed_total"] / r["flops_dense_total"] for r in flops], label="cumulative")
    ax.set_xlabel("step"), ax.set_title("FLOPs saved vs dense (measured)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:  # a dense run has no activation or savings to plot: say so instead of an empty frame
            ax.text(0.5, 0.5, "not applicable (dense run)", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    target = Path(path) if path else Path(output_dir) / "training_curves.png"
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return target
