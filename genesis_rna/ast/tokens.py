"""Token-level AST (token dropping, Hou et al. 2022): unmasked tokens skip the middle blocks.

Every sample stays in the batch; inside it, the tokens that carry no masked-nucleotide target are the ones
that teach least (their MLM loss is not even computed), so most of them skip the middle blocks of the encoder
and rejoin, unchanged, for the last blocks (:meth:`genesis_rna.model.encoder.GenesisRNAEncoder.forward`,
``token_keep``). Masked tokens and ``[CLS]``/``[SEP]`` are always kept; among the other real tokens a uniformly
random share is kept, with the :class:`~genesis_rna.ast.controller.PIController` moving the quantile threshold so
that the kept fraction of real tokens tracks ``target_activation``. There is no scoring forward: the choice is
made from the batch alone, so a step costs the full first/last blocks and heads plus the middle blocks on the
kept tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..vocab import CLS_ID, IGNORE_INDEX, PAD_ID, SEP_ID
from .controller import PIController


class TokenSelector:
    """Which tokens of a batch run through the middle blocks; see the module docstring."""

    name = "tokens"
    needs_scores = False

    def __init__(self, target_activation: float = 0.5, controller: PIController | None = None,
                 generator: torch.Generator | None = None) -> None:
        self.controller = controller if controller is not None else PIController(target_activation)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(torch.initial_seed())
        self.kept = self.real = 0

    @property
    def target_activation(self) -> float:
        return self.controller.target_activation

    def select_tokens(self, batch: Mapping[str, Any]) -> tuple[Tensor, float]:
        """``(keep [B, T] bool, kept fraction of real tokens)``; updates the controller."""
        if "input_ids" not in batch:
            raise InputError("token-level AST needs batch['input_ids']")
        ids = batch["input_ids"]
        real = ids != PAD_ID
        if "attention_mask" in batch:
            real &= batch["attention_mask"].bool()
        forced = (ids == CLS_ID) | (ids == SEP_ID)
        if "mlm_labels" in batch:
            forced |= batch["mlm_labels"] != IGNORE_INDEX
        forced &= real
        u = torch.rand(ids.shape, generator=self.generator).to(ids.device)
        keep = forced | (real & (u > self.controller.threshold))
        n_real, n_kept = int(real.sum()), int(keep.sum())
        fraction = n_kept / max(n_real, 1)
        self.controller.update(min(max(fraction, 0.0), 1.0))
        self.kept += n_kept
        self.real += n_real
        return keep, fraction

    def stats(self) -> dict[str, float]:
        return {"token_keep_cumulative": self.kept / max(self.real, 1), "threshold": self.controller.threshold}

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.name, "controller": self.controller.state_dict(),
                "generator_state": self.generator.get_state().tolist(), "kept": self.kept, "real": self.real}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.generator.set_state(torch.tensor(state["generator_state"], dtype=torch.uint8))
        self.kept, self.real = int(state["kept"]), int(state["real"])

    def __repr__(self) -> str:
        return f"TokenSelector(target_activation={self.target_activation}, threshold={self.controller.threshold:.3f})"


__all__ = ["TokenSelector"]
