"""The design document's name for :mod:`genesis_rna.ast`; it only re-exports that package."""

from .ast import (
    INSTALL_COMMAND,
    ASTBackendUnavailableError,
    ASTSampleSelector,
    EntropyStrategy,
    LossStrategy,
    PIController,
    RandomStrategy,
    SelectionResult,
    SelectionStrategy,
    SundewSelector,
    importance_from_outputs,
    make_selector,
    register_strategy,
    selector_from_training_config,
    selector_names,
    sundew_available,
)

__all__ = [
    "PIController", "ASTSampleSelector", "SundewSelector", "make_selector", "SelectionResult",
    "selector_from_training_config", "selector_names", "importance_from_outputs", "SelectionStrategy",
    "LossStrategy", "EntropyStrategy", "RandomStrategy", "register_strategy", "ASTBackendUnavailableError",
    "sundew_available", "INSTALL_COMMAND",
]
