"""InfoBatch-style selection (Qin et al., ICLR 2024): prune from remembered losses, no scoring forward.

Every sample's most recent training loss is remembered, keyed by its dataset index (``batch["indices"]``).
Before a step's forward, the rows whose remembered loss is below the mean of all remembered losses are dropped
at random with probability ``r``; the kept below-mean rows get loss weight ``1 / (1 - r)``, so the expected
gradient equals that of the full batch. Rows never seen yet, and every row in the last ``anneal_fraction`` of
the run, are kept (full data at the end, as in the paper). Because selection happens before any forward, a step
costs ``activation`` of a dense step: there is no scoring forward to pay for.

``prune_ratio`` is the paper's ``r`` (0.5 there). ``"auto"`` (the default here) sets ``r`` per batch so that the
expected activation is ``target_activation`` where that is possible (``r <= max_prune_ratio``); the above-mean
rows are always kept, so the realised activation cannot go below their share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, InputError
from .selector import SelectionResult, _RunningStats, enforce_minimum


class InfoBatchSelector:
    """Remembered-loss pruning with unbiased re-weighting; see the module docstring.

    ``select_batch(batch)`` picks rows before the forward; ``observe(sub_batch, per_sample_losses)`` stores the
    fresh losses of the rows that were trained. ``total_steps`` fixes where the full-data annealing starts.
    """

    name = "infobatch"
    needs_scores = False

    def __init__(
        self,
        target_activation: float = 0.4,
        prune_ratio: float | str = "auto",
        *,
        max_prune_ratio: float = 0.8,
        anneal_fraction: float = 0.125,
        total_steps: int = 0,
        min_selected: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0 < float(target_activation) <= 1:
            raise ConfigError(f"target_activation must be in (0, 1], got {target_activation!r}")
        if prune_ratio != "auto" and not 0 <= float(prune_ratio) < 1:
            raise ConfigError(f"prune_ratio must be 'auto' or in [0, 1), got {prune_ratio!r}")
        if not 0 <= float(max_prune_ratio) < 1:
            raise ConfigError(f"max_prune_ratio must be in [0, 1), got {max_prune_ratio!r}")
        if not 0 <= float(anneal_fraction) <= 1:
            raise ConfigError(f"anneal_fraction must be in [0, 1], got {anneal_fraction!r}")
        self.target_activation = float(target_activation)
        self.prune_ratio = prune_ratio
        self.max_prune_ratio = float(max_prune_ratio)
        self.anneal_fraction = float(anneal_fraction)
        self.total_steps = int(total_steps)
        self.min_selected = int(min_selected)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(torch.initial_seed())
        self.memory = torch.full((0,), math.nan, dtype=torch.float64)
        self.steps = 0
        self._stats = _RunningStats(0.05)

    @property
    def anneal_start(self) -> int:
        """First step (0-based) of the full-data phase; never when ``total_steps`` is unknown (0)."""
        if self.total_steps <= 0:
            return 1 << 62
        return int(round(self.total_steps * (1.0 - self.anneal_fraction)))

    def _grow(self, max_index: int) -> None:
        if max_index >= self.memory.numel():
            extra = torch.full((max_index + 1 - self.memory.numel(),), math.nan, dtype=torch.float64)
            self.memory = torch.cat([self.memory, extra])

    def _ratio(self, n_rows: int, n_below: int) -> float:
        if self.prune_ratio != "auto":
            return float(self.prune_ratio)
        if n_below == 0:
            return 0.0
        keep_needed = self.target_activation * n_rows - (n_rows - n_below)
        return min(max(1.0 - keep_needed / n_below, 0.0), self.max_prune_ratio)

    def select_batch(self, batch: Mapping[str, Any]) -> SelectionResult:
        """Rows of ``batch`` to train on, from the remembered losses of ``batch["indices"]``."""
        if "indices" not in batch:
            raise InputError("the 'infobatch' AST selector needs batch['indices'] (dataset indices)")
        indices = batch["indices"].detach().to("cpu", torch.long)
        device = batch["input_ids"].device
        n = int(indices.numel())
        self._grow(int(indices.max()) if n else 0)
        scores = self.memory[indices]
        seen = ~torch.isnan(scores)
        known = self.memory[~torch.isnan(self.memory)]
        anneal = self.steps >= self.anneal_start
        self.steps += 1
        if anneal or known.numel() == 0:
            below = torch.zeros(n, dtype=torch.bool)
        else:
            below = seen & (scores < known.mean())
        ratio = 0.0 if anneal else self._ratio(n, int(below.sum()))
        drop = below & (torch.rand(n, generator=self.generator, dtype=torch.float64) < ratio)
        priority = torch.where(seen, scores, torch.full_like(scores, math.inf))
        mask = enforce_minimum(~drop, priority, self.min_selected)
        weights = None
        if ratio > 0 and bool(below.any()):
            w = torch.where(below, 1.0 / (1.0 - ratio), 1.0)
            weights = w[mask].to(torch.float32).to(device)
        result = SelectionResult(indices=mask.nonzero().squeeze(1).to(device), mask=mask.to(device),
                                 activation=int(mask.sum()) / max(n, 1), threshold=ratio,
                                 score_threshold=float(known.mean()) if known.numel() else None, weights=weights)
        self._stats.record(result)
        return result

    def observe(self, sub_batch: Mapping[str, Any], per_sample: Tensor | None) -> None:
        """Remember the losses of the rows just trained (``sub_batch`` is the gathered batch)."""
        if per_sample is None or "indices" not in sub_batch:
            return
        idx = sub_batch["indices"].detach().to("cpu", torch.long)
        if idx.numel():
            self._grow(int(idx.max()))
            self.memory[idx] = per_sample.detach().to("cpu", torch.float64)

    def stats(self) -> dict[str, float]:
        return self._stats.as_dict()

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.name, "memory": self.memory.tolist(), "steps": self.steps,
                "generator_state": self.generator.get_state().tolist(), "stats": self._stats.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise ConfigError(f"AST checkpoint was written by strategy {state.get('strategy')!r}, not 'infobatch'")
        self.memory = torch.tensor(state["memory"], dtype=torch.float64)
        self.steps = int(state["steps"])
        self.generator.set_state(torch.tensor(state["generator_state"], dtype=torch.uint8))
        self._stats.load_state(state["stats"])

    def __repr__(self) -> str:
        return (f"InfoBatchSelector(target_activation={self.target_activation}, prune_ratio={self.prune_ratio!r}, "
                f"anneal_fraction={self.anneal_fraction}, total_steps={self.total_steps})")


__all__ = ["InfoBatchSelector"]
