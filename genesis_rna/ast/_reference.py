"""The reference window that puts raw importance scores on the quantile scale the PI controller works in."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError


class ScoreWindow:
    """The last ``capacity`` raw scores, and the randomised probability-integral transform against them.

    A score ``s`` maps to ``u = (#{r < s} + V * #{r == s}) / n`` over the ``n`` reference scores ``r``, with
    ``V ~ Uniform[0, 1)``. For continuous scores this is the empirical CDF; the random share of ties makes ``u``
    uniform even for discrete or constant scores (samples without targets all score 0), so the activation
    stays ``1 - threshold`` instead of jumping between none and all.

    The current batch is mapped against the scores *before* it (causal: a batch of easy samples selects fewer
    rows, which is the point of a threshold over top-k); the very first batch is its own reference.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if int(capacity) < 1:
            raise ConfigError(f"AST window_size must be >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self._values = torch.empty(0, dtype=torch.float64)

    def __len__(self) -> int:
        return int(self._values.numel())

    def push(self, scores: Tensor) -> None:
        """Append a batch (oldest scores fall out)."""
        self._values = torch.cat([self._values, scores.detach().to("cpu", torch.float64).flatten()])[-self.capacity:]

    def _sorted_reference(self, scores: Tensor) -> Tensor:
        reference = self._values if len(self) else scores
        return torch.sort(reference).values

    def transform(self, scores: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(u, sorted_reference)`` for a CPU float64 batch; always draws ``len(scores)`` uniforms."""
        reference = self._sorted_reference(scores)
        return quantile_transform(scores, reference, generator), reference

    @staticmethod
    def score_threshold(sorted_reference: Tensor, level: float) -> float:
        """The raw score equivalent to ``u > level``: every score above it is selected, none below it.

        Scores equal to it are selected at random (tie share). ``inf`` when the level is 1 (nothing passes).
        """
        n = sorted_reference.numel()
        k = math.floor(level * n)
        return float(sorted_reference[k]) if k < n else math.inf

    def state(self) -> list[float]:
        return self._values.tolist()

    def load_state(self, values: list[float]) -> None:
        self._values = torch.tensor(values, dtype=torch.float64)[-self.capacity:]


def quantile_transform(scores: Tensor, sorted_reference: Tensor, generator: torch.Generator) -> Tensor:
    """Randomised probability-integral transform of ``scores`` against ``sorted_reference`` (see ScoreWindow).

    With the batch itself as reference and distinct scores, the row of rank ``k`` (0-based, ascending) gets
    ``u`` uniform in ``[k/B, (k+1)/B)``, so ``u > level`` keeps ``(1 - level) * B`` rows up to one boundary row.
    """
    below = torch.searchsorted(sorted_reference, scores, side="left")
    at_or_below = torch.searchsorted(sorted_reference, scores, side="right")
    # float64 so that u == k / n compares exactly against the threshold (float32 rounds 3/5 above 0.6)
    share = torch.rand(scores.shape, generator=generator, dtype=torch.float64)
    return (below + share * (at_or_below - below)) / sorted_reference.numel()
