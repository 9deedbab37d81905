"""Which samples of a batch take part in the backward pass.

:class:`ASTSampleSelector` turns per-sample importance scores into the indices of the rows to keep. The training
loop gathers those rows into a smaller batch and runs forward + backward on it alone, so the saved compute is
real (a 0/1 loss mask would save nothing). Selection itself is cheap: a sort of ``window_size`` floats and two
``searchsorted`` calls on the CPU per step.

How a threshold works here: raw scores are put on a quantile scale against the last ``window_size`` scores
(:class:`~genesis_rna.ast._reference.ScoreWindow`), a row is selected when its quantile ``u`` exceeds the
controller's threshold, and the :class:`~genesis_rna.ast.controller.PIController` moves that threshold after each
step so the activation rate tracks the target. Because the threshold is a quantile level, the controller's
gains mean the same thing for any loss scale; ``SelectionResult.score_threshold`` reports the equivalent raw
score for logging.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, InputError
from ._reference import ScoreWindow, quantile_transform
from .controller import PIController
from .strategies import SelectionStrategy, get_strategy, importance_from_outputs

REFERENCES = ("window", "batch")


@dataclass(frozen=True)
class SelectionResult:
    """One step's selection.

    ``indices`` (LongTensor, ascending, on the scores' device) index the rows to keep; ``mask`` is the same as a
    ``[B]`` bool tensor. ``activation`` = selected / batch size. ``threshold`` is the level rows had to exceed
    (a quantile level in [0, 1] for the built-in selector, the raw significance for Sundew); ``score_threshold``
    is the raw score equivalent (``None`` for random selection). ``weights`` are optional loss weights for the
    selected rows (``None`` = plain mean).
    """

    indices: Tensor
    mask: Tensor
    activation: float
    threshold: float
    score_threshold: float | None = None
    weights: Tensor | None = None

    @property
    def num_selected(self) -> int:
        return int(self.indices.numel())

    @property
    def batch_size(self) -> int:
        return int(self.mask.numel())

    def gather(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The selected rows of every tensor in ``batch`` whose first dimension is the batch (others as is)."""
        out: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.batch_size:
                out[key] = value.index_select(0, self.indices.to(value.device))
            else:
                out[key] = value
        return out


def _default_generator() -> torch.Generator:
    """Seeded from ``torch.initial_seed()``: reproducible under ``torch.manual_seed`` without consuming a draw
    from the global stream (creating a selector must not change the model's initialisation)."""
    return torch.Generator().manual_seed(torch.initial_seed())


def enforce_minimum(mask: Tensor, priority: Tensor, min_selected: int) -> Tensor:
    """Add the highest-``priority`` unselected rows until at least ``min_selected`` rows are selected."""
    missing = min(min_selected, mask.numel()) - int(mask.sum())
    if missing <= 0:
        return mask
    candidates = torch.where(mask, torch.full_like(priority, -math.inf), priority)
    mask = mask.clone()
    mask[torch.topk(candidates, missing).indices] = True
    return mask


def _priority(values: Tensor | None, u: Tensor) -> Tensor:
    """Rank rows by raw score, ties (and scoreless strategies) by ``u``: who is topped up first.

    ``u`` alone is not enough: against a reference of much higher scores every row has ``u = 0``.
    """
    order = torch.argsort(u)
    if values is not None:
        order = order[torch.argsort(values[order], stable=True)]
    priority = torch.empty_like(u)
    priority[order] = torch.arange(u.numel(), dtype=u.dtype)
    return priority


class _RunningStats:
    """Counters for logging: totals since the start and an EMA of the activation."""

    def __init__(self, ema: float) -> None:
        self.ema = ema
        self.steps = self.seen = self.selected = 0
        self.activation_ema: float | None = None
        self.last: dict[str, float] = {}

    def record(self, result: SelectionResult) -> None:
        self.steps += 1
        self.seen += result.batch_size
        self.selected += result.num_selected
        a = result.activation
        self.activation_ema = a if self.activation_ema is None else self.ema * a + (1 - self.ema) * self.activation_ema
        self.last = {"activation": a, "threshold": result.threshold,
                     "score_threshold": math.nan if result.score_threshold is None else result.score_threshold}

    def as_dict(self) -> dict[str, float]:
        return {
            **self.last, "activation_ema": math.nan if self.activation_ema is None else self.activation_ema,
            "activation_cumulative": self.selected / self.seen if self.seen else math.nan,
            "seen_total": self.seen, "selected_total": self.selected, "steps": self.steps,
        }

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "seen": self.seen, "selected": self.selected,
                "activation_ema": self.activation_ema, "last": dict(self.last)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.steps, self.seen, self.selected = int(state["steps"]), int(state["seen"]), int(state["selected"])
        self.activation_ema = state["activation_ema"]
        self.last = dict(state["last"])


class ASTSampleSelector:
    """Adaptive Sparse Training sample selection with a PI-controlled threshold.

    Args:
        strategy: ``"loss"`` (per-sample loss), ``"entropy"`` (mean prediction entropy), ``"random"`` (uniform at
            the target rate, the control arm), or a :class:`SelectionStrategy` instance.
        target_activation: fraction of samples that should learn; ignored when ``controller`` is given (its
            target is used).
        controller: a :class:`PIController` to use instead of the default one.
        min_selected: at least this many rows per step (topped up with the highest scores), so a step never
            has an empty batch. Forced rows count in the activation the controller sees: the promise is the
            fraction of samples that learn.
        generator: the ``torch.Generator`` for tie shares and random selection (its state is checkpointed).
        window_size: how many recent scores form the quantile reference (1024: quantiles to ~0.015, short
            enough to follow the loss as it falls).
        reference: ``"window"`` ranks each score against the last ``window_size`` scores (a batch of easy
            samples selects fewer rows); ``"batch"`` ranks it within its own batch, so every step back-propagates
            close to ``target`` of its rows. Use ``"batch"`` when batches are length-bucketed: per-sample losses
            then differ more between batches than within them, and a window reference selects whole batches or
            none (measured: per-step activation swinging between 1/32 and 32/32 at a 0.4 target).
        stats_ema: smoothing of the logged ``activation_ema``.
    """

    def __init__(
        self,
        strategy: str | SelectionStrategy = "loss",
        target_activation: float = 0.4,
        controller: PIController | None = None,
        min_selected: int = 1,
        generator: torch.Generator | None = None,
        *,
        window_size: int = 1024,
        stats_ema: float = 0.05,
        reference: str = "window",
    ) -> None:
        if reference not in REFERENCES:
            raise ConfigError(f"AST reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
        self.reference = reference
        self.strategy = get_strategy(strategy)
        self.controller = controller if controller is not None else PIController(target_activation)
        if int(min_selected) < 0:
            raise ConfigError(f"min_selected must be >= 0, got {min_selected!r}")
        self.min_selected = int(min_selected)
        self.generator = generator if generator is not None else _default_generator()
        self.window = ScoreWindow(window_size)
        self._stats = _RunningStats(stats_ema)

    @property
    def target_activation(self) -> float:
        return self.controller.target_activation

    @target_activation.setter
    def target_activation(self, value: float) -> None:
        self.controller.target_activation = value

    @property
    def name(self) -> str:
        return self.strategy.name

    # -------------------------------------------------------------------------------------------------- select

    def _check_scores(self, scores: Tensor | None, batch_size: int | None) -> tuple[Tensor | None, int, Any]:
        if scores is None:
            if self.strategy.needs_scores:
                raise InputError(f"the {self.strategy.name!r} AST strategy needs per-sample scores")
            if batch_size is None:
                raise InputError("select() needs scores or batch_size")
            return None, int(batch_size), torch.device("cpu")
        if scores.dim() != 1:
            raise InputError(f"AST scores must be a [B] tensor, got shape {tuple(scores.shape)}")
        values = scores.detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(values).all()):
            raise InputError("AST scores contain NaN or inf (has the loss diverged?)")
        return values, values.numel(), scores.device

    def _quantiles(self, values: Tensor | None, batch_size: int) -> tuple[Tensor, float, float | None]:
        """``(u, level, score_threshold)`` for this batch; updates the reference window."""
        if not self.strategy.needs_scores or values is None:
            u = torch.rand(batch_size, generator=self.generator, dtype=torch.float64)
            level = self.controller.threshold if self.strategy.controlled else 1.0 - self.target_activation
            return u, level, None
        level = self.controller.threshold
        if self.reference == "batch":
            reference = torch.sort(values).values
            u = quantile_transform(values, reference, self.generator)
        else:
            u, reference = self.window.transform(values, self.generator)
        score_threshold = ScoreWindow.score_threshold(reference, level)
        self.window.push(values)
        return u, level, score_threshold

    def select(self, scores: Tensor | None = None, *, batch_size: int | None = None) -> SelectionResult:
        """Select rows of one batch and update the controller.

        ``scores`` ``[B]`` (higher = more important) are required except for ``random``, which needs only
        ``batch_size`` (scores, if given, only set the batch size and device).
        """
        values, size, device = self._check_scores(scores, batch_size)
        if size == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return SelectionResult(empty, torch.zeros(0, dtype=torch.bool, device=device), 0.0,
                                   self.controller.threshold)
        u, level, score_threshold = self._quantiles(values, size)
        mask = enforce_minimum(u > level, _priority(values, u), self.min_selected)
        activation = int(mask.sum()) / size
        if self.strategy.controlled:
            self.controller.update(activation)
        weights = self.strategy.weights(values, mask)
        result = SelectionResult(
            indices=mask.nonzero().squeeze(1).to(device), mask=mask.to(device), activation=activation,
            threshold=level, score_threshold=score_threshold,
            weights=None if weights is None else weights.to(device),
        )
        self._stats.record(result)
        return result

    def select_from_outputs(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor], loss_fn: Callable[..., Any] | None = None
    ) -> SelectionResult:
        """Score a (no-grad) forward pass with this selector's strategy and select."""
        scores = importance_from_outputs(outputs, batch, loss_fn, self.strategy)
        return self.select(scores, batch_size=int(batch["input_ids"].shape[0]))

    # ---------------------------------------------------------------------------------------- stats and state

    def stats(self) -> dict[str, float]:
        """For logging: last ``activation``/``threshold``/``score_threshold``, ``activation_ema``,
        ``activation_cumulative``, ``seen_total``, ``selected_total``, ``steps``."""
        return self._stats.as_dict()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume, as plain Python values (generator state as a list of bytes)."""
        return {
            "strategy": self.strategy.name,
            "controller": self.controller.state_dict(),
            "window": self.window.state(),
            "generator_state": self.generator.get_state().tolist(),
            "stats": self._stats.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.strategy.name:
            raise ConfigError(
                f"AST checkpoint was written by strategy {state.get('strategy')!r}, this run uses "
                f"{self.strategy.name!r}"
            )
        self.controller.load_state_dict(state["controller"])
        self.window.load_state(state["window"])
        self.generator.set_state(torch.tensor(state["generator_state"], dtype=torch.uint8))
        self._stats.load_state(state["stats"])

    def reset(self) -> None:
        """Forget the controller state, the score window and the statistics (the generator keeps its stream)."""
        self.controller.reset()
        self.window = ScoreWindow(self.window.capacity)
        self._stats = _RunningStats(self._stats.ema)

    def __repr__(self) -> str:
        return (f"ASTSampleSelector(strategy={self.strategy.name!r}, target_activation={self.target_activation}, "
                f"min_selected={self.min_selected}, threshold={self.controller.threshold:.4f})")


__all__ = ["ASTSampleSelector", "SelectionResult", "enforce_minimum"]
