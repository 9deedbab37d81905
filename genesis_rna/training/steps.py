"""Step strategies of the training loop: one optimiser step's forward and backward. ``DenseStep`` trains on the whole
batch; ``ASTStep`` (samples) and ``TokenASTStep`` (tokens) let AST's selector choose what enters the backward pass,
and count what selection costs. The loop calls a strategy; it is not forked per strategy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..data.loader import world
from .flops import FlopMeter

__all__ = ["DenseStep", "ASTStep", "TokenASTStep", "StepOutput", "make_step_strategy", "move_batch",
           "dense_step_flops"]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# --------------------------------------------------------------------------------------------- step strategies

MODEL_KEYS = ("input_ids", "attention_mask")


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors to ``device`` (non-blocking), everything else as is."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _forward(model: nn.Module, batch: Mapping[str, Any]) -> dict[str, Tensor]:
    return model(batch["input_ids"], batch["attention_mask"])


@dataclass
class StepOutput:
    """What one step strategy reports: the loss parts of the rows that learned and what it selected."""

    loss: Any                      # LossOutput of the rows that were back-propagated
    batch_size: int
    n_selected: int
    selection: dict[str, float] = field(default_factory=dict)


class DenseStep:
    """Forward + backward on the whole batch: the baseline every AST result is compared with."""

    name = "dense"

    def __call__(self, model: nn.Module, batch: Mapping[str, Any], loss_fn: Callable, *, autocast,
                 backward: Callable[[Tensor], None], meter: FlopMeter) -> StepOutput:
        with meter.section("forward"), autocast():
            loss = loss_fn(_forward(model, batch), batch)
        with meter.section("backward"):
            backward(loss.total)
        b = int(batch["input_ids"].shape[0])
        return StepOutput(loss, b, b)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class ASTStep:
    """Adaptive Sparse Training: score all rows without grad, select, back-propagate the selected rows only.

    ``selector`` is an :class:`~genesis_rna.ast.ASTSampleSelector` (or the Sundew backend). Strategies that need
    no scores (``random``) skip the scoring forward entirely, which is what makes uniform random selection the
    cheapest control arm. ``warmup_steps`` steps at the start run dense (full-data warmup).
    """

    name = "ast"

    def __init__(self, selector: Any, *, warmup_steps: int = 0) -> None:
        self.selector = selector
        self.warmup_steps = int(warmup_steps)
        self._steps = 0

    def _needs_scores(self) -> bool:
        if hasattr(self.selector, "select_batch"):
            return False
        strategy = getattr(self.selector, "strategy", None)
        return getattr(strategy, "needs_scores", True)

    def _select_without_scores(self, batch: Mapping[str, Any], b: int):
        if hasattr(self.selector, "select_batch"):  # batch-aware selectors (InfoBatch: remembered losses)
            return self.selector.select_batch(batch)
        return self.selector.select(batch_size=b)

    def __call__(self, model: nn.Module, batch: Mapping[str, Any], loss_fn: Callable, *, autocast,
                 backward: Callable[[Tensor], None], meter: FlopMeter) -> StepOutput:
        self._steps += 1
        b = int(batch["input_ids"].shape[0])
        if self._steps <= self.warmup_steps:
            out = DenseStep()(model, batch, loss_fn, autocast=autocast, backward=backward, meter=meter)
            out.selection = {"activation": 1.0}
            return out
        if self._needs_scores():
            with meter.section("score"), torch.no_grad(), autocast():
                outputs = _forward(_unwrap(model), batch)
                result = self.selector.select_from_outputs(outputs, batch, loss_fn)
            del outputs
        else:
            result = self._select_without_scores(batch, b)
        sub = result.gather(batch)
        observe = getattr(self.selector, "observe", None)
        with meter.section("forward"), autocast():
            loss = loss_fn(_forward(model, sub), sub, per_sample=result.weights is not None or observe is not None)
            if result.weights is not None:  # importance re-weighting (InfoBatch-style strategies)
                loss.total = (loss.per_sample * result.weights.to(loss.per_sample.dtype)).mean()
        with meter.section("backward"):
            backward(loss.total)
        if observe is not None:  # selectors that remember the losses of the rows they trained
            observe(sub, loss.per_sample)
        selection = {"activation": result.activation, "threshold": float(result.threshold)}
        if result.score_threshold is not None:
            selection["score_threshold"] = float(result.score_threshold)
        return StepOutput(loss, b, result.num_selected, selection)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps, "selector": self.selector.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._steps = int(state["steps"])
        self.selector.load_state_dict(state["selector"])


class TokenASTStep:
    """Token-level AST: every row learns, but the tokens the selector drops skip the encoder's middle blocks
    (``model(..., token_keep=...)``, see :mod:`genesis_rna.ast.tokens`). ``selection`` reports the kept
    fraction of real tokens as ``activation`` and the packed width of the middle blocks as ``packed_width``."""

    name = "ast_tokens"

    def __init__(self, selector: Any) -> None:
        self.selector = selector

    def __call__(self, model: nn.Module, batch: Mapping[str, Any], loss_fn: Callable, *, autocast,
                 backward: Callable[[Tensor], None], meter: FlopMeter) -> StepOutput:
        keep, fraction = self.selector.select_tokens(batch)
        if "attention_mask" in batch:
            keep = keep & batch["attention_mask"].bool()
        with meter.section("forward"), autocast():
            loss = loss_fn(model(batch["input_ids"], batch["attention_mask"], token_keep=keep), batch)
        with meter.section("backward"):
            backward(loss.total)
        b = int(batch["input_ids"].shape[0])
        return StepOutput(loss, b, b, {"activation": fraction, "threshold": float(self.selector.controller.threshold),
                                       "packed_width": int(keep.sum(1).max())})

    def state_dict(self) -> dict[str, Any]:
        return {"selector": self.selector.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.selector.load_state_dict(state["selector"])


def make_step_strategy(cfg: Any, steps_per_epoch: int = 0, total_steps: int = 0
                       ) -> DenseStep | ASTStep | TokenASTStep:
    """Dense, or AST with the selector ``cfg`` describes (``ast_strategy``, target, gains, warmup epochs)."""
    if not cfg.use_ast:
        return DenseStep()
    from ..ast import selector_from_training_config

    generator = torch.Generator().manual_seed(int(cfg.seed) + 1000 * world()[0])
    selector = selector_from_training_config(cfg, generator=generator, total_steps=total_steps)
    if getattr(selector, "name", None) == "tokens":
        return TokenASTStep(selector)
    return ASTStep(selector, warmup_steps=int(cfg.ast_warmup_epochs) * int(steps_per_epoch))


def dense_step_flops(model: nn.Module, batch: Mapping[str, Any], loss_fn: Callable, autocast) -> dict[str, int]:
    """Measured FLOPs of a dense forward and backward on ``batch`` (``{"forward": .., "backward": ..}``).

    The backward is ``torch.autograd.grad``, so no ``.grad`` is touched and the training step is unaffected.
    """
    meter = FlopMeter()
    core = _unwrap(model)
    params = [p for p in core.parameters() if p.requires_grad]
    with meter.section("forward"), autocast():
        total = loss_fn(_forward(core, batch), batch).total
    with meter.section("backward"):
        torch.autograd.grad(total, params, allow_unused=True)
    return dict(meter.counts)
