"""The genesis-rna transformer encoder, its pretraining heads, and safetensors checkpoints.

Layout (names are the state-dict keys that checkpoints and converters rely on)::

    GenesisRNAModel
      encoder: GenesisRNAEncoder
        embed_tokens          nn.Embedding(vocab_size, d_model, padding_idx=pad_token_id)
        embed_structure       nn.Embedding(structure_num_labels + 1, d_model)   (use_structure_input only)
        embed_positions       nn.Embedding(max_len, d_model)                    (position_type="learned" only)
        sinusoidal.scale      scalar                                            (position_type="sinusoidal" only)
        embed_norm            norm on the summed embeddings                     (embed_norm only: ESM-1b imports)
        pairing_bias          conv_in, conv_out, layer_scale                    (pair_bias only)
        layers.{i}: TransformerBlock
          attn_norm, attn (qkv, out_proj), ffn_norm, ffn (fc_in, fc_out)
        final_norm
      mlm_head (dense, norm, decoder), structure_head (dense, norm, classifier),
      pair_head (q_proj, k_proj, bias, refiner.* when pair_conv_layers > 0)

Blocks are pre-norm (as ESM-2 and GPT-2): the residual stream is never normalised, which keeps deep stacks
trainable without warm-up tricks, and the final norm makes the last representation well scaled. Attention goes
through ``scaled_dot_product_attention`` so PyTorch picks the fastest kernel for the device; attention weights
are only computed explicitly when a caller asks for them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import GenesisRNAConfig
from ..errors import CheckpointError, ConfigError, InputError
from .heads import MLMHead, PairHead, PairingBias, StructureHead, build_norm
from .layers import (
    RotaryEmbedding,
    SinusoidalPositions,
    TransformerBlock,
    _pack_tokens,
    _unpack_tokens,
    key_padding_mask,
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MAX_LISTED_KEYS = 8


# ----------------------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------------------


#: ESM's training mask ratio (15% of tokens selected, 80% of those replaced by the mask token).
ESM_MASK_RATIO_TRAIN = 0.15 * 0.8


def esm_token_dropout(x: torch.Tensor, input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """ESM/RNA-FM token dropout (``config.token_dropout``): zero the ``[MASK]`` embeddings, then scale each
    sequence by ``(1 - 0.12) / (1 - its fraction of [MASK] tokens)``, padding excluded, as ``fm`` does in
    training and inference alike (the same operations in the same order, so fp32 results match bit for bit)."""
    from ..vocab import MASK_ID

    is_mask = input_ids == MASK_ID
    x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
    lengths = (input_ids != pad_token_id).sum(-1)
    observed = is_mask.sum(-1).float() / lengths
    return x * (1 - ESM_MASK_RATIO_TRAIN) / (1 - observed).to(x.dtype)[:, None, None]


class GenesisRNAEncoder(nn.Module):
    """Embeddings, ``n_layers`` pre-norm blocks and a final norm; ``[B, T]`` ids -> ``[B, T, d]``."""

    def __init__(self, config: GenesisRNAConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = bool(config.gradient_checkpointing)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        # Row ``structure_num_labels`` is "unknown": labels -100 (no structure) and absent labels map there.
        self.embed_structure = (nn.Embedding(config.structure_num_labels + 1, config.d_model)
                                if config.use_structure_input else None)
        self.embed_positions = (nn.Embedding(config.max_len, config.d_model)
                                if config.position_type == "learned" else None)
        self.sinusoidal = (SinusoidalPositions(config.d_model, config.max_len)
                           if config.position_type == "sinusoidal" else None)
        self.rotary = (RotaryEmbedding(config.head_dim, config.max_len, config.rotary_base)
                       if config.position_type == "rotary" else None)
        # ESM-1b's emb_layer_norm_before (imported RNA-FM checkpoints); absent, and out of the state dict, otherwise.
        self.embed_norm = (build_norm(config.norm_type, config.d_model, config.layer_norm_eps)
                           if config.embed_norm else None)
        self.dropout = nn.Dropout(config.dropout)
        self.pairing_bias = (PairingBias(config.n_heads, config.n_layers, config.pair_bias_channels)
                             if config.pair_bias else None)
        self.layers = nn.ModuleList(TransformerBlock(config, self.rotary) for _ in range(config.n_layers))
        self.final_norm = build_norm(config.norm_type, config.d_model, config.layer_norm_eps)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each block in the backward pass (saves activation memory for ~30% more compute)."""
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.gradient_checkpointing = False

    def _structure_ids(self, structure_labels: torch.Tensor | None, input_ids: torch.Tensor) -> torch.Tensor:
        unknown = self.config.structure_num_labels
        if structure_labels is None:
            return torch.full_like(input_ids, unknown)
        if structure_labels.shape != input_ids.shape:
            raise InputError(f"structure_labels shape {tuple(structure_labels.shape)} differs from input_ids "
                             f"shape {tuple(input_ids.shape)}")
        labels = structure_labels.long()
        if labels.numel() and int(labels.max()) >= unknown:
            raise InputError(f"structure label {int(labels.max())} out of range; labels are 0..{unknown - 1}, "
                             "or -100 for unknown")
        return torch.where(labels < 0, torch.full_like(labels, unknown), labels)

    def embed(self, input_ids: torch.Tensor, structure_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Token (+ structure) (+ absolute position) embeddings (then ``embed_norm``) after dropout: layer 0."""
        x = self.embed_tokens(input_ids)
        if self.config.token_dropout:
            x = esm_token_dropout(x, input_ids, self.config.pad_token_id)
        if self.embed_structure is not None:
            x = x + self.embed_structure(self._structure_ids(structure_labels, input_ids))
        length = input_ids.shape[1]
        if self.embed_positions is not None:
            x = x + self.embed_positions.weight[:length]
        elif self.sinusoidal is not None:
            x = x + self.sinusoidal(length, x.device, x.dtype)
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        return self.dropout(x)

    def _run_block(self, block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor | None, need_weights: bool,
                   positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, mask, need_weights, positions, use_reentrant=False)
        return block(x, mask, need_weights, positions)

    def token_drop_layers(self) -> tuple[int, int]:
        """``(first, last)`` 1-based blocks that run on the kept tokens only when ``token_keep`` is given: the
        middle half (a quarter of the blocks, at least one, run on every token before and after)."""
        n = len(self.layers)
        edge = max(1, n // 4)
        return edge + 1, n - edge

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                repr_layers: Iterable[int] = (), need_attentions: bool = False,
                structure_labels: torch.Tensor | None = None, token_keep: torch.Tensor | None = None
                ) -> dict[str, Any]:
        """Returns ``{"last_hidden_state", "representations", "attentions"?}``.

        ``repr_layers`` must already be non-negative (see :meth:`GenesisRNAModel.normalise_repr_layers`).
        Layers ``1..n_layers-1`` are raw block outputs (the residual stream); layer ``n_layers`` is after the
        final norm, as in ESM.

        ``token_keep`` ``[B, T]`` bool (token dropping, Hou et al. 2022): the middle blocks
        (:meth:`token_drop_layers`) run on the kept tokens only, packed to the left at their original rotary
        positions; dropped tokens skip them and rejoin, unchanged, for the last blocks. Only rotary (or no)
        positions are supported, and not together with ``repr_layers`` inside the dropped range or attentions.
        """
        wanted = set(repr_layers)
        mask = key_padding_mask(attention_mask)
        x = self.embed(input_ids, structure_labels)
        bias = self.pairing_bias(input_ids, x.dtype) if self.pairing_bias is not None else None
        if bias is not None and token_keep is not None:
            raise InputError("token dropping is not supported with the pairing attention bias")
        reps: dict[int, torch.Tensor] = {0: x} if 0 in wanted else {}
        attentions = []
        first, last = self.token_drop_layers() if token_keep is not None else (0, -1)
        if token_keep is not None:
            if need_attentions or any(first <= i < last for i in wanted):
                raise InputError("token_keep cannot be combined with attentions or representations of the "
                                 "token-dropping layers")
            if self.embed_positions is not None or self.sinusoidal is not None:
                raise InputError("token dropping needs rotary positions")
            if first > last:
                raise InputError(f"token dropping needs at least 3 blocks (a middle one to skip), this model has "
                                 f"{len(self.layers)}")
        full = None
        for index, block in enumerate(self.layers, start=1):
            if index == first:
                full = x
                keep = token_keep if attention_mask is None else token_keep & attention_mask.bool()
                x, positions, packed_mask, valid = _pack_tokens(x, keep)
            if first <= index <= last:
                x, weights = self._run_block(block, x, packed_mask, False, positions)
            else:
                x, weights = self._run_block(block, x, self._layer_mask(mask, bias, index - 1), need_attentions)
            if index == last:
                x = _unpack_tokens(full, x, positions, valid)
            if weights is not None:
                attentions.append(weights)
            if index in wanted and index != len(self.layers):
                reps[index] = x
        x = self.final_norm(x)
        if len(self.layers) in wanted:
            reps[len(self.layers)] = x
        out: dict[str, Any] = {"last_hidden_state": x, "representations": reps}
        if need_attentions:
            out["attentions"] = torch.stack(attentions, dim=1)
        return out

    def _layer_mask(self, mask: torch.Tensor | None, bias: torch.Tensor | None, layer: int) -> torch.Tensor | None:
        """The key-padding mask, or with a pairing bias the layer's additive mask (bias, -inf on padded keys)."""
        if bias is None:
            return mask
        layer_bias = bias * self.pairing_bias.layer_scale[layer].to(bias.dtype)[None, :, None, None]
        if mask is not None:
            layer_bias = layer_bias.masked_fill(~mask, float("-inf"))
        return layer_bias

    def num_parameters(self, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Unique parameters of ``module`` (tied weights count once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------------------------------------
# Full model
# ----------------------------------------------------------------------------------------------------------


class GenesisRNAModel(nn.Module):
    """Encoder plus the pretraining heads the config asks for (``mlm_head``, ``structure_head``, ``pair_head``).

    >>> model = GenesisRNAModel.from_pretrained("genesis-rna-small")      # doctest: +SKIP
    >>> out = model(batch["input_ids"], batch["attention_mask"], repr_layers=[-1])  # doctest: +SKIP
    >>> out["representations"][model.config.n_layers].shape                # [B, T, d_model]  # doctest: +SKIP
    """

    def __init__(self, config: GenesisRNAConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = GenesisRNAEncoder(config)
        norm = {"norm_type": config.norm_type, "eps": config.layer_norm_eps}
        self.mlm_head = MLMHead(config.d_model, config.vocab_size, **norm) if config.mlm_head else None
        self.structure_head = (StructureHead(config.d_model, config.structure_num_labels, **norm)
                               if config.structure_head else None)
        self.pair_head = (PairHead(config.d_model, config.pair_head_dim, config.pair_conv_layers,
                                   config.pair_conv_channels) if config.pair_head else None)
        self.init_weights()
        self.tie_weights()

    # -- initialisation -----------------------------------------------------------------------------------

    def init_weights(self, scale_residual: bool = True) -> None:
        """BERT initialisation: N(0, initializer_range) weights, zero biases, unit norms, zero padding row.

        With ``scale_residual`` the projections that write into the residual stream (``attn.out_proj`` and
        ``ffn.fc_out``) use std ``initializer_range / sqrt(2 * n_layers)`` (GPT-2), so the stream's variance
        at initialisation does not grow with depth.
        """
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
                if module.padding_idx is not None:
                    with torch.no_grad():
                        module.weight[module.padding_idx].zero_()
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        if scale_residual:
            residual_std = std / math.sqrt(2 * self.config.n_layers)
            for block in self.encoder.layers:
                nn.init.normal_(block.attn.out_proj.weight, 0.0, residual_std)
                nn.init.normal_(block.ffn.fc_out.weight, 0.0, residual_std)
        if self.pair_head is not None:
            nn.init.zeros_(self.pair_head.bias)
        if self.encoder.pairing_bias is not None:
            self.encoder.pairing_bias.reset_parameters()
        if self.encoder.sinusoidal is not None:
            nn.init.constant_(self.encoder.sinusoidal.scale, std * math.sqrt(2))

    def tie_weights(self) -> None:
        """Share the MLM decoder's weight with the token embedding when ``tie_word_embeddings``."""
        if self.mlm_head is not None and self.config.tie_word_embeddings:
            self.mlm_head.decoder.weight = self.encoder.embed_tokens.weight

    def _tied_keys(self) -> set[str]:
        if self.mlm_head is not None and self.config.tie_word_embeddings:
            return {"mlm_head.decoder.weight"}
        return set()

    # -- conveniences ---------------------------------------------------------------------------------------

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of (unique) parameters, heads included; ``self.encoder.num_parameters()`` for the encoder."""
        return count_parameters(self, trainable_only)

    @property
    def device(self) -> torch.device:
        return self.encoder.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.embed_tokens.weight.dtype

    def gradient_checkpointing_enable(self) -> None:
        self.encoder.gradient_checkpointing_enable()

    def gradient_checkpointing_disable(self) -> None:
        self.encoder.gradient_checkpointing_disable()

    def normalise_repr_layers(self, repr_layers: Iterable[int]) -> list[int]:
        """ESM convention: ``-1`` is the last layer (``n_layers + 1 + idx``); anything else out of range raises."""
        n = self.config.n_layers
        out = []
        for layer in repr_layers:
            if isinstance(layer, bool) or not isinstance(layer, int):
                raise InputError(f"repr_layers must be integers, got {layer!r}")
            if not -(n + 1) <= layer <= n:
                raise InputError(f"repr_layers: layer {layer} out of range; this model has layers 0..{n} "
                                 f"(0 = embeddings, {n} = final), or -{n + 1}..-1 counting from the end")
            out.append(layer % (n + 1))
        return out

    # -- forward --------------------------------------------------------------------------------------------

    def _validate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise InputError(f"input_ids must be a [batch, length] tensor, got {shape}")
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise InputError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
        length, limit = input_ids.shape[1], self.config.max_len
        if length == 0:
            raise InputError("input_ids has zero length; an encoded sequence has at least [CLS] and [SEP]")
        if length > limit:
            raise InputError(f"{length} tokens exceed this model's max_len of {limit} tokens ({limit - 2} "
                             "nucleotides plus [CLS] and [SEP]); split longer sequences into windows")
        if input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                bad = low if low < 0 else high
                raise InputError(f"token id {bad} outside the vocabulary (0..{self.config.vocab_size - 1}); "
                                 "encode sequences with RNATokenizer")
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise InputError(f"attention_mask shape {tuple(attention_mask.shape)} differs from input_ids shape "
                             f"{tuple(input_ids.shape)}")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        repr_layers: Iterable[int] = (),
        need_attentions: bool = False,
        structure_labels: torch.Tensor | None = None,
        return_pair_logits: bool = True,
        return_logits: bool = True,
        token_keep: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Run the encoder and heads on ``input_ids [B, T]`` (``[CLS] ... [SEP]`` plus right padding).

        Returns a dict with

        * ``last_hidden_state`` ``[B, T, d]``: the final normed output (free: it is computed anyway);
        * ``representations`` ``{layer: [B, T, d]}`` for ``repr_layers`` (keys normalised to ``0..n_layers``);
        * ``mlm_logits`` ``[B, T, V]``, ``struct_logits`` ``[B, T, C]``, ``pair_logits`` ``[B, T, T]`` for the
          heads the model has, unless ``return_logits=False`` (then no head runs); ``pair_logits`` also needs
          ``return_pair_logits``;
        * ``attentions`` ``[B, n_layers, n_heads, T, T]`` only when ``need_attentions``.

        ``attention_mask`` (1 = real token) defaults to ``input_ids != pad_token_id``. ``structure_labels``
        ``[B, T]`` (0..C-1, -100 unknown) are an input only when ``config.use_structure_input``; otherwise they
        are ignored. All outputs cover the full token axis; callers strip ``[CLS]``/``[SEP]``. ``token_keep``
        ``[B, T]`` bool lets the other tokens skip the middle blocks (token-level AST, see the encoder).
        """
        self._validate(input_ids, attention_mask)
        layers = self.normalise_repr_layers(repr_layers)
        if attention_mask is None:
            attention_mask = input_ids != self.config.pad_token_id
        out = self.encoder(input_ids, attention_mask, repr_layers=layers, need_attentions=need_attentions,
                           structure_labels=structure_labels, token_keep=token_keep)
        if return_logits:
            out.update(self._heads(out["last_hidden_state"], return_pair_logits, input_ids))
        return out

    def _heads(self, hidden: torch.Tensor, return_pair_logits: bool, input_ids: torch.Tensor
               ) -> dict[str, torch.Tensor]:
        logits = {}
        if self.mlm_head is not None:
            logits["mlm_logits"] = self.mlm_head(hidden)
        if self.structure_head is not None:
            logits["struct_logits"] = self.structure_head(hidden)
        if self.pair_head is not None and return_pair_logits:
            logits["pair_logits"] = self.pair_head(hidden, input_ids)
        return logits

    # -- checkpoints ----------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

        Both files are written under temporary names and renamed. Tied weights are stored once (safetensors
        refuses shared storage, and it halves nothing useful to store them twice); ``dtype`` (e.g.
        ``torch.bfloat16``) casts floating-point tensors, for small shipped weights.
        """
        from safetensors.torch import save_file

        from .._fileutil import atomic_path

        try:
            from .. import __version__
        except ImportError:  # the package's __init__ is being rewritten; never fail a save over a version string
            __version__ = "unknown"

        os.makedirs(directory, exist_ok=True)
        tied = self._tied_keys()
        tensors = {}
        for key, tensor in self.state_dict().items():
            if key in tied:
                continue
            tensor = tensor.detach()
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[key] = tensor.cpu().contiguous()
        metadata = {"format": "pt", "genesis_rna_version": str(__version__)}
        with atomic_path(os.path.join(directory, WEIGHTS_NAME), suffix=".safetensors") as tmp:
            save_file(tensors, tmp, metadata=metadata)
        self.config.save_json(os.path.join(directory, CONFIG_NAME))

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32, strict: bool = True) -> GenesisRNAModel:
        """Load a model directory (``config.json`` + ``model.safetensors``) or a shipped model by name.

        Never unpickles. With ``strict`` (default) any missing, unexpected or mis-shaped weight is a
        :class:`CheckpointError` listing them; without it, matching weights load and the rest keep their
        initialisation. Returns the model in eval mode on ``device`` in ``dtype``.
        """
        directory = _resolve_directory(name_or_dir)
        config = _load_config(directory)
        state = _load_safetensors(os.path.join(directory, WEIGHTS_NAME))
        model = cls(config)
        model._load_checked(state, strict, source=os.path.join(directory, WEIGHTS_NAME))
        return model.to(device=device, dtype=dtype).eval()

    def _load_checked(self, state: Mapping[str, torch.Tensor], strict: bool, source: str) -> None:
        expected = {k: v for k, v in self.state_dict().items() if k not in self._tied_keys()}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = sorted(f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
                            for k, v in expected.items() if k in state and state[k].shape != v.shape)
        problems = [f"{label}: {_first(keys)}" for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)) if keys]
        if strict and problems:
            raise CheckpointError(f"{source}: weights do not match the config: " + "; ".join(problems))
        loadable = {k: t.to(expected[k].dtype) for k, t in state.items()
                    if k in expected and t.shape == expected[k].shape}
        self.load_state_dict(loadable, strict=False)
        self.tie_weights()


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    return shown + (f" (and {len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else "")


def _resolve_directory(name_or_dir: str | os.PathLike) -> str:
    """A directory as given, else a shipped model's directory (:mod:`genesis_rna.model.registry`)."""
    from .registry import resolve_model_dir

    return os.fspath(resolve_model_dir(name_or_dir))


def _load_config(directory: str) -> GenesisRNAConfig:
    path = os.path.join(directory, CONFIG_NAME)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing; a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return GenesisRNAConfig.load_json(path)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def _load_safetensors(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing; a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # safetensors raises its own error types (and OSError); all mean a bad file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f"{path}: not a readable safetensors file ({reason})") from None


__all__ = ["GenesisRNAModel", "GenesisRNAEncoder", "count_parameters", "esm_token_dropout", "CONFIG_NAME",
           "WEIGHTS_NAME"]
