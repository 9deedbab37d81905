"""Executed-FLOP measurement for training steps, and the analytic count it is checked against.

AST's promise is fewer executed FLOPs, measured rather than estimated (docs/architecture.md), so the training loop counts
the operations it really runs with :class:`torch.utils.flop_counter.FlopCounterMode`: the scoring forward, the
forward and the backward of the (sub-)batch, each in its own section, plus a dense reference step on the full
batch for comparison.

One gap had to be closed. In torch 2.13 on CPU, ``F.scaled_dot_product_attention`` dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu`` (and ``..._for_cpu_backward``), for which
``FlopCounterMode`` has no formula, so attention counts 0 FLOPs (checked: forward 0, backward 0, with and
without a padding mask). Running the counted step under ``sdpa_kernel(SDPBackend.MATH)`` does make it count
(the math path decomposes into ``bmm``: ``4 B H T^2 Dh`` forward, ``8 B H T^2 Dh`` backward), but it would swap
the kernel, and so the numerics and speed, of exactly the steps being measured. Instead we give the counter the
missing formulas through its ``custom_mapping`` argument, reusing torch's own SDPA counts (the CPU ops take
``query, key, value`` and ``grad_out, query, key, value`` first, as the CUDA ones do); nothing global in torch
is modified. The forward count equals the math path's (``4 B H T^2 Dh``, tested). The backward count is that
of the kernel that really runs: a flash backward recomputes ``QK^T``, five matmuls (``10 B H T^2 Dh``) where the
math path's stored-probabilities backward has four (``8 B H T^2 Dh``). Ops without a formula (softmax, norms,
element-wise) count 0 in torch's convention, which is a few percent of a transformer's FLOPs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["FlopMeter", "flop_counter_mode", "analytic_step_flops", "attention_flops"]


def _cpu_attention_formulas() -> dict[Any, Any]:
    """Formulas for the CPU flash-attention ops that ``FlopCounterMode`` does not know (see module doc)."""
    aten = torch.ops.aten
    mapping: dict[Any, Any] = {}
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is not None and forward not in flop_counter.flop_registry:
        mapping[forward] = _sdpa_forward_formula
    if backward is not None and backward not in flop_counter.flop_registry:
        mapping[backward] = _sdpa_backward_formula
    return mapping


def _sdpa_forward_formula(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """``QK^T`` and ``PV``: ``4 B H T^2 Dh`` (torch's own SDPA count; arguments arrive as shapes)."""
    return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))


def _sdpa_backward_formula(grad_out_shape, query_shape, key_shape, value_shape, *args: Any, out_shape=None,
                           **kwargs: Any) -> int:
    """Five matmuls (the flash kernel recomputes ``QK^T``): ``10 B H T^2 Dh``, torch's own backward count."""
    return int(flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape))


def flop_counter_mode() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU scaled-dot-product attention."""
    return FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())


class FlopMeter:
    """FLOPs per named section (``score``, ``forward``, ``backward``, ``dense_forward``, ...) of one step.

    A disabled meter costs nothing: its sections are empty contexts, so the loop can always write
    ``with meter.section("forward"):`` and only pay for counting on the steps it samples.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.counts: dict[str, int] = {}

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with flop_counter_mode() as counter:
            yield
        self.counts[name] = self.counts.get(name, 0) + int(counter.get_total_flops())

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)


def attention_flops(batch: int, n_heads: int, length: int, head_dim: int) -> int:
    """Forward FLOPs of ``softmax(QK^T) V`` for one layer: two ``[T, Dh] x [Dh, T]``-sized matmuls per head."""
    return 4 * batch * n_heads * length * length * head_dim


def analytic_step_flops(config: Any, batch: int, length: int) -> dict[str, int]:
    """Matmul FLOPs of one dense forward and backward of :class:`~genesis_rna.model.encoder.GenesisRNAModel`.

    The usual ``2 * weights * tokens`` forward / ``4 * weights * tokens`` backward rule over every linear layer
    (blocks and heads; embeddings are look-ups), plus attention (``4 B H T^2 Dh`` per layer forward, twice that
    backward) and the pair head's ``[T, P] x [P, T]`` product. This is what ``6 * params * tokens`` refines; the
    FLOP-counter test checks the measured count against it.
    """
    d, ff, n_layers = config.d_model, config.dim_ff, config.n_layers
    ff_in = 2 * ff if config.activation == "swiglu" else ff
    per_token = n_layers * (4 * d * d + d * ff_in + ff * d)
    quadratic = n_layers * attention_flops(batch, config.n_heads, length, config.head_dim)
    if config.mlm_head:
        per_token += d * d + d * config.vocab_size
    if config.structure_head:
        per_token += d * d + d * config.structure_num_labels
    if config.pair_head:
        per_token += 2 * d * config.pair_head_dim
        quadratic += 2 * batch * length * length * config.pair_head_dim
    tokens = batch * length
    forward = 2 * per_token * tokens + quadratic
    return {"forward": forward, "backward": 2 * forward, "total": 3 * forward}
