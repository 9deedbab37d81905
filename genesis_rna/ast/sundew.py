"""Backend on the ``adaptive-sparse-training`` package's ``SundewAlgorithm``, behind the same ``select`` interface.

What the package (1.0.1) really does, read from its source: ``SundewAlgorithm(ASTConfig(...))`` keeps a *raw*
threshold (default start 3.0). ``select_samples(losses [B], outputs [B, C])`` computes the significance
``0.7 * loss + 0.3 * entropy(softmax(outputs, dim=1))``, selects ``significance > threshold``, tops the selection up
to ``max(2, B // 10)`` rows by significance (``torch.topk``, so B < 2 would raise), then updates an EMA of the
activation (``ema_alpha`` 0.1) and the threshold with a PI step ``threshold += kp * error + ki * integral``
(``kp`` 0.005, ``ki`` 0.0001; the integral is clamped to +-100 and decays by 0.9 when the threshold is outside
(0.5, 10); the threshold is clamped to [0.5, 10]). It returns ``(active_mask, info)`` with ``num_active``,
``activation_rate``, ``activation_rate_ema``, ``threshold`` (after the update) and a cumulative
``energy_savings`` percentage.

Differences from :class:`~genesis_rna.ast.selector.ASTSampleSelector` worth knowing: the threshold lives on the
raw loss scale, so its gains and its [0.5, 10] bounds suit losses of order 1-10 (a run whose per-sample losses
fall below ~0.7 can no longer lower the threshold enough and drops to the 10% fallback); and the package's
entropy term expects one ``[B, C]`` classifier output per sample, which a per-token model does not have.
:class:`SundewSelector` therefore passes the per-sample score as the loss and a one-class dummy as the
outputs (entropy 0), so the significance is ``0.7 * score``, unless ``logits`` ``[B, C]`` are given.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, GenesisRNAError, InputError
from .selector import SelectionResult, _RunningStats, enforce_minimum
from .strategies import LossStrategy

INSTALL_COMMAND = "pip install --no-deps adaptive-sparse-training"
#: The package's fixed weight of the loss term in its significance score.
_LOSS_SHARE = 0.7
_STATE_ATTRIBUTES = ("activation_threshold", "integral_error", "activation_rate_ema", "total_baseline_energy",
                     "total_actual_energy")


class ASTBackendUnavailableError(GenesisRNAError, ImportError):
    """An AST backend whose optional package is not installed."""


def sundew_available() -> bool:
    """Whether ``adaptive_sparse_training`` can be imported."""
    try:
        _import_backend()
    except ASTBackendUnavailableError:
        return False
    return True


def _import_backend() -> tuple[type, type]:
    try:
        sundew = importlib.import_module("adaptive_sparse_training.sundew")
        config = importlib.import_module("adaptive_sparse_training.config")
    except ImportError as exc:
        raise ASTBackendUnavailableError(
            f"the 'sundew' AST backend needs the adaptive-sparse-training package ({exc}); install it with "
            f"`{INSTALL_COMMAND}` (--no-deps keeps your PyTorch: the package pins torch and torchvision)"
        ) from None
    return sundew.SundewAlgorithm, config.ASTConfig


class SundewSelector:
    """``SundewAlgorithm`` from ``adaptive-sparse-training`` with the ``select(scores)`` interface.

    Defaults are the package's own (``ASTConfig``): its gains are in raw loss units, so the quantile-scale
    gains of :class:`~genesis_rna.ast.controller.PIController` (``TrainingConfig.ast_kp/ast_ki``) do not carry
    over. ``SelectionResult.threshold`` is the package's significance threshold used for the step and
    ``score_threshold`` the equivalent raw score (``threshold / 0.7`` without ``logits``).
    """

    name = "sundew"

    def __init__(
        self,
        target_activation: float = 0.4,
        initial_threshold: float = 3.0,
        kp: float = 0.005,
        ki: float = 0.0001,
        ema_alpha: float = 0.1,
        min_selected: int = 1,
    ) -> None:
        algorithm_cls, config_cls = _import_backend()
        if not 0 < float(target_activation) <= 1:
            raise ConfigError(f"target_activation must be in (0, 1], got {target_activation!r}")
        self._config = config_cls(
            target_activation_rate=float(target_activation), initial_threshold=float(initial_threshold),
            adapt_kp=float(kp), adapt_ki=float(ki), ema_alpha=float(ema_alpha), use_amp=False, device="cpu",
        )
        self._algorithm_cls = algorithm_cls
        self.algorithm = algorithm_cls(self._config)
        self.min_selected = int(min_selected)
        self.strategy = LossStrategy()  # what importance_from_outputs scores with for this backend
        self._stats = _RunningStats(0.05)
        self._energy_savings = 0.0

    @property
    def target_activation(self) -> float:
        return float(self.algorithm.target_activation_rate)

    @target_activation.setter
    def target_activation(self, value: float) -> None:
        self.algorithm.target_activation_rate = float(value)

    @property
    def threshold(self) -> float:
        return float(self.algorithm.activation_threshold)

    def _run_algorithm(self, values: Tensor, logits: Tensor | None) -> Tensor:
        if values.numel() < 2:  # the package's top-k fallback needs two rows; it would select this one anyway
            return torch.ones_like(values, dtype=torch.bool)
        outputs = torch.zeros(values.numel(), 1) if logits is None else logits.detach().float().cpu()
        mask, info = self.algorithm.select_samples(values, outputs)
        self._energy_savings = float(info["energy_savings"])
        return mask.bool()

    def select(
        self, scores: Tensor | None = None, *, logits: Tensor | None = None, batch_size: int | None = None
    ) -> SelectionResult:
        """Select rows with the package's algorithm (which also updates its threshold)."""
        if scores is None or scores.dim() != 1:
            raise InputError("the 'sundew' AST backend needs per-sample scores as a [B] tensor")
        if logits is not None and (logits.dim() != 2 or logits.shape[0] != scores.shape[0]):
            raise InputError(f"sundew logits must be [B, C] with B = {scores.shape[0]}, got {tuple(logits.shape)}")
        values = scores.detach().to("cpu", torch.float32)
        if not bool(torch.isfinite(values).all()):
            raise InputError("AST scores contain NaN or inf (has the loss diverged?)")
        threshold = self.threshold
        mask = enforce_minimum(self._run_algorithm(values, logits), values, self.min_selected)
        size = max(values.numel(), 1)
        result = SelectionResult(
            indices=mask.nonzero().squeeze(1).to(scores.device), mask=mask.to(scores.device),
            activation=int(mask.sum()) / size, threshold=threshold,
            score_threshold=threshold / _LOSS_SHARE if logits is None else None,
        )
        self._stats.record(result)
        return result

    def select_from_outputs(self, outputs, batch, loss_fn=None) -> SelectionResult:
        """Score a (no-grad) forward pass by per-sample loss and select (what the training loop's AST step calls)."""
        from .strategies import importance_from_outputs

        return self.select(importance_from_outputs(outputs, batch, loss_fn, self.strategy))

    def stats(self) -> dict[str, float]:
        """As :meth:`ASTSampleSelector.stats`, plus the package's ``energy_savings`` (percent)."""
        return {**self._stats.as_dict(), "energy_savings": self._energy_savings}

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "algorithm": {name: float(getattr(self.algorithm, name)) for name in _STATE_ATTRIBUTES},
            "stats": self._stats.state(),
            "energy_savings": self._energy_savings,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != self.name:
            raise ConfigError(f"AST checkpoint was written by strategy {state.get('strategy')!r}, not 'sundew'")
        for name in _STATE_ATTRIBUTES:
            setattr(self.algorithm, name, float(state["algorithm"][name]))
        self._stats.load_state(state["stats"])
        self._energy_savings = float(state["energy_savings"])

    def reset(self) -> None:
        """A fresh algorithm (the package's own ``reset()`` only clears its energy counters)."""
        target = self.target_activation
        self.algorithm = self._algorithm_cls(self._config)
        self.algorithm.target_activation_rate = target
        self._stats = _RunningStats(self._stats.ema)
        self._energy_savings = 0.0

    def __repr__(self) -> str:
        return (f"SundewSelector(target_activation={self.target_activation}, threshold={self.threshold:.4f}, "
                f"kp={self._config.adapt_kp}, ki={self._config.adapt_ki})")


__all__ = ["SundewSelector", "ASTBackendUnavailableError", "sundew_available", "INSTALL_COMMAND"]
