"""Import of RNA-FM checkpoints (the ``rna-fm`` package, ``import fm``) as genesis-rna model directories.

RNA-FM is an ESM-1b encoder (``fm.BioBertModel`` with ``arch="roberta_large"``): learned absolute positions with
ESM's padding offset, a LayerNorm on the embeddings (``emb_layer_norm_before``), ESM token dropout, pre-LayerNorm
blocks with exact-erf GELU, a final LayerNorm and a RoBERTa LM head tied to the token embedding. genesis-rna's
encoder computes the same function once ``position_type="learned"``, ``embed_norm=True`` and ``token_dropout``
are set, so the conversion is a renaming of weights plus three reshapes:

* ``q_proj``, ``k_proj``, ``v_proj`` are stacked into the fused ``qkv`` projection (same head layout);
* the position table loses its first ``padding_idx + 1`` rows (ESM numbers real tokens from ``padding_idx + 1``;
  sequences are right-padded, so token ``t`` gets ESM row ``t + padding_idx + 1``, i.e. our row ``t``);
* the 25-token RNA-FM alphabet is reduced to genesis-rna's fixed 9 ids by selecting embedding rows (and the
  matching LM-head bias entries), see :data:`RNA_FM_TOKEN_FOR_ID`.

RNA-FM tokens without a genesis-rna id (``<unk>``, the IUPAC codes ``R Y K M S W B D H V``, the gap ``-`` and the
four ``<null_k>`` fillers) are dropped: genesis-rna normalises IUPAC codes to ``N`` and removes gaps before
tokenising, so those sequences embed with RNA-FM's ``N`` row where RNA-FM would use the code's own row. The
contact-prediction regression (``contact_head``) is dropped too. Like ``fm.pretrained``, the ``<mask>`` embedding
row is zeroed ("for token drop"); it is the ``[MASK]`` row here.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` with ``argparse.Namespace`` (the
checkpoint's ``args``) as the only extra allowed class. Anything else is a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import torch

from ..config import GenesisRNAConfig
from ..errors import CheckpointError, ConfigError

#: RNA-FM's single-nucleotide alphabet, ``fm.Alphabet.from_architecture("roberta_large", theme="rna")``.
RNA_FM_TOKENS: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "A", "C", "G", "U", "R", "Y", "K", "M", "S", "W", "B", "D", "H", "V", "N", "-",
    "<null_1>", "<null_2>", "<null_3>", "<null_4>", "<mask>",
)
#: The RNA-FM token behind each genesis-rna id 0..8 ([PAD] [MASK] [CLS] [SEP] A C G U N).
RNA_FM_TOKEN_FOR_ID: tuple[str, ...] = ("<pad>", "<mask>", "<cls>", "<eos>", "A", "C", "G", "U", "N")
#: RNA-FM token indices in genesis-rna id order: ``fm_logits[..., RNA_FM_INDEX_FOR_ID]`` are comparable to ours.
RNA_FM_INDEX_FOR_ID: tuple[int, ...] = tuple(RNA_FM_TOKENS.index(t) for t in RNA_FM_TOKEN_FOR_ID)
#: RNA-FM tokens that have no genesis-rna id and are dropped.
RNA_FM_DROPPED_TOKENS: tuple[str, ...] = tuple(t for t in RNA_FM_TOKENS if t not in RNA_FM_TOKEN_FOR_ID)

_PADDING_IDX = RNA_FM_TOKENS.index("<pad>")
_MASK_IDX = RNA_FM_TOKENS.index("<mask>")
_SUPPORTED_ARCH = "roberta_large"  # ESM-1b; "protein_bert_base" (ESM-1) has sinusoidal positions and bias_kv
_REQUIRED_ARGS = ("arch", "layers", "embed_dim", "ffn_embed_dim", "attention_heads", "max_positions")
_LAYER_KEYS = (
    "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
    "self_attn_layer_norm.weight", "self_attn_layer_norm.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
    "final_layer_norm.weight", "final_layer_norm.bias",
)
_TOP_KEYS = (
    "embed_tokens.weight", "embed_positions.weight", "emb_layer_norm_after.weight", "emb_layer_norm_after.bias",
    "lm_head.dense.weight", "lm_head.dense.bias", "lm_head.layer_norm.weight", "lm_head.layer_norm.bias",
    "lm_head.bias",
)
_OPTIONAL_KEYS = ("emb_layer_norm_before.weight", "emb_layer_norm_before.bias", "lm_head.weight",
                  "contact_head.regression.weight", "contact_head.regression.bias")
_MAX_LISTED = 6


def _listing(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (and {len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _weights_only_reason(exc: Exception) -> str:
    """The useful part of torch's multi-paragraph ``weights_only`` error, on one line."""
    text = " ".join(str(exc).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
        for end in (" Please use", " Check the documentation"):
            text = text.split(end, 1)[0]
    return text.strip().rstrip(".") or type(exc).__name__


def load_rna_fm_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read an RNA-FM ``.pth`` safely: ``(args as a dict, model state dict)``, names as ``fm.pretrained`` sees them.

    Only tensors, plain Python values and ``argparse.Namespace`` are loaded (``torch.load(weights_only=True)``);
    a file holding any other object is refused without running anything. Fairseq prefixes are stripped the way
    ``fm.pretrained`` strips them (``encoder_layers`` -> ``layers``, ``encoder.sentence_encoder.layers.0...`` ->
    ``layers.0...``, ``encoder.lm_head...`` -> ``lm_head...``).
    """
    source = os.fspath(path)
    if not os.path.exists(source):
        raise CheckpointError(f"{source}: no such file")
    if not os.path.isfile(source):
        raise CheckpointError(f"{source}: not a file; give the RNA-FM checkpoint (.pth) itself")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(source, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError from the zip reader...: all a bad file
        reason = _weights_only_reason(exc)
        if "Unsupported global" in reason:
            name = reason.split("GLOBAL", 1)[-1].split(" was not", 1)[0].strip()
            raise CheckpointError(f"{source}: refused: the file holds {name}, which an RNA-FM checkpoint never "
                                  "does (only tensors, plain values and argparse.Namespace are loaded; nothing "
                                  "was executed)") from None
        raise CheckpointError(f"{source}: not a PyTorch checkpoint ({reason})") from None
    if not isinstance(data, Mapping) or "model" not in data or "args" not in data:
        found = _listing(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
        raise CheckpointError(f"{source}: not an RNA-FM checkpoint: expected a dict with 'args' and 'model' "
                              f"(as RNA-FM_pretrained.pth), found {found or 'an empty dict'}")
    raw_args = data["args"]
    if isinstance(raw_args, argparse.Namespace):
        raw_args = vars(raw_args)
    if not isinstance(raw_args, Mapping):
        raise CheckpointError(f"{source}: 'args' is a {type(raw_args).__name__}, expected an argparse.Namespace")
    state = data["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: 'model' is not a state dict of tensors")
    args = {_strip_arg(str(k)): v for k, v in raw_args.items()}
    return args, {_strip_key(str(k)): v for k, v in state.items()}


def _strip_arg(name: str) -> str:
    # fm.pretrained: "".join(s.split("encoder_")[1:]) if "encoder" in s else s
    return "".join(name.split("encoder_")[1:]) if "encoder" in name else name


def _strip_key(key: str) -> str:
    # fm.pretrained: sentence_encoder. then encoder. prefixes, with the same split/join rule
    if "sentence_encoder" in key:
        key = "".join(key.split("sentence_encoder.")[1:])
    if "encoder" in key:
        key = "".join(key.split("encoder.")[1:])
    return key


def rna_fm_config(args: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str = "checkpoint"
                  ) -> GenesisRNAConfig:
    """The :class:`GenesisRNAConfig` that computes what ``fm.BioBertModel(args)`` with ``state`` computes."""
    missing = [name for name in _REQUIRED_ARGS if name not in args]
    if missing:
        raise CheckpointError(f"{source}: args lack {', '.join(missing)}; not an RNA-FM (ESM-1b) checkpoint")
    if args["arch"] != _SUPPORTED_ARCH:
        raise CheckpointError(f"{source}: unsupported architecture {args['arch']!r}; only RNA-FM's ESM-1b layout "
                              f"({_SUPPORTED_ARCH!r}) can be converted")
    if "embed_tokens.weight" in state and state["embed_tokens.weight"].dim() == 2:
        rows = state["embed_tokens.weight"].shape[0]
        if rows != len(RNA_FM_TOKENS):
            raise CheckpointError(f"{source}: the token embedding has {rows} rows, not the {len(RNA_FM_TOKENS)} of "
                                  "RNA-FM's nucleotide alphabet (mRNA-FM's codon vocabulary is not supported)")
    try:
        # dropout 0: fm.BioBertModel has no dropout at all (args.dropout is not used by it), so the converted
        # model computes what fm's does in train mode too; raise it for fine-tuning if wanted.
        return GenesisRNAConfig(
            vocab_size=len(RNA_FM_TOKEN_FOR_ID), d_model=int(args["embed_dim"]),
            n_heads=int(args["attention_heads"]), n_layers=int(args["layers"]), dim_ff=int(args["ffn_embed_dim"]),
            max_len=int(args["max_positions"]), dropout=0.0, attention_dropout=0.0,
            position_type="learned", norm_type="layernorm", layer_norm_eps=1e-5, activation="gelu",
            embed_norm=any(k.startswith("emb_layer_norm_before") for k in state),  # as fm.pretrained decides
            token_dropout=bool(args.get("token_dropout", False)),
            mlm_head=True, structure_head=False, pair_head=False, tie_word_embeddings=True, pad_token_id=0,
        )
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: args do not describe a usable model ({exc})") from None


def convert_rna_fm_state(args: Mapping[str, Any], state: Mapping[str, torch.Tensor], config: GenesisRNAConfig,
                         source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """RNA-FM weights (names as :func:`load_rna_fm_checkpoint` returns them) -> genesis-rna state dict (fp32)."""
    n, d, ff = config.n_layers, config.d_model, config.dim_ff
    expected = set(_TOP_KEYS) | {f"layers.{i}.{k}" for i in range(n) for k in _LAYER_KEYS}
    missing = expected - set(state)
    unexpected = set(state) - expected - set(_OPTIONAL_KEYS)
    if missing or unexpected:
        parts = [f"{label} {_listing(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected))
                 if keys]
        raise CheckpointError(f"{source}: weights do not match an RNA-FM model with {n} layers: " + "; ".join(parts))
    shapes = {"embed_tokens.weight": (len(RNA_FM_TOKENS), d),
              "embed_positions.weight": (config.max_len + _PADDING_IDX + 1, d),
              "lm_head.dense.weight": (d, d), "lm_head.bias": (len(RNA_FM_TOKENS),)}
    for i in range(n):
        shapes.update({f"layers.{i}.self_attn.{p}_proj.weight": (d, d) for p in ("q", "k", "v", "out")})
        shapes.update({f"layers.{i}.fc1.weight": (ff, d), f"layers.{i}.fc2.weight": (d, ff)})
    wrong = [f"{k} {tuple(state[k].shape)} (expected {v})" for k, v in shapes.items() if tuple(state[k].shape) != v]
    if wrong:
        raise CheckpointError(f"{source}: tensor shapes do not match the args: {_listing(wrong)}")

    def get(key: str) -> torch.Tensor:
        return state[key].detach().to(torch.float32)

    embed = get("embed_tokens.weight").clone()
    if "lm_head.weight" in state and not torch.equal(get("lm_head.weight"), embed):
        raise CheckpointError(f"{source}: lm_head.weight differs from embed_tokens.weight; RNA-FM ties them")
    embed[_MASK_IDX].zero_()  # fm.pretrained does this "for token drop"; the LM head shares the row
    index = torch.tensor(RNA_FM_INDEX_FOR_ID)
    out = {
        "encoder.embed_tokens.weight": embed[index],
        "encoder.embed_positions.weight": get("embed_positions.weight")[_PADDING_IDX + 1:],
        "encoder.final_norm.weight": get("emb_layer_norm_after.weight"),
        "encoder.final_norm.bias": get("emb_layer_norm_after.bias"),
        "mlm_head.dense.weight": get("lm_head.dense.weight"),
        "mlm_head.dense.bias": get("lm_head.dense.bias"),
        "mlm_head.norm.weight": get("lm_head.layer_norm.weight"),
        "mlm_head.norm.bias": get("lm_head.layer_norm.bias"),
        "mlm_head.decoder.bias": get("lm_head.bias")[index],
    }
    if config.embed_norm:
        out["encoder.embed_norm.weight"] = get("emb_layer_norm_before.weight")
        out["encoder.embed_norm.bias"] = get("emb_layer_norm_before.bias")
    for i in range(n):
        src, dst = f"layers.{i}.", f"encoder.layers.{i}."
        for part in ("weight", "bias"):
            out[f"{dst}attn.qkv.{part}"] = torch.cat([get(f"{src}self_attn.{p}_proj.{part}") for p in "qkv"])
            out[f"{dst}attn.out_proj.{part}"] = get(f"{src}self_attn.out_proj.{part}")
            out[f"{dst}attn_norm.{part}"] = get(f"{src}self_attn_layer_norm.{part}")
            out[f"{dst}ffn_norm.{part}"] = get(f"{src}final_layer_norm.{part}")
            out[f"{dst}ffn.fc_in.{part}"] = get(f"{src}fc1.{part}")
            out[f"{dst}ffn.fc_out.{part}"] = get(f"{src}fc2.{part}")
    return {k: v.contiguous() for k, v in out.items()}


def convert_rna_fm(checkpoint: str | os.PathLike, output_dir: str | os.PathLike | None = None, *,
                   dtype: torch.dtype | None = None):
    """Convert an RNA-FM checkpoint; returns the :class:`GenesisRNAModel` (eval mode, fp32, CPU).

    With ``output_dir`` the model is also saved there (``config.json`` + ``model.safetensors``, ``dtype`` casts
    the stored weights), a directory every genesis-rna command accepts as ``--model``.

    >>> model = convert_rna_fm("RNA-FM_pretrained.pth", "rna-fm")   # doctest: +SKIP
    >>> model, tokenizer = genesis_rna.load("rna-fm")               # doctest: +SKIP
    """
    from .encoder import GenesisRNAModel

    source = os.fspath(checkpoint)
    if output_dir is not None and os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise CheckpointError(f"{os.fspath(output_dir)}: exists and is not a directory")
    args, state = load_rna_fm_checkpoint(source)
    config = rna_fm_config(args, state, source)
    converted = convert_rna_fm_state(args, state, config, source)
    model = GenesisRNAModel(config)
    model._load_checked(converted, strict=True, source=source)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir, dtype=dtype)
    return model


def summary(model, checkpoint: str | os.PathLike, output_dir: str | os.PathLike) -> str:
    """The CLI's one line about a conversion."""
    c = model.config
    return (f"converted RNA-FM {os.fspath(checkpoint)} ({c.n_layers} layers, {c.d_model} wide, {c.n_heads} heads, "
            f"{c.max_nucleotides} nt window, {model.num_parameters() / 1e6:.1f}M parameters) -> "
            f"{os.fspath(output_dir)}; {len(RNA_FM_DROPPED_TOKENS)} RNA-FM tokens without a genesis-rna id and "
            "the contact head were dropped")


__all__ = [
    "convert_rna_fm", "load_rna_fm_checkpoint", "rna_fm_config", "convert_rna_fm_state", "RNA_FM_TOKENS",
    "RNA_FM_TOKEN_FOR_ID", "RNA_FM_INDEX_FOR_ID", "RNA_FM_DROPPED_TOKENS",
]
