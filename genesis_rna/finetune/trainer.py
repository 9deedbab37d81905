"""Fine-tuning entry point: ``python -m genesis_rna.train_finetune`` = ``genesis-rna finetune``.

One command for sequence classification / regression and per-nucleotide classification / regression, on a
genesis-rna encoder (``--model``, ``--random-init``) or on one-hot input (``--encoder onehot``: the same head
behind a small residual CNN, the "no language model" baseline). ``--task pair`` (secondary structure from
.dbn/.ct/.bpseq/Stockholm files or a structure column) trains a structure model instead: see
:mod:`genesis_rna.finetune.structure`; its directory is what ``genesis-rna fold --model DIR`` loads.

Modes. ``--mode frozen`` (default) runs the encoder once over every sequence and caches what the head reads
(the mean or [CLS] vector for sequence tasks, per-nucleotide vectors for token tasks), so each epoch only trains
the head: on a CPU this is tens to hundreds of times faster than fine-tuning. ``--mode full`` trains the encoder
too, at ``--encoder-lr`` (lower than the head's ``--lr``); sequences longer than the model window are randomly
cropped to it during training. Evaluation always uses whole sequences (windowed like ``genesis-rna embed``).

Why not :func:`genesis_rna.training.loop.train`: that loop is built around pretraining checkpoints (it resumes by
loading a bare ``GenesisRNAModel`` and keeps the best model by validation *loss*); fine-tuning needs early
stopping on a task metric, cached features and a model directory with a head. The loop here is ~40 lines and
reuses the same schedule (:func:`~genesis_rna.training.loop.lr_lambda`), devices and precision helpers.

Run folder = model directory (``--output-dir``)::

    config.json + model.safetensors   the encoder (a genesis-rna model directory: `embed --model` accepts it)
    head.safetensors                  the task head
    task.json                         task type, labels/targets, columns, normalisation, metrics
    metrics.jsonl                     one JSON object per epoch (train loss, validation metrics), then test
    training_curves.png               loss and the monitored metric per epoch

``genesis-rna predict OUTPUT_DIR INPUT`` loads it. Nothing is pickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._fileutil import atomic_path
from ..errors import GenesisRNAError, InputError
from ..model.device import autocast_context, resolve_device, resolve_dtype
from ..model.heads import (
    nucleotide_mask,
)
from ..vocab import IGNORE_INDEX
from .data import ColumnSpec, Example, check_task, class_names, encode_labels, load_examples, split_with_files
from .heads import (
    OneHotConvEncoder,
    _encode,
    _pad_ids,
    build_head,
    encoder_features,
    encoder_hidden,
    encoder_width,
    encoder_window,
    feature_kind,
    head_on_features,
    is_token_task,
)
from .metrics import better, classification_metrics, default_monitor, regression_metrics
from .model_dir import save_model_dir

METRICS_FILE = "metrics.jsonl"


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run (saved into ``task.json``)."""

    task: str
    output_dir: str
    encoder: str = "genesis"
    mode: str = "frozen"
    base_model: str = ""
    pooling: str = "mean"
    head_hidden: int | None = None
    head_conv_layers: int = 0
    dropout: float = 0.1
    epochs: int = 30
    patience: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float = 5e-5
    weight_decay: float = 0.01
    monitor: str | None = None
    crop: int | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    tokens_per_batch: int = 8192
    onehot_width: int = 128
    onehot_layers: int = 3
    onehot_kernel: int = 9
    progress: bool = False


@dataclass
class TaskTargets:
    """Targets as arrays: class ids (``[N]`` / ``[L]`` per item) or floats (``[N, k]`` / ``[L, k]``)."""

    values: list[Any]
    names: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)


def _prepare_targets(split: dict[str, list[Example]], task: str, spec: ColumnSpec, labels: Sequence[str] | None,
                     path) -> dict[str, TaskTargets]:
    """Encode labels with the training set's vocabulary; standardise regression targets with train statistics."""
    out = {}
    if task in ("classification", "token-classification"):
        names = class_names(split["train"], task, labels)
        if len(names) < 2:
            raise InputError(f"classification needs at least 2 labels in the training data, found {names}", path=path)
        for s, exs in split.items():
            out[s] = TaskTargets(encode_labels(exs, task, names, path), names)
        return out
    flat = np.concatenate([np.asarray(e.target, np.float64).reshape(-1, len(spec.label_columns))
                           for e in split["train"]])
    with np.errstate(all="ignore"):
        mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    if np.isnan(mean).any():
        raise InputError("a target column has no value in the training data", path=path)
    std = np.where(std > 0, std, 1.0)
    for s, exs in split.items():
        out[s] = TaskTargets([np.asarray(e.target, np.float32) for e in exs], list(spec.label_columns),
                             mean.tolist(), std.tolist())
    return out


class Batches:
    """Shuffled mini-batches of indices, bucketed by length so full fine-tuning pads little."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.rng = list(lengths), batch_size, np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.lengths))
        group = self.batch_size * 50
        batches = []
        for g in range(0, len(order), group):
            chunk = sorted(order[g: g + group], key=lambda i: self.lengths[i])
            batches += [chunk[k: k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        for b in self.rng.permutation(len(batches)):
            yield batches[b]


class Trainer:
    """Head (and encoder, in full mode) training with early stopping on a validation metric."""

    def __init__(self, cfg: FinetuneConfig, encoder: nn.Module, head: nn.Module, targets: dict[str, TaskTargets],
                 split: dict[str, list[Example]]) -> None:
        self.cfg, self.encoder, self.head, self.targets, self.split = cfg, encoder, head, targets, split
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.token = is_token_task(cfg.task)
        self.kind = feature_kind(cfg.task, cfg.pooling)
        self.classify = cfg.task in ("classification", "token-classification")
        self.train_encoder = cfg.mode == "full" or (isinstance(encoder, OneHotConvEncoder) and encoder.n_conv > 0)
        n_out = len(targets["train"].names)
        self.monitor = cfg.monitor or default_monitor(cfg.task, n_out)
        self.mean = torch.tensor(targets["train"].mean or [0.0], dtype=torch.float32, device=self.device)
        self.std = torch.tensor(targets["train"].std or [1.0], dtype=torch.float32, device=self.device)
        self.cache: dict[str, list[np.ndarray]] = {}
        self.feature_norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_feature_norm(self) -> None:
        """Frozen mode: standardise cached features with train statistics (as a linear probe's scaler does).

        Frozen final-layer means vary little between sequences after the last LayerNorm; unscaled, the head
        needs many epochs to find the differences. The statistics are saved with the head.
        """
        rows = np.concatenate([np.asarray(f, np.float32).reshape(-1, f.shape[-1]) for f in self.features("train")])
        mean, std = rows.mean(0), rows.std(0)
        std = np.where(std > 1e-6, std, 1.0)
        self.feature_norm = (torch.from_numpy(mean).to(self.device), torch.from_numpy(std).to(self.device))

    # -- features and forward --------------------------------------------------------------------------------
    def features(self, name: str) -> list[np.ndarray]:
        """Encoder outputs of a split; cached when the encoder does not train."""
        if name in self.cache:
            return self.cache[name]
        seqs = [e.sequence for e in self.split[name]]
        feats = encoder_features(self.encoder, seqs, self.kind, device=self.device, dtype=self.dtype,
                                 tokens_per_batch=self.cfg.tokens_per_batch, progress=self.cfg.progress)
        if self.kind == "per_tok":
            feats = [f.astype(np.float16) for f in feats]  # per-token caches are large; fp16 halves them
        if not self.train_encoder:
            self.cache[name] = feats
        return feats

    def _head_on_features(self, feats: Sequence[np.ndarray]) -> torch.Tensor:
        return head_on_features(self.head, feats, self.device, self.feature_norm)

    def _head_on_sequences(self, seqs: Sequence[str], starts: Sequence[int]) -> torch.Tensor:
        ids, mask = _pad_ids([_encode(s) for s in seqs], self.device)
        hidden = encoder_hidden(self.encoder, ids, mask)
        if self.token:
            width = max(len(s) for s in seqs)
            return self.head(hidden[:, 1: width + 1], nucleotide_mask(ids)[:, 1: width + 1])
        return self.head(hidden, nucleotide_mask(ids))

    def _crop(self, idx: Sequence[int]) -> tuple[list[str], list[int]]:
        limit = self.cfg.crop or encoder_window(self.encoder) or 1024
        seqs, starts = [], []
        for i in idx:
            s = self.split["train"][i].sequence
            start = int(self.rng.integers(0, len(s) - limit + 1)) if len(s) > limit else 0
            seqs.append(s[start: start + limit])
            starts.append(start)
        return seqs, starts

    def _target_batch(self, name: str, idx: Sequence[int], starts: Sequence[int], lengths: Sequence[int]
                      ) -> torch.Tensor:
        vals = [self.targets[name].values[i] for i in idx]
        if not self.token:
            return torch.as_tensor(np.asarray(vals), device=self.device)
        width = max(lengths)
        fill = IGNORE_INDEX if self.classify else math.nan
        shape = (len(vals), width) if self.classify else (len(vals), width, vals[0].shape[-1])
        out = np.full(shape, fill, dtype=np.int64 if self.classify else np.float32)
        for k, (v, s, n) in enumerate(zip(vals, starts, lengths, strict=True)):
            out[k, :n] = v[s: s + n]
        return torch.as_tensor(out, device=self.device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.classify:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
        z = (y - self.mean) / self.std
        ok = ~torch.isnan(z)
        if not ok.any():
            return out.sum() * 0.0
        return F.mse_loss(out[ok], z[ok])

    # -- evaluation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, name: str) -> list[np.ndarray]:
        """Per item: class probabilities (``[C]`` / ``[L, C]``) or targets in their own units (``[k]`` / ``[L, k]``)."""
        self.head.eval()
        feats = self.features(name)
        preds: list[np.ndarray] = []
        for b in range(0, len(feats), 256):
            out = self._head_on_features(feats[b: b + 256]).float()
            out = out.softmax(-1) if self.classify else out * self.std + self.mean
            for k, f in enumerate(feats[b: b + 256]):
                preds.append(out[k, : len(f)].cpu().numpy() if self.token else out[k].cpu().numpy())
        return preds

    def evaluate(self, name: str) -> dict[str, float]:
        return task_metrics(self.cfg.task, self.predict(name), self.targets[name])

    # -- training --------------------------------------------------------------------------------------------
    def _optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": [p for p in self.head.parameters()], "lr": self.cfg.lr}]
        if self.train_encoder:
            lr = self.cfg.lr if isinstance(self.encoder, OneHotConvEncoder) else self.cfg.encoder_lr
            groups.append({"params": [p for p in self.encoder.parameters() if p.requires_grad], "lr": lr})
        return torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay)

    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"head.{k}": v.detach().clone() for k, v in self.head.state_dict().items()}
        if self.train_encoder:
            state.update({f"encoder.{k}": v.detach().clone() for k, v in self.encoder.state_dict().items()})
        return state

    def _restore(self, state: dict[str, torch.Tensor]) -> None:
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        if self.train_encoder:
            self.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})

    def _epoch(self, optimizer, scheduler, batches: Batches) -> float:
        self.head.train()
        self.encoder.train(self.train_encoder)
        feats = None if self.train_encoder else self.features("train")
        total, n = 0.0, 0
        for idx in batches:
            if feats is None:
                seqs, starts = self._crop(idx)
                with autocast_context(self.device, self.dtype):
                    out = self._head_on_sequences(seqs, starts)
                lengths = [len(s) for s in seqs]
            else:
                out = self._head_on_features([feats[i] for i in idx])
                starts, lengths = [0] * len(idx), [len(feats[i]) for i in idx]
            loss = self.loss(out, self._target_batch("train", idx, starts, lengths))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        return total / max(1, n)

    def fit(self, log: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Train up to ``epochs``; stop after ``patience`` epochs without a better validation ``monitor``."""
        from ..training.loop import lr_lambda

        cfg = self.cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.head.to(self.device)
        self.encoder.to(self.device)
        self.encoder.requires_grad_(self.train_encoder)
        if not self.train_encoder:
            self.set_feature_norm()
        lengths = [len(e.sequence) for e in self.split["train"]]
        batches = Batches(lengths, cfg.batch_size, cfg.seed)
        optimizer = self._optimizer()
        total = cfg.epochs * len(batches)
        warmup = min(len(batches), total // 10)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_lambda(s, warmup, total, 0.1))
        best, best_epoch, best_state, since = math.nan, 0, self._state(), 0
        has_valid = bool(self.split["valid"])
        t0 = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            train_loss = self._epoch(optimizer, scheduler, batches)
            record = {"epoch": epoch, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0]}
            if has_valid:
                val = self.evaluate("valid")
                record.update({f"valid_{k}": v for k, v in val.items()})
                if better(self.monitor, val[self.monitor], best):
                    best, best_epoch, best_state, since = val[self.monitor], epoch, self._state(), 0
                else:
                    since += 1
            else:
                best_epoch, best_state = epoch, self._state()
            record["seconds"] = time.perf_counter() - t0
            log(record)
            if has_valid and since >= cfg.patience:
                break
        self._restore(best_state)
        return {"best_epoch": best_epoch, f"best_valid_{self.monitor}": best, "epochs_run": epoch,
                "train_seconds": time.perf_counter() - t0}


def task_metrics(task: str, preds: list[np.ndarray], targets: TaskTargets) -> dict[str, float]:
    """Metrics of predictions against a split's targets (token tasks: over all scored positions)."""
    if task == "classification":
        return classification_metrics(np.asarray(targets.values), np.stack(preds))
    if task == "regression":
        return regression_metrics(np.stack(targets.values), np.stack(preds), targets.names)
    if task == "token-classification":
        y = np.concatenate(targets.values)
        p = np.concatenate(preds)
        ok = y != IGNORE_INDEX
        return classification_metrics(y[ok], p[ok])
    return regression_metrics(np.concatenate(targets.values), np.concatenate(preds), targets.names)


# =============================================================================================== model dir
def build_encoder(cfg: FinetuneConfig, model: str | None, random_init: str | None) -> tuple[nn.Module, str]:
    """The encoder to fine-tune and a name for it (a shipped name, a directory, ``random small (seed 0)``)."""
    if cfg.encoder == "onehot":
        torch.manual_seed(cfg.seed)
        enc = OneHotConvEncoder(width=cfg.onehot_width, layers=cfg.onehot_layers, kernel=cfg.onehot_kernel,
                                dropout=cfg.dropout)
        return enc, f"one-hot CNN ({cfg.onehot_layers} conv layers)"
    from .. import pretrained

    if random_init:
        if model:
            raise GenesisRNAError("give either --model or --random-init, not both")
        return pretrained.random_model(random_init, seed=cfg.seed)[0], f"random {random_init} (seed {cfg.seed})"
    name = model or pretrained.DEFAULT_MODEL
    return pretrained.load(name)[0], os.fspath(name)


def load_task_data(train_path: str, task: str, spec: ColumnSpec, *, valid_path: str | None = None,
                   test_path: str | None = None, valid_values=None, test_values=None, valid_fraction: float = 0.1,
                   test_fraction: float = 0.0, split_seed: int = 0) -> dict[str, list[Example]]:
    """Examples per split: from separate files, a split column, or a seeded random split of the rest."""
    check_task(task)
    split = split_with_files(load_examples(train_path, task, spec), lambda p, s: load_examples(p, task, s), spec,
                             train_path, valid_path=valid_path, test_path=test_path, valid_values=valid_values,
                             test_values=test_values, valid_fraction=valid_fraction, test_fraction=test_fraction,
                             split_seed=split_seed)
    if not split["train"]:
        raise InputError("the training split is empty", path=train_path)
    return split


def finetune(cfg: FinetuneConfig, split: dict[str, list[Example]], spec: ColumnSpec, encoder: nn.Module, *,
             labels: Sequence[str] | None = None, base_name: str = "", data_path=None,
             features: dict[str, list[np.ndarray]] | None = None) -> dict[str, Any]:
    """Train, pick the best epoch on validation, evaluate on test, and write the model directory.

    ``features`` (frozen mode only) are precomputed encoder outputs per split, in the order of ``split`` (what
    :func:`encoder_features` returns), so a benchmark that already embedded the data does not embed it again.
    """
    check_task(cfg.task)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.output_dir)
    targets = _prepare_targets(split, cfg.task, spec, labels, data_path)
    names = targets["train"].names
    head = build_head(cfg.task, encoder_width(encoder), len(names), pooling=cfg.pooling, hidden=cfg.head_hidden,
                      dropout=cfg.dropout, context_layers=cfg.head_conv_layers)
    trainer = Trainer(cfg, encoder, head, targets, split)
    if features and not trainer.train_encoder:
        trainer.cache.update({k: list(v) for k, v in features.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / METRICS_FILE
    metrics_path.unlink(missing_ok=True)

    def log(record: dict[str, Any]) -> None:
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")

    log({"kind": "start", "task": cfg.task, "n_train": len(split["train"]), "n_valid": len(split["valid"]),
         "n_test": len(split["test"]), "base_model": base_name, "mode": cfg.mode, "encoder": cfg.encoder,
         "monitor": trainer.monitor, "device": str(trainer.device), "dtype": str(trainer.dtype)})
    t0 = time.process_time()
    fit = trainer.fit(lambda r: log({"kind": "epoch", **r}))
    results: dict[str, Any] = {**fit, "monitor": trainer.monitor}
    for name in ("valid", "test"):
        if split[name]:
            results[name] = trainer.evaluate(name)
    results["cpu_seconds"] = time.process_time() - t0
    log({"kind": "final", **results})
    info = {"format": "genesis-rna-finetune", "version": 1, "task": cfg.task, "outputs": names,
            "label_columns": list(spec.label_columns), "sequence_column": spec.sequence_column,
            "id_column": spec.id_column, "scored_length_column": spec.scored_length_column,
            "label_regex": spec.label_regex, "target_mean": targets["train"].mean,
            "target_std": targets["train"].std, "encoder": cfg.encoder, "base_model": base_name,
            "mode": cfg.mode, "pooling": cfg.pooling, "head_hidden": cfg.head_hidden,
            "head_conv_layers": cfg.head_conv_layers, "dropout": cfg.dropout,
            "config": asdict(cfg), "results": results}
    info["feature_norm"] = trainer.feature_norm is not None
    save_model_dir(out_dir, encoder.cpu(), head.cpu(), info, trainer.feature_norm)
    plot_curves(out_dir, trainer.monitor)
    return results


def plot_curves(out_dir: Path, monitor: str) -> Path | None:
    """``training_curves.png``: train loss and validation loss / monitored metric per epoch."""
    rows = [json.loads(x) for x in (out_dir / METRICS_FILE).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r.get("kind") == "epoch"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [r["epoch"] for r in rows]
    axes[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="train loss")
    if "valid_loss" in rows[0]:
        axes[0].plot(epochs, [r["valid_loss"] for r in rows], "o-", label="valid loss (cross-entropy)")
    axes[0].set_xlabel("epoch"), axes[0].set_title("loss"), axes[0].legend(fontsize=8)
    key = f"valid_{monitor}"
    if key in rows[0]:
        axes[1].plot(epochs, [r[key] for r in rows], "o-", color="C2")
        axes[1].set_title(f"validation {monitor}")
    else:
        axes[1].text(0.5, 0.5, "no validation split", ha="center", va="center", transform=axes[1].transAxes)
    axes[1].set_xlabel("epoch")
    fig.tight_layout()
    target = out_dir / "training_curves.png"
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return target

