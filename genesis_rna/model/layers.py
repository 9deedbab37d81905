"""The transformer's layers: rotary and sinusoidal positions, self-attention (PyTorch's scaled_dot_product_attention,
optional pairing bias, token packing for token-level AST), the feed-forward block and the pre-norm block."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..config import GenesisRNAConfig
from ..errors import ConfigError
from .heads import build_norm

# ----------------------------------------------------------------------------------------------------------
# Positions
# ----------------------------------------------------------------------------------------------------------

__all__ = ["TransformerBlock", "MultiHeadSelfAttention", "FeedForward", "RotaryEmbedding", "SinusoidalPositions",
           "rotate_half", "sinusoidal_table", "key_padding_mask"]

def _positions_fp32(length: int, device: torch.device) -> torch.Tensor:
    return torch.arange(length, device=device, dtype=torch.float32)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last axis (the GPT-NeoX / HF layout of rotary pairs)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer), rotate-half layout, applied to queries and keys.

    Rotating q at position m and k at position n by angles proportional to m and n makes ``q . k`` a function
    of ``m - n`` only, so attention sees relative positions with no parameters. cos/sin tables are computed in
    float32 for ``max_len`` positions once per (device, dtype) and kept as plain attributes, not buffers: they
    never enter the state dict, and ``model.to(torch.bfloat16)`` cannot degrade the float32 master table.
    """

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary positions need an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.max_len = max_len
        self.base = float(base)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._cache:
            # Built outside inference mode and autocast: a table first built under torch.inference_mode() must
            # still be usable by a later training step, and float32 angles must not be cast to bf16.
            with torch.inference_mode(False), torch.no_grad(), torch.autocast(device.type, enabled=False):
                exponent = torch.arange(0, self.head_dim, 2, device=device, dtype=torch.float32) / self.head_dim
                inv_freq = 1.0 / (self.base ** exponent)
                angles = _positions_fp32(self.max_len, device)[:, None] * inv_freq[None, :]
                angles = torch.cat((angles, angles), dim=-1)  # [max_len, head_dim]
                self._cache[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
        return self._cache[key]

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q, k [B, H, T, head_dim]`` by their positions ``0..T-1``, or by ``positions`` ``[B, T]``
        (the original positions of a packed subset of tokens, see token dropping in :class:`GenesisRNAEncoder`)."""
        length = q.shape[-2]
        cos, sin = self._table(q.device, q.dtype)
        if positions is None:
            cos, sin = cos[:length], sin[:length]
        else:
            cos, sin = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)  # [B, 1, T, head_dim]
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin

    def rotate_stacked(self, qk: torch.Tensor) -> torch.Tensor:
        """Rotate queries and keys stacked as ``qk [2, B, H, T, head_dim]`` in three kernels instead of twelve.

        Same function as :meth:`forward` without ``positions``: ``rotate_half(x) * sin`` is written as the two
        halves swapped times a sign-folded sine table, and the final multiply-add is one ``addcmul``. Inference
        is bound by memory traffic on these small tensors, so fewer passes are what saves time.
        """
        length, half = qk.shape[-2], self.head_dim // 2
        cos, signed_sin = self._signed_table(qk.device, qk.dtype)
        cos, signed_sin = cos[:length], signed_sin[:length]
        swapped = torch.cat((qk[..., half:], qk[..., :half]), dim=-1)
        return torch.addcmul(qk * cos, swapped, signed_sin)

    def _signed_table(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin with its first half negated)``: ``rotate_half(x) * sin == swap_halves(x) * signed_sin``."""
        key = ("signed", device, dtype)
        if key not in self._cache:
            cos, sin = self._table(device, dtype)
            half = self.head_dim // 2
            with torch.inference_mode(False), torch.no_grad():
                self._cache[key] = (cos, torch.cat((-sin[:, :half], sin[:, half:]), dim=-1))
        return self._cache[key]


def sinusoidal_table(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Vaswani et al. positions ``[length, dim]``: sin on even, cos on odd channels, float32."""
    position = _positions_fp32(length, device or torch.device("cpu"))[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=position.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=position.device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : dim // 2]
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal absolute positions times one learned scale (the "scaled sinusoidal" of x-transformers).

    The raw table has unit amplitude while BERT-initialised token embeddings have std ``initializer_range``
    (0.02): added unscaled, positions would drown the nucleotide identities at initialisation. The scale starts
    at ``initializer_range * sqrt(2)`` (so both have the same RMS) and is learned. The table itself is cached in
    float32 per (device, dtype) like :class:`RotaryEmbedding`'s, outside the state dict.
    """

    def __init__(self, dim: int, max_len: int, init_scale: float = 0.02 * math.sqrt(2)) -> None:
        super().__init__()
        self.dim = dim
        self.max_len = max_len
        self.scale = nn.Parameter(torch.tensor(float(init_scale)))
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def forward(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._cache:
            with torch.inference_mode(False), torch.no_grad():  # see RotaryEmbedding._table
                self._cache[key] = sinusoidal_table(self.max_len, self.dim, device).to(dtype)
        return self._cache[key][:length] * self.scale.to(dtype)


# ----------------------------------------------------------------------------------------------------------
# Attention and blocks
# ----------------------------------------------------------------------------------------------------------


def _pack_tokens(x: torch.Tensor, keep: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Kept tokens of each row moved to the left of a ``[B, K, d]`` tensor (``K`` = most kept in a row).

    Returns ``(packed, positions [B, K], key mask or None, valid [B, K])``; padding slots repeat the row's
    last kept token (masked as keys, and not scattered back: see :func:`_unpack_tokens`).
    """
    keep = keep.bool()
    counts = keep.sum(1)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]  # kept positions first, in order
    slots = torch.arange(width, device=x.device)
    valid = slots[None, :] < counts[:, None]
    last_kept = order.gather(1, (counts - 1).clamp_min(0)[:, None])
    gather = torch.where(valid, order, last_kept)
    packed = x.gather(1, gather.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return packed, gather, key_padding_mask(valid), valid


def _unpack_tokens(full: torch.Tensor, packed: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor
                   ) -> torch.Tensor:
    """``full`` with the valid packed slots written back at their positions (out of place, differentiable)."""
    rows = torch.arange(full.shape[0], device=full.device)[:, None].expand_as(positions)
    return full.index_put((rows[valid], positions[valid]), packed[valid])


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, T]`` (1 = real) -> bool ``[B, 1, 1, T]`` key mask for SDPA, or ``None`` when nothing is padded.

    Only keys are masked: padded query rows still attend to the real keys, so every row has a finite softmax.
    A row with no real key at all (an all-padding sequence) is left unmasked for the same reason; its output is
    meaningless but finite. ``None`` lets SDPA use its fastest unmasked kernels.
    """
    if attention_mask is None:
        return None
    mask = attention_mask.bool()
    if bool(mask.all()):
        return None
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask[:, None, None, :]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with a fused QKV projection, optional rotary positions, and SDPA.

    ``forward(x, mask, need_weights)`` returns ``(output [B, T, d], weights [B, H, T, T] or None)``. Weights are
    only materialised when asked for, through an explicit ``softmax(QK^T / sqrt(d_head))`` path that computes the
    same function as the SDPA path (up to float rounding).
    """

    def __init__(self, d_model: int, n_heads: int, *, dropout: float = 0.0, rotary: RotaryEmbedding | None = None
                 ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        # One RotaryEmbedding is shared by all layers (it has no parameters; one cos/sin table serves them all).
        self.rotary = rotary

    def _split_heads(self, x: torch.Tensor, positions: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary is not None and positions is None:
            q, k = self.rotary.rotate_stacked(qkv[:2]).unbind(0)
            return q, k, qkv[2]
        q, k, v = qkv.unbind(0)  # each [B, H, T, head_dim]
        if self.rotary is not None:
            q, k = self.rotary(q, k, positions)
        return q, k, v

    def _explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.matmul(q, k.transpose(-1, -2)).float() * (1.0 / math.sqrt(self.head_dim))
        if mask is not None and mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        elif mask is not None:  # an additive float mask: attention bias with -inf on padded keys
            scores = scores + mask.float()
        weights = scores.softmax(dim=-1).to(v.dtype)
        dropped = F.dropout(weights, p=self.dropout, training=self.training)
        return torch.matmul(dropped, v), weights

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self._split_heads(x, positions)
        weights = None
        if need_weights:
            out, weights = self._explicit(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        batch, _, length, _ = out.shape
        out = out.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)
        return self.out_proj(out), weights


class FeedForward(nn.Module):
    """``fc_in -> activation -> dropout -> fc_out``; for SwiGLU ``fc_in`` is fused (gate and value, ``2 * dim_ff``).

    SwiGLU therefore has ``3 * d * dim_ff`` weights against ``2 * d * dim_ff`` for GELU/ReLU; pick ``dim_ff``
    about 2/3 as large to compare at equal size.
    """

    def __init__(self, d_model: int, dim_ff: int, activation: str = "gelu", dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ("gelu", "relu", "swiglu"):
            raise ConfigError(f"activation must be gelu, relu or swiglu, got {activation!r}")
        self.activation = activation
        self.fc_in = nn.Linear(d_model, 2 * dim_ff if activation == "swiglu" else dim_ff)
        self.fc_out = nn.Linear(dim_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc_in(x)
        # Without autograd the activation overwrites fc_in's output: the widest tensor of the block is then
        # allocated (and its fresh pages faulted in) once instead of twice, which is ~5-10% of a CPU forward.
        inplace = not h.requires_grad
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate, inplace=inplace).mul_(value) if inplace else F.silu(gate) * value
        elif self.activation == "gelu":
            h = torch.ops.aten.gelu_(h) if inplace else F.gelu(h)
        else:
            h = F.relu(h, inplace=inplace)
        return self.fc_out(self.dropout(h))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + drop(attn(norm(x)))`` then ``x + drop(ffn(norm(x)))``."""

    def __init__(self, config: GenesisRNAConfig, rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.attn_norm = build_norm(config.norm_type, config.d_model, config.layer_norm_eps)
        self.attn = MultiHeadSelfAttention(config.d_model, config.n_heads, dropout=config.attention_dropout,
                                           rotary=rotary)
        self.ffn_norm = build_norm(config.norm_type, config.d_model, config.layer_norm_eps)
        self.ffn = FeedForward(config.d_model, config.dim_ff, config.activation, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, weights = self.attn(self.attn_norm(x), mask, need_weights, positions)
        x = x + self.dropout(attn_out)
        x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        return x, weights
