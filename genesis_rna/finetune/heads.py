"""The encoders a task head sits on (genesis-rna or a one-hot CNN baseline), the heads per task, and features
from a frozen encoder: what both training and prediction need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import InputError
from ..model.device import autocast_context
from ..model.heads import (
    ResidualConvStack,
    SequenceClassificationHead,
    SequenceRegressionHead,
    TokenClassificationHead,
    TokenRegressionHead,
)
from ..vocab import CLS_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID


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

    Genesis encoders go through :func:`~genesis_rna.model.embed.embed_sequences` (long sequences in overlapping
    windows); the CNN sees whole sequences.
    """
    from ..data.batching import token_budget_batches
    from ..model.embed import embed_sequences

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
