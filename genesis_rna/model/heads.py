"""Output heads of genesis-rna: pretraining heads and generic fine-tuning heads.

Pretraining heads (built by :class:`genesis_rna.model.encoder.GenesisRNAModel` from its config):

* :class:`MLMHead` -- masked-nucleotide logits over the vocabulary (decoder tied to the token embedding);
* :class:`StructureHead` -- per-token structure-context logits (``NONE STEM LOOP BULGE HAIRPIN``);
* :class:`PairHead` -- an exactly symmetric ``[B, T, T]`` map of base-pairing logits (bilinear, optionally
  refined by a small 2D residual conv net over outer products and the canonical-pairing map, :class:`PairConvRefiner`);
* :class:`PairingBias` -- not a head: the per-head attention bias computed from the sequence's canonical-pairing
  map (ERNIE-RNA's prior), added to the attention logits of every layer.

Fine-tuning heads (built by the fine-tuning code on top of the encoder's representations):
:class:`SequenceClassificationHead`, :class:`SequenceRegressionHead` (pooling ``mean``, ``cls`` or ``conv``:
:class:`ConvPool`), :class:`TokenClassificationHead`, :class:`TokenRegressionHead` and :class:`MutationEffectHead`.

All heads work on the full token axis ``[B, T, d]`` (``[CLS]`` and ``[SEP]`` included); callers that want
per-nucleotide rows strip the two specials, and pooled heads take a mask that says which rows to pool
(:func:`nucleotide_mask` gives the usual one: real nucleotides, no specials, no padding).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..vocab import CLS_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID

POOLINGS = ("mean", "cls", "conv")
CONV_WIDTH, CONV_KERNEL = 128, 9


def build_norm(norm_type: str, dim: int, eps: float = 1e-5) -> nn.Module:
    """``LayerNorm`` or ``RMSNorm`` by name, so the encoder and the heads share one switch."""
    if norm_type == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if norm_type == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ValueError(f"norm_type must be 'layernorm' or 'rmsnorm', got {norm_type!r}")


def nucleotide_mask(input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool mask of nucleotide positions: not ``[PAD]``, ``[CLS]`` or ``[SEP]``.

    ``[MASK]`` counts as a nucleotide position (it stands for one), so a masked input pools over the same rows.
    """
    return (input_ids != PAD_ID) & (input_ids != CLS_ID) & (input_ids != SEP_ID)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``hidden [B, T, d]`` over the rows where ``mask [B, T]`` is true -> ``[B, d]``.

    The sum is taken in float32 (bf16 sums of hundreds of rows lose digits) and cast back. A sequence with no
    selected row gives zeros rather than NaN, so one empty record cannot poison a batch.
    """
    if mask is None:
        return hidden.mean(dim=1)
    if mask.shape != hidden.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match hidden {tuple(hidden.shape[:2])}")
    weights = mask.to(torch.float32).unsqueeze(-1)
    total = (hidden.to(torch.float32) * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp_min(1.0)
    return (total / count).to(hidden.dtype)


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """``mean`` (masked mean, see :func:`masked_mean`) or ``cls`` (the row of ``[CLS]``, position 0).

    ``conv`` pooling has weights, so it lives in :class:`ConvPool`, not here.
    """
    if pooling == "mean":
        return masked_mean(hidden, mask)
    if pooling == "cls":
        return hidden[:, 0]
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")


class ConvPool(nn.Module):
    """Motif pooling: a 1-D convolution over the rows, ReLU, then masked max and mean -> ``[B, 2 * width]``.

    Why: binding sites and other short motifs decide many sequence labels wherever they occur; a mean over all
    rows dilutes one site among a hundred positions, while a convolution followed by a max finds it (as
    DeepBind-style CNNs do, here over language-model rows). Rows outside ``mask`` are zeroed before the
    convolution, so padding, ``[CLS]`` and ``[SEP]`` look like the convolution's own zero padding: the output is
    the same whether the specials are present (full fine-tuning) or stripped (cached frozen features).
    """

    def __init__(self, d_model: int, width: int = CONV_WIDTH, kernel: int = CONV_KERNEL) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, width, kernel, padding=kernel // 2)
        self.out_dim = 2 * width

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, d]`` and a ``[B, T]`` mask of the rows to use -> ``[B, 2 * width]`` (max then mean)."""
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        keep = mask.to(hidden.dtype).unsqueeze(-1)
        h = F.relu(self.conv((hidden * keep).transpose(1, 2))).transpose(1, 2)  # [B, T, width]
        top = h.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).amax(dim=1)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a sequence with no row: zeros
        return torch.cat([top, masked_mean(h, mask)], dim=-1)


def _mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``dropout -> Linear -> GELU -> dropout -> Linear``, or a plain linear probe when ``hidden_dim == 0``."""
    if hidden_dim == 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
        nn.Linear(hidden_dim, out_dim),
    )


class MLMHead(nn.Module):
    """``dense -> GELU -> norm -> decoder`` as in BERT/RoBERTa/ESM.

    The decoder's weight is a separate parameter here; :class:`~genesis_rna.model.encoder.GenesisRNAModel` replaces it
    with the token embedding's weight when ``tie_word_embeddings`` (the bias stays the head's own).
    """

    def __init__(self, d_model: int, vocab_size: int, *, norm_type: str = "layernorm", eps: float = 1e-5) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.norm = build_norm(norm_type, d_model, eps)
        self.decoder = nn.Linear(d_model, vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T, d] -> [B, T, vocab_size]`` logits."""
        return self.decoder(self.norm(F.gelu(self.dense(hidden))))


class StructureHead(nn.Module):
    """Per-token structure-context classifier: ``dense -> GELU -> norm -> linear`` to ``num_labels``.

    A hidden layer (rather than a linear probe) lets the last encoder layer stay general: the MLM head has the
    same shape, so neither pretraining task has to bend the shared representation alone.
    """

    def __init__(self, d_model: int, num_labels: int, *, norm_type: str = "layernorm", eps: float = 1e-5) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.norm = build_norm(norm_type, d_model, eps)
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T, d] -> [B, T, num_labels]`` logits."""
        return self.classifier(self.norm(F.gelu(self.dense(hidden))))


#: channels of :func:`pairing_features`
PAIRING_CHANNELS = ("AU", "GC", "GU", "stack_inner", "stack_outer", "too_close")
_A, _C, _G, _U = (NUCLEOTIDE_IDS[n] for n in "ACGU")


def pairing_features(input_ids: torch.Tensor, min_loop: int = 3) -> torch.Tensor:
    """``[B, T] -> [B, 6, T, T]`` float map of which positions *could* pair (see :data:`PAIRING_CHANNELS`).

    AU, GC and GU are the Watson-Crick and wobble pairs (symmetric, specials and N pair with nothing);
    ``stack_inner``/``stack_outer`` mark a canonical (i, j) whose neighbour pair (i+1, j-1) / (i-1, j+1) is
    canonical too, the seed of a helix; ``too_close`` marks ``|i - j| <= min_loop``, where no pair can close a
    hairpin. These are sequence facts, not predictions: what the model learns is how much to trust them.
    """
    ids = input_ids.long()
    a, c, g, u = ((ids == t).float() for t in (_A, _C, _G, _U))

    def sym(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x[:, :, None] * y[:, None, :] + y[:, :, None] * x[:, None, :]

    au, gc, gu = sym(a, u), sym(g, c), sym(g, u)
    canonical = au + gc + gu
    inner = torch.zeros_like(canonical)
    inner[:, :-1, 1:] = canonical[:, 1:, :-1]   # (i, j) <- canonical(i+1, j-1)
    outer = torch.zeros_like(canonical)
    outer[:, 1:, :-1] = canonical[:, :-1, 1:]   # (i, j) <- canonical(i-1, j+1)
    t = ids.shape[1]
    idx = torch.arange(t, device=ids.device)
    close = ((idx[:, None] - idx[None, :]).abs() <= min_loop).float() * real_pairs(ids)
    return torch.stack([au, gc, gu, canonical * inner, canonical * outer, close], dim=1)


def real_pairs(input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T, T]`` float: 1 where neither token is padding. Pair maps are zeroed outside it, so a padded
    sequence gets the same 2D convolutions as the same sequence alone (the conv's own zero padding)."""
    real = (input_ids != PAD_ID).float()
    return real[:, :, None] * real[:, None, :]


class PairingBias(nn.Module):
    """Attention bias ``[B, H, T, T]`` per layer from the canonical-pairing map (ERNIE-RNA's idea).

    A two-layer 3x3 conv turns :func:`pairing_features` into one bias map per head, shared by all layers and
    scaled per layer and head (``layer_scale``), so the prior is carried through the whole stack. The last conv
    starts at zero: an untrained model attends exactly as one without the bias.
    """

    def __init__(self, n_heads: int, n_layers: int, channels: int = 16) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(len(PAIRING_CHANNELS), channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, n_heads, 3, padding=1)
        self.layer_scale = nn.Parameter(torch.ones(n_layers, n_heads))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        nn.init.ones_(self.layer_scale)

    def forward(self, input_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The shared ``[B, H, T, T]`` map; layer ``l`` adds ``layer_scale[l][:, None, None] * map``."""
        feats = pairing_features(input_ids).to(self.conv_in.weight.dtype)
        real = real_pairs(input_ids).to(feats.dtype).unsqueeze(1)
        return self.conv_out(F.gelu(self.conv_in(feats)) * real).to(dtype)


class PairConvRefiner(nn.Module):
    """Residual 2D conv net over pair features: symmetric outer products of the hidden states plus
    :func:`pairing_features`, so the pair logits can use helix context (neighbouring pairs) that a bilinear
    form cannot see."""

    def __init__(self, d_model: int, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        self.left = nn.Linear(d_model, channels)
        self.right = nn.Linear(d_model, channels)
        self.stem = nn.Conv2d(channels + len(PAIRING_CHANNELS) + 1, channels, 1)
        self.blocks = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=2 ** (k % 3), dilation=2 ** (k % 3))
                                    for k in range(layers))
        self.out = nn.Conv2d(channels, 1, 1)

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """``base`` ``[B, T, T]`` (the bilinear logits) -> refined logits, same shape, exactly symmetric."""
        a, b = self.left(hidden), self.right(hidden)
        outer = torch.einsum("bic,bjc->bcij", a, b)
        x = torch.cat([outer + outer.transpose(-1, -2), pairing_features(input_ids).to(hidden.dtype),
                       base.unsqueeze(1)], dim=1)
        real = real_pairs(input_ids).to(hidden.dtype).unsqueeze(1)
        x = self.stem(x * real) * real
        for conv in self.blocks:
            x = x + conv(F.gelu(x)) * real
        z = self.out(F.gelu(x)).squeeze(1)
        return base + 0.5 * (z + z.transpose(-1, -2))


class PairHead(nn.Module):
    """Symmetric bilinear base-pairing logits.

    ``q = W_q h + b_q``, ``k = W_k h + b_k`` (both ``pair_dim`` wide) and
    ``logit[i, j] = (q_i . k_j + q_j . k_i) / (2 sqrt(pair_dim)) + bias``. Pairing is symmetric, so the
    output is made symmetric by construction (``S + S^T`` is bit-exactly symmetric in floating point), not
    learned to be. Two maps rather than one (``q_i . q_j``) keep the form indefinite, so a position can score
    low against itself and high against its complement.
    """

    def __init__(self, d_model: int, pair_dim: int = 64, conv_layers: int = 0, conv_channels: int = 16) -> None:
        super().__init__()
        self.pair_dim = pair_dim
        self.q_proj = nn.Linear(d_model, pair_dim)
        self.k_proj = nn.Linear(d_model, pair_dim)
        self.bias = nn.Parameter(torch.zeros(()))
        self.refiner = PairConvRefiner(d_model, conv_channels, conv_layers) if conv_layers else None

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, d] -> [B, T, T]`` logits, ``out[b, i, j] == out[b, j, i]`` exactly.

        ``input_ids`` are needed when the head has a conv refiner (it reads the canonical-pairing map).
        """
        q = self.q_proj(hidden)
        k = self.k_proj(hidden)
        scores = torch.matmul(q, k.transpose(-1, -2))
        scale = 1.0 / (2.0 * math.sqrt(self.pair_dim))
        logits = (scores + scores.transpose(-1, -2)) * scale + self.bias.to(scores.dtype)
        if self.refiner is None:
            return logits
        if input_ids is None:
            raise ValueError("this pair head refines with the canonical-pairing map: pass input_ids")
        return self.refiner(hidden, input_ids, logits)


class SequenceClassificationHead(nn.Module):
    """Pooled sequence classifier: pool (``mean`` over ``mask``, ``cls``, or ``conv``) then an MLP to ``num_labels``.

    ``hidden_dim=None`` uses ``d_model``; ``hidden_dim=0`` is a linear probe (what representation benchmarks
    report). ``conv`` (:class:`ConvPool`) reads every row, so frozen fine-tuning caches per-token features for it.
    """

    def __init__(self, d_model: int, num_labels: int, *, pooling: str = "mean", hidden_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.conv_pool = ConvPool(d_model) if pooling == "conv" else None
        in_dim = self.conv_pool.out_dim if self.conv_pool is not None else d_model
        self.mlp = _mlp(in_dim, d_model if hidden_dim is None else hidden_dim, num_labels, dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, d]`` (and ``[B, T]`` mask for mean / conv pooling) -> ``[B, num_labels]`` logits."""
        if self.conv_pool is not None:
            return self.mlp(self.conv_pool(hidden, mask))
        return self.mlp(pool(hidden, mask, self.pooling))


class SequenceRegressionHead(SequenceClassificationHead):
    """Pooled sequence regressor -> ``[B, num_outputs]`` (kept 2-D even for one output, so shapes never change)."""

    def __init__(self, d_model: int, num_outputs: int = 1, *, pooling: str = "mean", hidden_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__(d_model, num_outputs, pooling=pooling, hidden_dim=hidden_dim, dropout=dropout)


class ResidualConvStack(nn.Module):
    """``[B, T, d_in] -> [B, T, width]``: a 1x1 projection, then ``layers`` residual blocks of
    ``conv(kernel) -> GELU -> dropout`` each followed by LayerNorm; rows outside ``mask`` are held at zero.

    Why: a per-position head sees only its own row; this gives it ``layers * (kernel - 1)`` nucleotides of local
    context, the same stack whether the rows are one-hot vectors (the no-LM baseline) or language-model rows.
    ``layers=0`` is the identity.
    """

    def __init__(self, d_in: int, width: int = CONV_WIDTH, layers: int = 3, kernel: int = CONV_KERNEL,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.n_conv, self.kernel = layers, kernel
        self.width = width if layers else d_in
        self.input = nn.Conv1d(d_in, width, 1) if layers else None
        self.convs = nn.ModuleList(nn.Conv1d(width, width, kernel, padding=kernel // 2) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.input is None:
            return x
        keep = (torch.ones(x.shape[:2], device=x.device) if mask is None else mask.to(x.dtype)).unsqueeze(1)
        h = self.input(x.transpose(1, 2)) * keep
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + self.dropout(F.gelu(conv(h))) * keep
            h = norm(h.transpose(1, 2)).transpose(1, 2) * keep
        return h.transpose(1, 2)


class TokenClassificationHead(nn.Module):
    """Per-token classifier ``[B, T, d] -> [B, T, num_labels]`` (``hidden_dim=0``: linear probe).

    ``context_layers > 0`` puts a :class:`ResidualConvStack` (width 128, kernel 9) before the MLP, so each
    position also reads its neighbours' rows; pass the ``[B, T]`` mask of real rows then.
    """

    def __init__(self, d_model: int, num_labels: int, *, hidden_dim: int | None = None, dropout: float = 0.1,
                 context_layers: int = 0) -> None:
        super().__init__()
        self.context = ResidualConvStack(d_model, layers=context_layers, dropout=dropout) if context_layers else None
        width = self.context.width if self.context is not None else d_model
        self.mlp = _mlp(width, width if hidden_dim is None else hidden_dim, num_labels, dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.context is not None:
            hidden = self.context(hidden, mask)
        return self.mlp(hidden)


class TokenRegressionHead(TokenClassificationHead):
    """Per-token regressor ``[B, T, d] -> [B, T, num_outputs]`` (e.g. reactivity profiles)."""

    def __init__(self, d_model: int, num_outputs: int = 1, *, hidden_dim: int | None = None,
                 dropout: float = 0.1, context_layers: int = 0) -> None:
        super().__init__(d_model, num_outputs, hidden_dim=hidden_dim, dropout=dropout, context_layers=context_layers)


class MutationEffectHead(nn.Module):
    """Scores a variant from wild-type and mutant representations -> ``[B]``.

    Features: ``[m_wt, m_mut, m_mut - m_wt]`` where ``m`` is the masked mean over each sequence's own mask
    (so insertions and deletions work: the two sequences may differ in length). With
    ``use_site_features=True`` the forward also takes ``site_mask`` (the substituted positions, same indexing
    in both sequences) and the same three features of the site rows are appended: a point mutation's signal is
    diluted 1/L in a whole-sequence mean, but not at its site.

    ``antisymmetric=True`` (default) returns ``(g(wt, mut) - g(mut, wt)) / 2``: swapping wild type and mutant
    negates the score and an unchanged sequence scores exactly 0, the right prior for effects measured
    relative to the wild type (fitness log-ratios, ddG). Set it False for absolute targets.
    """

    def __init__(self, d_model: int, *, hidden_dim: int | None = None, dropout: float = 0.1,
                 antisymmetric: bool = True, use_site_features: bool = False) -> None:
        super().__init__()
        self.antisymmetric = antisymmetric
        self.use_site_features = use_site_features
        in_dim = 3 * d_model * (2 if use_site_features else 1)
        self.mlp = _mlp(in_dim, d_model if hidden_dim is None else hidden_dim, 1, dropout)

    @staticmethod
    def _features(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b, b - a], dim=-1)

    def _score(self, wt: list[torch.Tensor], mut: list[torch.Tensor]) -> torch.Tensor:
        feats = torch.cat([self._features(a, b) for a, b in zip(wt, mut, strict=True)], dim=-1)
        return self.mlp(feats).squeeze(-1)

    def forward(self, wt_hidden: torch.Tensor, mut_hidden: torch.Tensor, wt_mask: torch.Tensor | None = None,
                mut_mask: torch.Tensor | None = None, site_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``wt_hidden [B, Tw, d]``, ``mut_hidden [B, Tm, d]`` (masks ``[B, Tw]``, ``[B, Tm]``) -> ``[B]``."""
        wt = [masked_mean(wt_hidden, wt_mask)]
        mut = [masked_mean(mut_hidden, mut_mask)]
        if self.use_site_features:
            if site_mask is None:
                raise ValueError("this MutationEffectHead was built with use_site_features=True; pass site_mask")
            if wt_hidden.shape != mut_hidden.shape:
                raise ValueError("site features need wild type and mutant of equal length (substitutions only)")
            wt.append(masked_mean(wt_hidden, site_mask))
            mut.append(masked_mean(mut_hidden, site_mask))
        forward_score = self._score(wt, mut)
        if not self.antisymmetric:
            return forward_score
        return 0.5 * (forward_score - self._score(mut, wt))


__all__ = [
    "MLMHead", "StructureHead", "PairHead", "MutationEffectHead", "ConvPool", "ResidualConvStack",
    "SequenceClassificationHead",
    "SequenceRegressionHead", "TokenClassificationHead", "TokenRegressionHead", "masked_mean", "nucleotide_mask",
    "build_norm", "pool",
]
