"""Build a selector by name, or from a run's ``TrainingConfig``."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .controller import PIController
from .selector import ASTSampleSelector
from .strategies import STRATEGIES
from .sundew import SundewSelector


def selector_names() -> list[str]:
    """Every name :func:`make_selector` accepts: the registered strategies and ``sundew``."""
    return sorted(STRATEGIES) + ["sundew"]


def make_selector(name: str, **kwargs: Any) -> ASTSampleSelector | SundewSelector:
    """``"loss"``, ``"entropy"``, ``"random"`` (and any registered strategy) give an :class:`ASTSampleSelector`
    built with ``kwargs``; ``"sundew"`` gives a :class:`SundewSelector` (needs ``adaptive-sparse-training``)."""
    if name == "sundew":
        return SundewSelector(**kwargs)
    if name not in STRATEGIES:
        raise ConfigError(f"unknown AST selector {name!r}; choose one of {', '.join(selector_names())}")
    return ASTSampleSelector(strategy=name, **kwargs)


def selector_from_training_config(
    cfg: Any, *, generator: torch.Generator | None = None, **kwargs: Any
) -> ASTSampleSelector | SundewSelector:
    """The selector a run's config asks for: ``ast_strategy``, ``ast_target_activation``, ``ast_kp``, ``ast_ki``.

    The generator defaults to one seeded with ``cfg.seed``. For ``sundew`` the gains are not passed: they are on
    the quantile scale of :class:`PIController`, the package's are in raw loss units (its defaults are used).
    """
    if cfg.ast_strategy == "sundew":
        return SundewSelector(target_activation=cfg.ast_target_activation, **kwargs)
    controller = PIController(cfg.ast_target_activation, kp=cfg.ast_kp, ki=cfg.ast_ki)
    if generator is None:
        generator = torch.Generator().manual_seed(int(cfg.seed))
    kwargs.setdefault("reference", getattr(cfg, "ast_reference", "window"))
    return make_selector(cfg.ast_strategy, controller=controller, generator=generator, **kwargs)  # type: ignore[return-value]
