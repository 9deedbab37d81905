"""A PI controller that moves a selection threshold so the fraction of samples that learn tracks a target.

The controller is scale-free because the selector hands it a threshold on a *quantile scale*: a sample's raw
importance ``s`` (its loss, or its prediction entropy) is mapped to ``u = F(s)`` in [0, 1], where ``F`` is the
empirical distribution of recent scores (see :mod:`genesis_rna.ast.selector`), and a sample is selected when
``u > threshold``. If the scores stay stationary, ``u`` is uniform and the activation is exactly
``1 - threshold``: the plant has unit gain whatever the loss scale, the loss shape or the task weights, so one set
of gains works for every run, and the natural starting threshold is ``1 - target``. The controller only corrects
what the mapping misses: drift of the losses between the reference window and the current batch (they fall
during training, so a stale reference under-selects), and the extra rows forced by ``min_selected``.

Update rule (velocity form, as in the Sundew algorithm)::

    error      = a - target                 a: observed activation (EMA-smoothed when ema < 1)
    integral   = clamp(integral + error, +-integral_limit)   # skipped while saturated, see below
    threshold  = clamp(threshold + kp * error + ki * integral, *threshold_bounds)

With unit plant gain the closed loop is ``z^2 - (2 - kp - ki) z + (1 - kp)``; the defaults ``kp=0.5,
ki=0.05`` put its poles at 0.89 and 0.57 (real, so no oscillation; ~9 steps time constant) and the integral term
removes the lag error of a steady downward drift. Anti-windup: the integral is clamped, and it is not updated
while the threshold sits at a bound and the error pushes it further out (conditional integration), so a period
where the target is unreachable (a batch too small for ``min_selected``) leaves no debt to pay back.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

_DYNAMIC_STATE = ("threshold", "integral", "activation_ema", "last_error", "steps")


def _check_fraction(name: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name} must be in {interval}, got {value!r}")
    return value


class PIController:
    """Proportional-integral control of a quantile-scale selection threshold.

    Args:
        target_activation: fraction of samples that should learn, in (0, 1].
        kp, ki: proportional and integral gains (threshold units per unit of activation error).
        threshold: starting threshold; ``None`` gives ``1 - target_activation``, the fixed point for stationary
            scores, clamped into ``threshold_bounds``.
        integral_limit: bound on the accumulated error (so ``ki * integral`` moves at most
            ``ki * integral_limit`` per step).
        threshold_bounds: ``(lo, hi)`` the threshold is clamped to; (0, 1) covers the whole quantile scale.
        ema: weight of the newest observation in the smoothed activation the error is computed from; 1.0 uses
            the raw per-step activation (the default: smoothing adds a lag pole that makes the loop overshoot,
            and the loop itself already low-passes binomial noise).
    """

    def __init__(
        self,
        target_activation: float = 0.4,
        kp: float = 0.5,
        ki: float = 0.05,
        threshold: float | None = None,
        integral_limit: float = 2.0,
        threshold_bounds: tuple[float, float] = (0.0, 1.0),
        ema: float = 1.0,
    ) -> None:
        self.target_activation = target_activation
        for name, value in (("kp", kp), ("ki", ki), ("integral_limit", integral_limit)):
            if not (math.isfinite(float(value)) and value >= 0):
                raise ConfigError(f"PIController: {name} must be a finite number >= 0, got {value!r}")
        lo, hi = (float(b) for b in threshold_bounds)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"PIController: threshold_bounds must be finite with lo < hi, got {threshold_bounds!r}")
        self.kp, self.ki, self.integral_limit = float(kp), float(ki), float(integral_limit)
        self.threshold_bounds = (lo, hi)
        self.ema = _check_fraction("PIController: ema", ema)
        start = 1.0 - self.target_activation if threshold is None else float(threshold)
        self.initial_threshold = self._clamp(start)
        self.reset()

    # ------------------------------------------------------------------------------------------------ control

    @property
    def target_activation(self) -> float:
        return self._target

    @target_activation.setter
    def target_activation(self, value: float) -> None:
        """Settable so a schedule (e.g. AST warm-up) can move the target without losing the controller state."""
        self._target = _check_fraction("target_activation", value)

    def _clamp(self, value: float) -> float:
        lo, hi = self.threshold_bounds
        return min(max(value, lo), hi)

    def _saturated(self, error: float) -> bool:
        """At a bound with the error pushing further out: integrating now would only wind up."""
        lo, hi = self.threshold_bounds
        return (self.threshold >= hi and error > 0) or (self.threshold <= lo and error < 0)

    def update(self, observed_activation: float) -> float:
        """Feed the activation of the step just taken; returns the threshold for the next step."""
        observed = _check_fraction("observed_activation", observed_activation, allow_zero=True)
        if self.activation_ema is None:
            self.activation_ema = observed
        else:
            self.activation_ema = self.ema * observed + (1.0 - self.ema) * self.activation_ema
        error = self.activation_ema - self._target
        if not self._saturated(error):
            limit = self.integral_limit
            self.integral = min(max(self.integral + error, -limit), limit)
        self.threshold = self._clamp(self.threshold + self.kp * error + self.ki * self.integral)
        self.last_error = error
        self.steps += 1
        return self.threshold

    def reset(self) -> None:
        """Back to the starting threshold with no history (e.g. when the data distribution changes)."""
        self.threshold = self.initial_threshold
        self.integral = 0.0
        self.activation_ema: float | None = None
        self.last_error = 0.0
        self.steps = 0

    # --------------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Plain Python numbers (JSON- and checkpoint-friendly). Hyperparameters are included for the record."""
        return {
            **{name: getattr(self, name) for name in _DYNAMIC_STATE},
            "target_activation": self._target, "kp": self.kp, "ki": self.ki,
            "integral_limit": self.integral_limit, "threshold_bounds": list(self.threshold_bounds),
            "ema": self.ema,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the dynamic state (threshold, integral, smoothed activation, step count).

        Gains, bounds and target stay as constructed, so a resumed run follows its (possibly edited) config;
        with an unchanged config the trajectory continues exactly.
        """
        missing = [name for name in _DYNAMIC_STATE if name not in state]
        if missing:
            raise ConfigError(f"PIController state is missing {', '.join(missing)}")
        self.threshold = self._clamp(float(state["threshold"]))
        self.integral = float(state["integral"])
        ema = state["activation_ema"]
        self.activation_ema = None if ema is None else float(ema)
        self.last_error = float(state["last_error"])
        self.steps = int(state["steps"])

    def __repr__(self) -> str:
        return (f"PIController(target_activation={self._target}, kp={self.kp}, ki={self.ki}, "
                f"threshold={self.threshold:.4f}, integral={self.integral:.4f})")


__all__ = ["PIController"]
