"""Adaptive Sparse Training: choose the samples that still teach something; only they enter the backward pass.

Typical use in a training step::

    from genesis_rna.ast import make_selector, importance_from_outputs

    selector = make_selector("loss", target_activation=0.4)
    with torch.no_grad():
        scores = importance_from_outputs(model(**inputs), batch, loss_fn, selector)
    picked = selector.select(scores)
    sub = picked.gather(batch)                  # a smaller batch: real compute savings, no 0/1 loss mask
    loss_fn(model(sub["input_ids"], sub["attention_mask"]), sub).total.backward()

See :mod:`genesis_rna.ast.controller` for how the threshold is controlled and why it is scale-free.
"""

from ._factory import make_selector, selector_from_training_config, selector_names
from .controller import PIController
from .infobatch import InfoBatchSelector as InfoBatchSelector
from .selector import ASTSampleSelector, SelectionResult
from .strategies import (
    EntropyStrategy,
    LossStrategy,
    RandomStrategy,
    SelectionStrategy,
    importance_from_outputs,
    register_strategy,
)
from .strategies import RandomScoredStrategy as RandomScoredStrategy
from .sundew import INSTALL_COMMAND, ASTBackendUnavailableError, SundewSelector, sundew_available
from .tokens import TokenSelector as TokenSelector

# InfoBatchSelector, TokenSelector and RandomScoredStrategy are importable from here but kept out of __all__,
# which genesis_rna.ast mirrors name for name (reach them through make_selector by name).
__all__ = [
    "PIController", "ASTSampleSelector", "SundewSelector", "make_selector", "SelectionResult",
    "selector_from_training_config", "selector_names", "importance_from_outputs", "SelectionStrategy",
    "LossStrategy", "EntropyStrategy", "RandomStrategy", "register_strategy", "ASTBackendUnavailableError",
    "sundew_available", "INSTALL_COMMAND",
]
