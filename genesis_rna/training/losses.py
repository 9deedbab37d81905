"""Pretraining losses and validation metrics: masked nucleotides, structure context and base pairing.

All three losses follow one pattern: compute an element-wise loss that is exactly 0 where the label is the ignore
index (-100), then reduce it. The reductions are

- ``"mean"``: over every target in the batch (token-weighted, as ``torch.nn.functional.cross_entropy``);
- ``"sum"``: sum over every target;
- ``"none"``: the element-wise losses in the label's shape, 0 at ignored entries;
- ``"per_sample"``: a ``[B]`` tensor, each sample's mean over its own targets (0 for a sample without targets).
  This is what Adaptive Sparse Training scores samples with: a long sequence must not look more important
  just because it has more masked tokens.

Every loss accepts ``return_counts=True`` and then returns ``(loss, n_targets)`` where ``n_targets`` is a
``[B]`` long tensor of targets per sample, whatever the reduction; sum it for the batch total.

A batch in which every label is ignored gives a loss of 0 (not NaN) that is still attached to the logits, so
``backward()`` works and DDP sees every parameter used. Losses are computed in float32 even when the logits are
bf16/fp16, because log-softmax over a handful of classes loses most of its precision in half precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..vocab import IGNORE_INDEX

#: Hairpin loops need at least 3 unpaired bases (ViennaRNA's TURN), so i and j with j - i <= 3 never pair.
DEFAULT_MIN_LOOP = 3

Reduction = Literal["mean", "sum", "none", "per_sample"]
_REDUCTIONS = ("mean", "sum", "none", "per_sample")


# ----------------------------------------------------------------------------------------------------- helpers


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise InputError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")


def _check_shape(name: str, labels: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(labels.shape) != tuple(expected):
        raise InputError(f"{name}: labels have shape {tuple(labels.shape)}, expected {tuple(expected)}")


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` that gives ``num`` (which is then 0) where ``den`` is 0, instead of NaN."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _reduce(
    elementwise: Tensor,
    denominator: Tensor,
    valid: Tensor,
    reduction: str,
    return_counts: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    """Reduce an element-wise loss (0 where ignored) whose first dimension is the sample.

    ``denominator`` is what a mean divides by, per element: 1 for a target (or its class weight), 0 when ignored.
    """
    if reduction == "none":
        out = elementwise
    elif reduction == "sum":
        out = elementwise.sum()
    elif reduction == "mean":
        out = _safe_div(elementwise.sum(), denominator.sum())
    else:
        out = _safe_div(elementwise.flatten(1).sum(1), denominator.flatten(1).sum(1))
    if return_counts:
        return out, valid.flatten(1).sum(1)
    return out


# ------------------------------------------------------------------------------------------- element-wise terms


def _token_ce_terms(
    name: str, logits: Tensor, labels: Tensor, class_weight: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy per token ``[B, T]`` (0 where ignored), its mean denominators and the target mask."""
    if logits.dim() != 3:
        raise InputError(f"{name}: logits must be [B, T, C], got shape {tuple(logits.shape)}")
    batch, length, classes = logits.shape
    _check_shape(name, labels, (batch, length))
    weight = None if class_weight is None else class_weight.to(device=logits.device, dtype=torch.float32)
    flat = F.cross_entropy(
        logits.reshape(-1, classes).float(), labels.reshape(-1).long(),
        weight=weight, ignore_index=IGNORE_INDEX, reduction="none",
    )
    valid = labels != IGNORE_INDEX
    if weight is None:
        denominator = valid.to(flat.dtype)
    else:  # torch's weighted mean divides by the summed weights of the targets; match it
        denominator = weight[labels.clamp_min(0).long()] * valid
    return flat.view(batch, length), denominator, valid


@lru_cache(maxsize=32)
def _upper_triangle(length: int, offset: int, device: torch.device) -> Tensor:
    """Flat indices ``i * T + j`` of the entries with ``j - i >= offset``, cached per length and device."""
    rows, cols = torch.triu_indices(length, length, offset=offset, device=device)
    return rows * length + cols


def _pair_terms(
    pair_logits: Tensor, pair_matrix: Tensor, pos_weight: float | Tensor | None, min_loop: int
) -> tuple[Tensor, Tensor, Tensor]:
    """BCE on the upper triangle ``j - i > min_loop``: ``[B, P]`` losses, their mean denominators, target mask.

    Only the ``P ~ T^2 / 2`` upper-triangle entries are gathered (one ``[B, P]`` copy of the logits and of the
    targets); the full ``[B, T, T]`` matrix is never duplicated, which matters at T = 1024.
    """
    if pair_logits.dim() != 3 or pair_logits.shape[1] != pair_logits.shape[2]:
        raise InputError(f"pair_loss: pair_logits must be [B, T, T], got shape {tuple(pair_logits.shape)}")
    _check_shape("pair_loss", pair_matrix, tuple(pair_logits.shape))
    if min_loop < 0:
        raise InputError(f"pair_loss: min_loop must be >= 0, got {min_loop}")
    batch, length, _ = pair_logits.shape
    flat_index = _upper_triangle(length, min_loop + 1, pair_logits.device)
    logits = pair_logits.reshape(batch, -1).index_select(1, flat_index).float()
    targets = pair_matrix.reshape(batch, -1).index_select(1, flat_index).float()
    valid = targets != IGNORE_INDEX
    weight = None
    if pos_weight is not None:
        weight = torch.as_tensor(pos_weight, dtype=torch.float32, device=logits.device)
    elementwise = F.binary_cross_entropy_with_logits(
        logits, torch.where(valid, targets, torch.zeros_like(targets)), pos_weight=weight, reduction="none"
    )
    elementwise = torch.where(valid, elementwise, torch.zeros_like(elementwise))
    return elementwise, valid.to(elementwise.dtype), valid


# ------------------------------------------------------------------------------------------------ public losses


def mlm_loss(
    logits: Tensor, labels: Tensor, reduction: Reduction = "mean", *, return_counts: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Masked-nucleotide cross-entropy over positions whose label is not -100.

    ``logits`` ``[B, T, V]``, ``labels`` ``[B, T]``. Returns a scalar (``mean``/``sum``), ``[B, T]`` (``none``)
    or ``[B]`` (``per_sample``); with ``return_counts=True`` a tuple ``(loss, n_targets[B])``.
    """
    _check_reduction(reduction)
    elementwise, denominator, valid = _token_ce_terms("mlm_loss", logits, labels)
    return _reduce(elementwise, denominator, valid, reduction, return_counts)


def structure_loss(
    logits: Tensor,
    labels: Tensor,
    reduction: Reduction = "mean",
    *,
    class_weight: Tensor | None = None,
    return_counts: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Per-token structure-context cross-entropy (NONE/STEM/LOOP/BULGE/HAIRPIN), ignoring -100.

    ``class_weight`` ``[C]`` re-weights classes exactly as ``F.cross_entropy(weight=...)`` does: the means divide
    by the summed weights of the targets, not by their number. Shapes and return values as :func:`mlm_loss`.
    """
    _check_reduction(reduction)
    elementwise, denominator, valid = _token_ce_terms("structure_loss", logits, labels, class_weight)
    return _reduce(elementwise, denominator, valid, reduction, return_counts)


def pair_loss(
    pair_logits: Tensor,
    pair_matrix: Tensor,
    reduction: Reduction = "mean",
    *,
    pos_weight: float | Tensor | None = None,
    min_loop: int = DEFAULT_MIN_LOOP,
    return_counts: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Binary cross-entropy with logits on base pairs, over valid upper-triangle entries.

    Only entries with ``j - i > min_loop`` count: the logits are symmetric, so the lower triangle would count
    every pair twice, and positions closer than a minimal hairpin (3 unpaired bases) cannot pair, so they
    would only add trivially easy negatives. Entries where ``pair_matrix == -100`` (padding, specials,
    sequences without structure) are ignored; other targets may be 0/1 or soft probabilities in [0, 1].

    ``pos_weight`` multiplies the loss of positive entries (``torch``'s semantics). The default is ``None``
    (unweighted) on purpose: pairs are ~1/L of the entries, and the balancing weight (~L) would make the loss
    scale depend on sequence length and push the head's probabilities far above the true pairing frequency,
    while an unweighted head stays calibrated (its sigmoid is a pairing probability, comparable to ViennaRNA's
    base-pair probabilities) and ranking metrics (top-L precision, thresholds tuned on validation) are unaffected.
    Pass e.g. ``pos_weight=30.0`` when a thresholded F1 at 0.5 matters more than calibration.

    ``reduction="none"`` returns ``[B, T, T]`` with the losses on the counted entries and 0 elsewhere (it
    allocates a full matrix, so use it for inspection, not training). ``per_sample`` means are over each
    sample's counted entries.
    """
    _check_reduction(reduction)
    elementwise, denominator, valid = _pair_terms(pair_logits, pair_matrix, pos_weight, min_loop)
    if reduction == "none":
        batch, length, _ = pair_logits.shape
        flat_index = _upper_triangle(length, min_loop + 1, pair_logits.device)
        full = elementwise.new_zeros(batch, length * length).index_copy(1, flat_index, elementwise)
        out = full.view(batch, length, length)
        return (out, valid.sum(1)) if return_counts else out
    return _reduce(elementwise, denominator, valid, reduction, return_counts)


# ---------------------------------------------------------------------------------------------- multi-task loss


@dataclass
class LossOutput:
    """What :class:`MultiTaskLoss` returns.

    ``total`` is the scalar to call ``backward()`` on. ``mlm``, ``structure`` and ``pair`` are the unweighted
    batch means, detached for logging, or ``None`` when the task was skipped (head or labels missing, weight 0).
    ``per_sample`` ``[B]`` (only when asked) is the weighted sum of the per-sample means: the score Adaptive
    Sparse Training selects with. It keeps its graph so that per-sample re-weighting (InfoBatch-style) can
    back-propagate through it; under ``torch.no_grad()`` it has none.
    """

    total: Tensor
    mlm: Tensor | None = None
    structure: Tensor | None = None
    pair: Tensor | None = None
    per_sample: Tensor | None = None

    def to_dict(self) -> dict[str, float]:
        """Python floats for ``metrics.jsonl``: ``loss`` and ``<task>_loss`` for the tasks that ran."""
        out = {"loss": float(self.total.detach())}
        for name in ("mlm", "structure", "pair"):
            value = getattr(self, name)
            if value is not None:
                out[f"{name}_loss"] = float(value)
        return out


class MultiTaskLoss(nn.Module):
    """Weighted sum of the masked-nucleotide, structure-context and pairing losses.

    A task runs when its weight is positive, the model returned its logits and the batch holds its labels
    (``mlm_logits``/``mlm_labels``, ``struct_logits``/``struct_labels``, ``pair_logits``/``pair_matrix``), so one
    loss object serves sequence-only data and data with structure. ``total`` is ``sum(weight * batch mean)``
    where each batch mean is over targets (token-weighted); ``per_sample`` is ``sum(weight * sample mean)``.
    The two differ on purpose: training follows the usual token-weighted objective, while selection compares
    samples on an equal footing regardless of length.
    """

    def __init__(
        self,
        mlm_weight: float = 1.0,
        structure_weight: float = 0.5,
        pair_weight: float = 0.5,
        *,
        structure_class_weight: Tensor | None = None,
        pair_pos_weight: float | None = None,
        pair_min_loop: int = DEFAULT_MIN_LOOP,
    ) -> None:
        super().__init__()
        for name, value in (("mlm_weight", mlm_weight), ("structure_weight", structure_weight),
                            ("pair_weight", pair_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"MultiTaskLoss: {name} must be a finite number >= 0, got {value!r}")
        self.mlm_weight = float(mlm_weight)
        self.structure_weight = float(structure_weight)
        self.pair_weight = float(pair_weight)
        self.pair_pos_weight = pair_pos_weight
        self.pair_min_loop = int(pair_min_loop)
        # A buffer so that .to(device) moves it with the model.
        self.register_buffer("structure_class_weight", structure_class_weight, persistent=False)

    @classmethod
    def from_training_config(cls, cfg: Any, **kwargs: Any) -> MultiTaskLoss:
        """The weights of a :class:`~genesis_rna.config.TrainingConfig` (``*_loss_weight``)."""
        return cls(cfg.mlm_loss_weight, cfg.structure_loss_weight, cfg.pair_loss_weight, **kwargs)

    def _terms(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]):
        """Yield ``(name, weight, elementwise, denominator)`` for each task that runs."""
        if self.mlm_weight > 0 and "mlm_logits" in outputs and "mlm_labels" in batch:
            el, den, _ = _token_ce_terms("mlm_loss", outputs["mlm_logits"], batch["mlm_labels"])
            yield "mlm", self.mlm_weight, el, den
        if self.structure_weight > 0 and "struct_logits" in outputs and "struct_labels" in batch:
            el, den, _ = _token_ce_terms("structure_loss", outputs["struct_logits"], batch["struct_labels"],
                                         self.structure_class_weight)
            yield "structure", self.structure_weight, el, den
        if self.pair_weight > 0 and "pair_logits" in outputs and "pair_matrix" in batch:
            el, den, _ = _pair_terms(outputs["pair_logits"], batch["pair_matrix"], self.pair_pos_weight,
                                     self.pair_min_loop)
            yield "pair", self.pair_weight, el, den

    def forward(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], per_sample: bool = False
    ) -> LossOutput:
        total: Tensor | None = None
        scores: Tensor | None = None
        parts: dict[str, Tensor] = {}
        for name, weight, el, den in self._terms(outputs, batch):
            mean = _safe_div(el.sum(), den.sum())
            parts[name] = mean.detach()
            total = weight * mean if total is None else total + weight * mean
            if per_sample:
                sample = weight * _safe_div(el.sum(1), den.sum(1))
                scores = sample if scores is None else scores + sample
        if total is None:
            raise InputError(
                "MultiTaskLoss: no task to compute; need a positive weight with mlm_logits+mlm_labels, "
                "struct_logits+struct_labels or pair_logits+pair_matrix "
                f"(outputs have {sorted(outputs)}, batch has {sorted(batch)})"
            )
        return LossOutput(total=total, per_sample=scores, **parts)


# ------------------------------------------------------------------------------------------------------ metrics


def _token_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    valid = labels != IGNORE_INDEX
    correct = (logits.argmax(-1) == labels) & valid
    return int(correct.sum()), int(valid.sum())


@torch.no_grad()
def mlm_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    """``(correct, total)`` masked-nucleotide predictions; counts so that batches can be summed exactly."""
    return _token_accuracy(logits, labels)


@torch.no_grad()
def structure_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    """``(correct, total)`` structure-context labels, ignoring -100."""
    return _token_accuracy(logits, labels)


def perplexity(mean_mlm_loss: float | Tensor) -> float:
    """``exp(mean MLM loss)``; pass the token-weighted mean over the whole validation set (sum / count)."""
    value = float(mean_mlm_loss)
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


__all__ = [
    "IGNORE_INDEX", "DEFAULT_MIN_LOOP", "mlm_loss", "structure_loss", "pair_loss", "LossOutput", "MultiTaskLoss",
    "mlm_accuracy", "structure_accuracy", "perplexity",
]
