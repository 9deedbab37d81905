"""Fine-tuning entry point: ``python -m genesis_rna.train_finetune`` = ``genesis-rna finetune``.

One command for sequence classification / regression and per-nucleotide classification / regression, on a
genesis-rna encoder (``--model``, ``--random-init``) or on one-hot input (``--encoder onehot``: the same head
behind a small residual CNN, the "no language model" baseline). ``--task pair`` (secondary structure from
.dbn/.ct/.bpseq/Stockholm files or a structure column) trains a structure model instead: see
:mod:`genesis_rna.finetune_structure`; its directory is what ``genesis-rna fold --model DIR`` loads.

Modes. ``--mode frozen`` (default) runs the encoder once over every sequence and caches what the head reads
(the mean or [CLS] vector for sequence tasks, per-nucleotide vectors for token tasks), so each epoch only trains
the head: on a CPU this is tens to hundreds of times faster than fine-tuning. ``--mode full`` trains the encoder
too, at ``--encoder-lr`` (lower than the head's ``--lr``); sequences longer than the model window are randomly
cropped to it during training. Evaluation always uses whole sequences (windowed like ``genesis-rna embed``).

Why not :func:`genesis_rna.training.train`: that loop is built around pretraining checkpoints (it resumes by
loading a bare ``GenesisRNAModel`` and keeps the best model by validation *loss*); fine-tuning needs early
stopping on a task metric, cached features and a model directory with a head. The loop here is ~40 lines and
reuses the same schedule (:func:`~genesis_rna.training.lr_lambda`), devices and precision helpers.

Run folder = model directory (``--output-dir``)::

    config.json + model.safetensors   the encoder (a genesis-rna model directory: `embed --model` accepts it)
    head.safetensors                  the task head
    task.json                         task type, labels/targets, columns, normalisation, metrics
    metrics.jsonl                     one JSON object per epoch (train loss, validation metrics), then test
    training_curves.png               loss and the monitored metric per epoch

``genesis-rna predict OUTPUT_DIR INPUT`` loads it. Nothing is pickled.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ._fileutil import atomic_path, atomic_write
from .errors import CheckpointError, GenesisRNAError, InputError
from .finetune_data import (
    IGNORE_INDEX,
    PAIR_TASKS,
    TASKS,
    ColumnSpec,
    Example,
    check_task,
    class_names,
    encode_labels,
    load_examples,
    split_with_files,
)
from .heads import (
    POOLINGS,
    ResidualConvStack,
    SequenceClassificationHead,
    SequenceRegressionHead,
    TokenClassificationHead,
    TokenRegressionHead,
    nucleotide_mask,
)
from .inference import autocast_context, resolve_device, resolve_dtype
from .tokenization import CLS_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID

TASK_FILE = "task.json"
HEAD_FILE = "head.safetensors"
METRICS_FILE = "metrics.jsonl"
LOWER_IS_BETTER = {"loss", "rmse", "mcrmse"}

EXAMPLES = """examples:
  # nRC 13-class ncRNA classification (label = first word of the FASTA description), frozen encoder
  genesis-rna finetune ../shared/data/classification/nrc/train.fa --test ../shared/data/classification/nrc/test.fa \\
      --task classification --output-dir runs/nrc_frozen
  # RBP binding (CSV, 0/1 label, 10%% of train held out for early stopping), full fine-tune
  genesis-rna finetune rbp/PUM2/train.csv.gz --test rbp/PUM2/test.csv.gz --task classification \\
      --label-column label --mode full --output-dir runs/pum2
  # OpenVaccine: 3 per-nucleotide targets, 68 scored positions, folds 1-4 train / 0 valid
  genesis-rna finetune openvaccine/train.jsonl.gz --task token-regression \\
      --label-column reactivity deg_Mg_pH10 deg_Mg_50C --scored-length-column seq_scored \\
      --split-column fold --valid-values 0 --filter SN_filter=1 --output-dir runs/openvaccine
  # the same head on one-hot input (CNN baseline)
  genesis-rna finetune train.fa --test test.fa --task classification --encoder onehot --output-dir runs/onehot
  genesis-rna predict runs/nrc_frozen new.fa --output predictions.csv
  # secondary structure (pair task) from dot-bracket / .ct / .bpseq files or a CSV structure column
  genesis-rna finetune my_structures.dbn --task pair --test held_out.dbn --output-dir runs/my_fold
  genesis-rna fold new.fa --model runs/my_fold --output folds/
"""


# =============================================================================================== metrics
def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank, as Spearman's rho needs."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or xs[end] != xs[start]:
            ranks[order[start:end]] = 0.5 * (start + end - 1) + 1
            start = end
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_rank(np.asarray(a, np.float64)), _rank(np.asarray(b, np.float64)))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y`` or ``pred`` (sklearn's ``average='macro'``)."""
    y, pred = np.asarray(y), np.asarray(pred)
    scores = []
    for c in np.union1d(y, pred):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _rank(np.asarray(score, np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AUPRC as average precision: ``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return math.nan
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    s, t = np.asarray(score, np.float64)[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct threshold
    tp = np.cumsum(t)[last]
    precision, recall = tp / (last + 1), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mcrmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean column-wise RMSE over ``[N, k]`` arrays, NaN targets skipped (the OpenVaccine/Kaggle metric)."""
    cols = [rmse(y[~np.isnan(y[:, j]), j], pred[~np.isnan(y[:, j]), j]) for j in range(y.shape[1])
            if (~np.isnan(y[:, j])).any()]
    return float(np.mean(cols)) if cols else math.nan


def classification_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """accuracy, macro-F1, cross-entropy; AUROC and AUPRC for two classes."""
    y = np.asarray(y)
    pred = probs.argmax(axis=1)
    out = {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred),
           "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))}
    if probs.shape[1] == 2:
        out["auroc"] = auroc(y == 1, probs[:, 1])
        out["auprc"] = average_precision(y == 1, probs[:, 1])
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Per target Spearman / Pearson / RMSE (NaN targets skipped), their means, and MCRMSE."""
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        ok = ~np.isnan(y[:, j])
        out[f"{name}/spearman"] = spearman(y[ok, j], pred[ok, j])
        out[f"{name}/pearson"] = pearson(y[ok, j], pred[ok, j])
        out[f"{name}/rmse"] = rmse(y[ok, j], pred[ok, j])
    for key in ("spearman", "pearson", "rmse"):
        out[key] = float(np.nanmean([out[f"{n}/{key}"] for n in names]))
    out["mcrmse"] = mcrmse(y, pred)
    if len(names) == 1:
        out = {k: v for k, v in out.items() if "/" not in k}
    return out


def default_monitor(task: str, n_outputs: int) -> str:
    """Metric for early stopping: AUROC (binary), accuracy, macro-F1 (per token), Spearman or MCRMSE."""
    if task == "classification":
        return "auroc" if n_outputs == 2 else "accuracy"
    if task == "token-classification":
        return "macro_f1"
    if task == "regression" and n_outputs == 1:
        return "spearman"
    return "mcrmse"


def better(metric: str, new: float, old: float) -> bool:
    if math.isnan(new):
        return False
    return math.isnan(old) or (new < old if metric in LOWER_IS_BETTER else new > old)


# =============================================================================================== models
class OneHotConvEncoder(ResidualConvStack):
    """One-hot nucleotides -> ``layers`` residual 1-D convolutions (GELU, LayerNorm): ``[B, T] -> [B, T, width]``.

    The baseline without a language model: the head sees one-hot input with a local context of about
    ``layers * (kernel - 1)`` nucleotides. ``layers=0`` gives the bare one-hot vectors (``width`` = vocabulary).
    """

    def __init__(self, vocab_size: int = 9, width: int = 128, layers: int = 3, kernel: int = 9,
                 dropout: float = 0.1) -> None:
        super().__init__(vocab_size, width, layers, kernel, dropout)
        self.vocab_size = vocab_size

    def config(self) -> dict[str, Any]:
        return {"model_type": "onehot-conv", "vocab_size": self.vocab_size, "width": self.width if self.n_conv
                else 0, "layers": self.n_conv, "kernel": self.kernel}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(F.one_hot(input_ids, self.vocab_size).float(), input_ids != PAD_ID)


def encoder_width(encoder: nn.Module) -> int:
    return encoder.width if isinstance(encoder, OneHotConvEncoder) else encoder.config.d_model


def encoder_window(encoder: nn.Module) -> int | None:
    """Nucleotides per forward pass (``None``: no limit, the CNN is local)."""
    return None if isinstance(encoder, OneHotConvEncoder) else encoder.config.max_len - 2


def encoder_hidden(encoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T, d]`` final hidden states over the full token axis (``[CLS]`` and ``[SEP]`` included)."""
    if isinstance(encoder, OneHotConvEncoder):
        return encoder(ids, mask)
    return encoder(ids, attention_mask=mask, return_logits=False)["last_hidden_state"]


def build_head(task: str, d_model: int, n_outputs: int, *, pooling: str, hidden: int | None,
               dropout: float, context_layers: int = 0) -> nn.Module:
    if context_layers and not is_token_task(task):
        raise InputError("--head-conv-layers is for per-nucleotide tasks; sequence tasks take --pooling conv")
    if task == "classification":
        return SequenceClassificationHead(d_model, n_outputs, pooling=pooling, hidden_dim=hidden, dropout=dropout)
    if task == "regression":
        return SequenceRegressionHead(d_model, n_outputs, pooling=pooling, hidden_dim=hidden, dropout=dropout)
    if task == "token-classification":
        return TokenClassificationHead(d_model, n_outputs, hidden_dim=hidden, dropout=dropout,
                                       context_layers=context_layers)
    return TokenRegressionHead(d_model, n_outputs, hidden_dim=hidden, dropout=dropout, context_layers=context_layers)


def is_token_task(task: str) -> bool:
    return task.startswith("token-")


def feature_kind(task: str, pooling: str) -> str:
    """What a frozen head reads per sequence: ``per_tok`` rows (token tasks, conv pooling), ``bos`` or ``mean``."""
    if is_token_task(task) or pooling == "conv":
        return "per_tok"
    return "bos" if pooling == "cls" else "mean"


# =============================================================================================== features
def _encode(seq: str) -> list[int]:
    return [CLS_ID, *(NUCLEOTIDE_IDS[c] for c in seq), SEP_ID]


def _pad_ids(rows: Sequence[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r)
    ids = ids.to(device)
    return ids, (ids != PAD_ID).long()


@torch.inference_mode()
def encoder_features(encoder: nn.Module, sequences: Sequence[str], kind: str, *, device: torch.device,
                     dtype: torch.dtype, tokens_per_batch: int = 8192, progress: bool = False) -> list[np.ndarray]:
    """What the head reads, per sequence: ``mean`` / ``bos`` ``[d]`` or ``per_tok`` ``[L, d]`` (float32).

    Genesis encoders go through :func:`~genesis_rna.inference.embed_sequences` (long sequences in overlapping
    windows); the CNN sees whole sequences.
    """
    from .inference import embed_sequences, token_budget_batches

    was_training = encoder.training
    encoder.eval()
    out: list[np.ndarray | None] = [None] * len(sequences)
    try:
        if isinstance(encoder, OneHotConvEncoder):
            for batch in token_budget_batches([len(s) + 2 for s in sequences], tokens_per_batch):
                ids, mask = _pad_ids([_encode(sequences[i]) for i in batch], device)
                with autocast_context(device, dtype):
                    hidden = encoder(ids, mask).float()
                for k, i in enumerate(batch):
                    rows = hidden[k, 1: len(sequences[i]) + 1].cpu().numpy()
                    out[i] = rows if kind == "per_tok" else rows.mean(0) if kind == "mean" else hidden[k, 0].cpu().numpy()
        else:
            layer = encoder.config.n_layers
            dname = "bf16" if dtype == torch.bfloat16 else "fp16" if dtype == torch.float16 else "fp32"
            records = [(str(i), s) for i, s in enumerate(sequences)]
            for res in embed_sequences(encoder, records, include=(kind,), tokens_per_batch=tokens_per_batch,
                                       device=device, dtype=dname, progress=progress):
                out[int(res.id)] = getattr(res, kind)[layer]
    finally:
        encoder.train(was_training)
    return out  # type: ignore[return-value]


# =============================================================================================== the task
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
        from .training import lr_lambda

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


def head_on_features(head: nn.Module, feats: Sequence[np.ndarray], device: torch.device,
                     norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The head on cached features: ``[d]`` vectors as one-row sequences, ``[L, d]`` rows zero-padded.

    Padded rows become nonzero after ``norm``, so every head gets the ``[B, T]`` mask of the real rows (pooled
    heads pool over it, context convolutions zero the rest; token heads' targets there are ignored anyway).
    """
    if np.ndim(feats[0]) == 2:
        width = max(len(f) for f in feats)
        x = torch.zeros(len(feats), width, feats[0].shape[-1], device=device)
        mask = torch.zeros(len(feats), width, dtype=torch.bool, device=device)
        for k, f in enumerate(feats):
            x[k, : len(f)] = torch.from_numpy(np.asarray(f, np.float32)).to(device)
            mask[k, : len(f)] = True
    else:
        x = torch.from_numpy(np.stack(feats).astype(np.float32)).to(device).unsqueeze(1)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
    if norm is not None:
        x = (x - norm[0]) / norm[1]
    return head(x, mask)


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
        from .structure_model import is_structure_model_dir

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
        from .model import GenesisRNAModel

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
def build_encoder(cfg: FinetuneConfig, model: str | None, random_init: str | None) -> tuple[nn.Module, str]:
    """The encoder to fine-tune and a name for it (a shipped name, a directory, ``random small (seed 0)``)."""
    if cfg.encoder == "onehot":
        torch.manual_seed(cfg.seed)
        enc = OneHotConvEncoder(width=cfg.onehot_width, layers=cfg.onehot_layers, kernel=cfg.onehot_kernel,
                                dropout=cfg.dropout)
        return enc, f"one-hot CNN ({cfg.onehot_layers} conv layers)"
    from . import pretrained

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


# =============================================================================================== CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``genesis-rna finetune`` (also ``python -m genesis_rna.train_finetune``)."""
    p.add_argument("train", nargs="+",
                   help="training data: FASTA (.fa), CSV, TSV or JSONL (.gz accepted); --task pair: also .dbn/.db, "
                        ".ct, .bpseq, Stockholm (.sto) files or directories of them (several allowed)")
    p.add_argument("--task", required=True, choices=TASKS + ("pair",),
                   help="classification | regression | token-classification | token-regression | pair "
                        "(secondary structure: trains a structure model for `genesis-rna fold`)")
    p.add_argument("--output-dir", "-o", required=True,
                   help="run folder = model directory for `genesis-rna predict` (--task pair: for "
                        "`genesis-rna fold --model`)")
    d = p.add_argument_group("data and columns")
    d.add_argument("--valid", default=None,
                   help="validation file (default: a random --valid-fraction of train; --task pair: also a directory)")
    d.add_argument("--test", default=None,
                   help="test file (evaluated once, with the best epoch; --task pair: also a directory)")
    d.add_argument("--sequence-column", default="sequence", help="column with the sequence (default sequence)")
    d.add_argument("--id-column", default="id", help="column with record ids (default id)")
    d.add_argument("--label-column", "--label-columns", dest="label_columns", nargs="+", default=["label"],
                   help="target column(s); several for multi-output regression (default label; FASTA: the "
                        "header label; --task pair: the dot-bracket or base_pairs column, default structure, "
                        "else base_pairs)")
    d.add_argument("--label-regex", default=None,
                   help="FASTA: regex on the description whose group 1 (or group 'label') is the label "
                        "(default: label=X if present, else the first word)")
    d.add_argument("--labels", nargs="+", default=None, help="class names in output order (default: sorted)")
    d.add_argument("--scored-length-column", default=None,
                   help="per-nucleotide tasks: column giving how many leading positions are scored")
    d.add_argument("--split-column", default=None, help="column assigning rows to train/valid/test (or folds)")
    d.add_argument("--valid-values", default=None, help="split-column values meaning valid, comma-separated")
    d.add_argument("--test-values", default=None, help="split-column values meaning test, comma-separated")
    d.add_argument("--valid-fraction", type=float, default=0.1, help="random validation share (default 0.1)")
    d.add_argument("--test-fraction", type=float, default=0.0, help="random test share without --test (default 0)")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the random split (default 0)")
    d.add_argument("--filter", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep only rows where COLUMN equals VALUE (repeatable), e.g. SN_filter=1")
    m = p.add_argument_group("model")
    m.add_argument("--encoder", default="genesis", metavar="{genesis,onehot}",
                   help="genesis-rna encoder (default) or one-hot input through a small CNN (baseline); --task "
                        "pair: also none (= onehot: one-hot pair features) or an encoder NAME|DIR")
    m.add_argument("--mode", choices=("frozen", "full"), default="frozen",
                   help="frozen: cache encoder outputs, train the head only; full: train the encoder too")
    m.add_argument("--model", default=None, help="model directory or shipped name (default genesis-rna-small)")
    m.add_argument("--random-init", metavar="PRESET", choices=("small", "base", "large"), default=None,
                   help="a randomly initialised encoder of this preset (baseline)")
    m.add_argument("--pooling", choices=POOLINGS, default="mean",
                   help="sequence tasks (default mean; conv: a 1-D convolution over the per-nucleotide rows with "
                        "max+mean pooling, for motif-driven labels such as protein binding)")
    m.add_argument("--head-hidden", type=int, default=None,
                   help="head hidden width (default d_model; 0 = linear probe)")
    m.add_argument("--head-conv-layers", type=int, default=0,
                   help="per-nucleotide tasks: residual conv layers (width 128, kernel 9) over the rows before the "
                        "head, so each position reads its neighbours (default 0)")
    m.add_argument("--dropout", type=float, default=0.1)
    m.add_argument("--onehot-width", type=int, default=128)
    m.add_argument("--onehot-layers", type=int, default=3, help="conv layers of --encoder onehot (0 = bare one-hot)")
    m.add_argument("--onehot-kernel", type=int, default=9)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--patience", type=int, default=5, help="epochs without a better validation metric before stopping")
    t.add_argument("--monitor", default=None,
                   help="validation metric for early stopping (default: auroc for 2 classes, accuracy, macro_f1 "
                        "per token, spearman for one target, mcrmse for several)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="head learning rate (default 1e-3; --task pair 3e-3)")
    t.add_argument("--encoder-lr", type=float, default=5e-5, help="encoder learning rate in --mode full (5e-5)")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--crop", type=int, default=None,
                   help="--mode full: random training crop (default: model window); --task pair: training crop "
                        "for every mode (default 160)")
    t.add_argument("--toks-per-batch", type=int, default=8192, help="token budget when computing features")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s = p.add_argument_group("pair (secondary-structure) task")
    s.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps (one structure each) per epoch (default: one pass over the training set)")
    s.add_argument("--no-vienna", dest="vienna", action="store_false",
                   help="no ViennaRNA prior channels (then folding never needs ViennaRNA)")
    s.add_argument("--channels", type=int, default=16, help="width of the 2D ResNet over pair features (default 16)")


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.task in PAIR_TASKS:
        from . import finetune_structure

        return finetune_structure.run_from_args(args)
    check_task(args.task)
    if not isinstance(args.train, str):
        if len(args.train) != 1:
            raise InputError(f"--task {args.task} takes one training file, got {len(args.train)} (only --task pair "
                             "reads several)")
        args.train = args.train[0]
    if args.encoder not in ("genesis", "onehot"):
        raise InputError(f"--encoder {args.encoder!r}: choose genesis or onehot (an encoder directory or name goes "
                         "to --model)")
    for name in ("epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    spec = ColumnSpec(sequence_column=args.sequence_column, id_column=args.id_column,
                      label_columns=list(args.label_columns), scored_length_column=args.scored_length_column,
                      split_column=args.split_column, label_regex=args.label_regex, filters=list(args.filter))
    split = load_task_data(args.train, args.task, spec, valid_path=args.valid, test_path=args.test,
                           valid_values=args.valid_values, test_values=args.test_values,
                           valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
                           split_seed=args.split_seed)
    cfg = FinetuneConfig(task=args.task, output_dir=args.output_dir, encoder=args.encoder, mode=args.mode,
                         pooling=args.pooling, head_hidden=args.head_hidden, dropout=args.dropout,
                         head_conv_layers=args.head_conv_layers,
                         epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                         lr=1e-3 if args.lr is None else args.lr,
                         encoder_lr=args.encoder_lr, weight_decay=args.weight_decay, monitor=args.monitor,
                         crop=args.crop, seed=args.seed, device=args.device, dtype=args.dtype,
                         tokens_per_batch=args.toks_per_batch, onehot_width=args.onehot_width,
                         onehot_layers=args.onehot_layers, onehot_kernel=args.onehot_kernel,
                         progress=not args.quiet and sys.stderr.isatty())
    encoder, name = build_encoder(cfg, args.model, args.random_init)
    cfg.base_model = name
    results = finetune(cfg, split, spec, encoder, labels=args.labels, base_name=name, data_path=args.train)
    results["n"] = {k: len(v) for k, v in split.items()}
    return results


def summary(results: dict[str, Any], output_dir: str) -> str:
    """One line: sizes, best epoch, the monitored metric on valid and on test."""
    if results.get("task") in PAIR_TASKS:
        from . import finetune_structure

        return finetune_structure.summary(results, output_dir)
    mon = results["monitor"]
    parts = [f"fine-tuned on {results['n']['train']} sequences ({results['epochs_run']} epochs, best "
             f"{results['best_epoch']})"]
    for name in ("valid", "test"):
        if name in results:
            extra = "" if mon == "accuracy" or "accuracy" not in results[name] else \
                f", accuracy {results[name]['accuracy']:.4f}"
            parts.append(f"{name} {mon} {results[name][mon]:.4f}{extra}")
    return "; ".join(parts) + f" -> {output_dir}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis_rna.train_finetune", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Fine-tune genesis-rna (or a one-hot baseline) on a task.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(summary(run_from_args(args), args.output_dir))
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
