"""Build a selector by name, or from a run's ``TrainingConfig``."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .controller import PIController
from .infobatch import InfoBatchSelector
from .selector import ASTSampleSelector
from .strategies import STRATEGIES
from .sundew import SundewSelector
from .tokens import TokenSelector


def selector_names() -> list[str]:
    """Every name :func:`make_selector` accepts: the registered strategies, ``infobatch`` and ``sundew``."""
    return sorted(STRATEGIES) + ["infobatch", "sundew", "tokens"]


def make_selector(name: str, **kwargs: Any) -> ASTSampleSelector | SundewSelector | InfoBatchSelector | TokenSelector:
    """``"loss"``, ``"entropy"``, ``"random"``, ``"random_scored"`` (and any registered strategy) give an
    :class:`ASTSampleSelector` built with ``kwargs``; ``"infobatch"`` an :class:`InfoBatchSelector`; ``"sundew"``
    a :class:`SundewSelector` (needs ``adaptive-sparse-training``); ``"tokens"`` a :class:`TokenSelector`
    (token-level AST: the training loop then uses :class:`~genesis_rna.training.steps.TokenASTStep`)."""
    if name == "sundew":
        return SundewSelector(**kwargs)
    if name == "infobatch":
        return InfoBatchSelector(**kwargs)
    if name == "tokens":
        return TokenSelector(**kwargs)
    if name not in STRATEGIES:
        raise ConfigError(f"unknown AST selector {name!r}; choose one of {', '.join(selector_names())}")
    return ASTSampleSelector(strategy=name, **kwargs)


def selector_from_training_config(
    cfg: Any, *, generator: torch.Generator | None = None, total_steps: int = 0, **kwargs: Any
) -> ASTSampleSelector | SundewSelector | InfoBatchSelector | TokenSelector:
    """The selector a run's config asks for: ``ast_strategy``, ``ast_target_activation``, ``ast_kp``, ``ast_ki``.

    The generator defaults to one seeded with ``cfg.seed``. For ``sundew`` the gains are not passed: they are on
    the quantile scale of :class:`PIController`, the package's are in raw loss units (its defaults are used).
    ``total_steps`` tells ``infobatch`` where its full-data annealing starts.
    """
    if cfg.ast_strategy == "sundew":
        return SundewSelector(target_activation=cfg.ast_target_activation, **kwargs)
    if generator is None:
        generator = torch.Generator().manual_seed(int(cfg.seed))
    if cfg.ast_strategy == "infobatch":
        return InfoBatchSelector(target_activation=cfg.ast_target_activation, total_steps=total_steps,
                                 generator=generator, **kwargs)
    controller = PIController(cfg.ast_target_activation, kp=cfg.ast_kp, ki=cfg.ast_ki)
    if cfg.ast_strategy == "tokens":
        return TokenSelector(controller=controller, generator=generator)
    kwargs.setdefault("reference", getattr(cfg, "ast_reference", "window"))
    return make_selector(cfg.ast_strategy, controller=controller, generator=generator, **kwargs)  # type: ignore[return-value]
