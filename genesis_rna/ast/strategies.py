"""Selection strategies: how a sample's importance is scored. Adding one is a small registered class.

A strategy answers three questions for :class:`~genesis_rna.ast.selector.ASTSampleSelector`:

- ``importance(outputs, batch, loss_fn)``: a ``[B]`` score per sample, higher = more worth learning from, or
  ``None`` when the strategy needs no scores (``random``);
- ``controlled``: whether the PI controller adapts the threshold (``False`` for the random control arm, which
  selects at exactly the target rate in expectation);
- ``weights(scores, mask)``: optional loss weights for the selected rows (``None`` = plain mean), the hook
  :class:`~genesis_rna.ast.infobatch.InfoBatchSelector` also uses (it selects from remembered losses keyed by
  ``batch["indices"]`` before any forward, so it is a selector of its own rather than a scoring strategy).

Register a new one with ``@register_strategy`` and it becomes available to ``make_selector(name)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError, InputError
from ..vocab import CLS_ID, IGNORE_INDEX, PAD_ID, SEP_ID

STRATEGIES: dict[str, type[SelectionStrategy]] = {}


def register_strategy(cls: type[SelectionStrategy]) -> type[SelectionStrategy]:
    """Class decorator: make a strategy available by its ``name``."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__} needs a non-empty 'name' to be registered")
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(strategy: str | SelectionStrategy) -> SelectionStrategy:
    """A strategy instance from a name or an instance."""
    if isinstance(strategy, SelectionStrategy):
        return strategy
    try:
        return STRATEGIES[strategy]()
    except KeyError:
        raise ConfigError(
            f"unknown AST strategy {strategy!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


class SelectionStrategy:
    """Base class; see the module docstring."""

    name: ClassVar[str] = ""
    needs_scores: ClassVar[bool] = True
    controlled: ClassVar[bool] = True

    def importance(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], loss_fn: Callable[..., Any] | None
    ) -> Tensor | None:
        raise NotImplementedError

    def weights(self, scores: Tensor | None, mask: Tensor) -> Tensor | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@register_strategy
class LossStrategy(SelectionStrategy):
    """Per-sample multi-task loss (each task's mean over the sample's targets, weighted as in training)."""

    name = "loss"

    def importance(self, outputs, batch, loss_fn):
        if loss_fn is None:
            raise InputError("the 'loss' AST strategy needs loss_fn (a MultiTaskLoss) to score samples")
        scores = loss_fn(outputs, batch, per_sample=True).per_sample
        if scores is None:
            raise InputError("loss_fn returned no per-sample losses; pass a MultiTaskLoss")
        return scores.detach()


def mean_token_entropy(logits: Tensor, weights: Tensor) -> Tensor:
    """``[B]`` mean entropy (nats) of ``softmax(logits)`` over the positions where ``weights`` is non-zero."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    weights = weights.to(entropy.dtype)
    total = weights.sum(1)
    return (entropy * weights).sum(1) / torch.where(total > 0, total, torch.ones_like(total))


def _entropy_positions(batch: Mapping[str, Tensor]) -> Tensor:
    """Masked positions when the batch has MLM targets (an unmasked token is trivially copied, so its entropy
    says nothing), else every real nucleotide."""
    if "mlm_labels" in batch:
        return batch["mlm_labels"] != IGNORE_INDEX
    ids = batch["input_ids"]
    real = (ids != PAD_ID) & (ids != CLS_ID) & (ids != SEP_ID)
    if "attention_mask" in batch:
        real &= batch["attention_mask"].bool()
    return real


@register_strategy
class EntropyStrategy(SelectionStrategy):
    """Mean entropy of the model's masked-nucleotide predictions: uncertainty, which needs no labels."""

    name = "entropy"

    def importance(self, outputs, batch, loss_fn):
        if "mlm_logits" not in outputs:
            raise InputError("the 'entropy' AST strategy needs the model's mlm_logits")
        return mean_token_entropy(outputs["mlm_logits"], _entropy_positions(batch))


@register_strategy
class RandomStrategy(SelectionStrategy):
    """Uniform random selection at the target rate: the control arm every AST result is compared with."""

    name = "random"
    needs_scores = False
    controlled = False

    def importance(self, outputs, batch, loss_fn):
        return None


@register_strategy
class RandomScoredStrategy(SelectionStrategy):
    """Uniform random selection that still pays for the scoring forward: the control arm that separates what
    loss-based *choice* buys from what the scoring forward *costs*. Every row scores 0, so the quantile
    transform's tie share makes the selection uniform at the target rate."""

    name = "random_scored"
    controlled = False

    def importance(self, outputs, batch, loss_fn):
        return torch.zeros(batch["input_ids"].shape[0], device=batch["input_ids"].device)


@torch.no_grad()
def importance_from_outputs(
    outputs: Mapping[str, Tensor],
    batch: Mapping[str, Tensor],
    loss_fn: Callable[..., Any] | None = None,
    strategy: str | SelectionStrategy = "loss",
) -> Tensor | None:
    """Per-sample importance ``[B]`` (no graph) of a forward pass, or ``None`` for strategies without scores.

    ``strategy`` may also be a selector (anything with a ``strategy`` attribute), so a loop can call
    ``importance_from_outputs(out, batch, loss_fn, selector)``.
    """
    strategy = getattr(strategy, "strategy", strategy)
    if isinstance(strategy, str) and strategy == "sundew":
        strategy = "loss"  # the Sundew backend thresholds per-sample losses
    return get_strategy(strategy).importance(outputs, batch, loss_fn)


__all__ = [
    "SelectionStrategy", "LossStrategy", "EntropyStrategy", "RandomStrategy", "RandomScoredStrategy", "STRATEGIES",
    "register_strategy", "get_strategy", "importance_from_outputs", "mean_token_entropy",
]
