"""Model and training configuration: dataclasses validated on creation, presets, YAML and JSON round trips.

``GenesisRNAConfig`` is what a model directory's ``config.json`` holds; ``TrainingConfig`` is what a run's
``config.yaml`` holds. Both reject bad values when constructed, so a typo in a YAML file fails before any
compute is spent.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import yaml

from ._fileutil import atomic_write
from .errors import ConfigError

POSITION_TYPES = ("rotary", "learned", "sinusoidal")
NORM_TYPES = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "relu", "swiglu")

#: (d_model, n_layers, n_heads, dim_ff) of the named presets, fixed by docs/architecture.md.
PRESETS: dict[str, dict[str, int]] = {
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4, "dim_ff": 1024},
    "base": {"d_model": 512, "n_layers": 8, "n_heads": 8, "dim_ff": 2048},
    "large": {"d_model": 768, "n_layers": 12, "n_heads": 12, "dim_ff": 3072},
}


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _from_mapping(cls, data: dict[str, Any], source: str):
    """Build a dataclass from a dict, naming unknown keys instead of failing with a TypeError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    types = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)} for {cls.__name__}")
    data = {key: _coerce(value, types[key], key, source) for key, value in data.items()}
    try:
        return cls(**data)
    except TypeError as exc:  # wrong types that __post_init__ could not coerce
        raise ConfigError(f"{source}: {exc}") from None


def _coerce(value: Any, type_name: str, key: str, source: str) -> Any:
    """Accept what YAML users write: ``5e-4`` (a string to YAML 1.1) or ``1`` for a float field."""
    if type_name == "float" and isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None
    if type_name == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    expected = {"int": int, "float": float, "bool": bool, "str": str}.get(type_name)
    if expected is not None and not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be of type {type_name}, got {value!r}")
    return value


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


class _YamlMixin:
    """YAML/JSON load and save shared by both configs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def save_yaml(self, path: str | os.PathLike) -> None:
        _atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config"):
        return _from_mapping(cls, data, source)

    @classmethod
    def load_yaml(cls, path: str | os.PathLike):
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        return cls.from_dict(data or {}, source=os.fspath(path))

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass
class GenesisRNAConfig(_YamlMixin):
    """Architecture of a genesis-rna encoder and its heads.

    ``max_len`` counts tokens including ``[CLS]`` and ``[SEP]``, so one window holds ``max_len - 2``
    nucleotides; longer sequences are embedded in overlapping windows by the inference code.

    ``embed_norm`` adds a norm (``norm_type``) on the summed embeddings before the first block (ESM-1b's
    ``emb_layer_norm_before``). ``token_dropout`` is ESM's token dropout, applied in training and inference
    alike: ``[MASK]`` embeddings are zeroed and every sequence's token embeddings are scaled by
    ``(1 - 0.15 * 0.8) / (1 - its fraction of [MASK] tokens)`` (padding excluded). Both exist so that imported
    RNA-FM checkpoints compute exactly what they computed in ``fm`` (see ``docs/rna_fm.md``).
    """

    vocab_size: int = 9
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 4
    dim_ff: int = 1024
    max_len: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    structure_num_labels: int = 5
    position_type: str = "rotary"
    rotary_base: float = 10000.0
    norm_type: str = "layernorm"
    layer_norm_eps: float = 1e-5
    # Options for imported ESM-1b-style checkpoints (RNA-FM, see genesis_rna.model.rna_fm); off for native models.
    embed_norm: bool = False
    token_dropout: bool = False
    activation: str = "gelu"
    use_structure_input: bool = False
    mlm_head: bool = True
    structure_head: bool = True
    pair_head: bool = True
    pair_head_dim: int = 64
    # Structure-aware options (v2): attention bias from the canonical-pairing map, 2D conv refiner of the pair head.
    pair_bias: bool = False
    pair_bias_channels: int = 16
    pair_conv_layers: int = 0
    pair_conv_channels: int = 16
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02
    pad_token_id: int = 0
    gradient_checkpointing: bool = False
    model_type: str = "genesis-rna"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "dim_ff", "max_len",
                     "structure_num_labels", "pair_head_dim", "pair_bias_channels", "pair_conv_channels"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                   f"{name} must be a positive integer, got {value!r}")
        _check(0 <= self.pad_token_id < self.vocab_size,
               f"pad_token_id must be a valid token id below vocab_size, got {self.pad_token_id}")
        _check(self.vocab_size >= 9, f"vocab_size must be at least 9 (the fixed vocabulary), got {self.vocab_size}")
        _check(self.d_model % self.n_heads == 0,
               f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        _check(self.position_type != "rotary" or (self.d_model // self.n_heads) % 2 == 0,
               f"rotary positions need an even head dimension, got {self.d_model // self.n_heads}")
        _check(self.max_len >= 3, f"max_len must leave room for [CLS], one nucleotide and [SEP], got {self.max_len}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and 0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value!r}")
        _check(self.position_type in POSITION_TYPES,
               f"position_type must be one of {', '.join(POSITION_TYPES)}, got {self.position_type!r}")
        _check(self.norm_type in NORM_TYPES, f"norm_type must be one of {', '.join(NORM_TYPES)}, got {self.norm_type!r}")
        _check(self.activation in ACTIVATIONS,
               f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        _check(self.rotary_base > 0, f"rotary_base must be positive, got {self.rotary_base}")
        _check(self.layer_norm_eps > 0, f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        _check(self.initializer_range > 0, f"initializer_range must be positive, got {self.initializer_range}")
        _check(isinstance(self.pair_conv_layers, int) and 0 <= self.pair_conv_layers <= 16,
               f"pair_conv_layers must be an integer in 0..16, got {self.pair_conv_layers!r}")
        for name in ("embed_norm", "token_dropout", "pair_bias"):
            _check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def max_nucleotides(self) -> int:
        """Nucleotides that fit in one window (``max_len`` minus ``[CLS]`` and ``[SEP]``)."""
        return self.max_len - 2

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GenesisRNAConfig:
        """``small`` (256/4/4/1024), ``base`` (512/8/8/2048) or ``large`` (768/12/12/3072), with overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # JSON is the format of model directories (config.json), as in HF transformers.
    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_json(self, path: str | os.PathLike) -> None:
        _atomic_write_text(path, self.to_json_string())

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> GenesisRNAConfig:
        try:
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, source=os.fspath(path))


@dataclass
class TrainingConfig(_YamlMixin):
    """Everything a pretraining or fine-tuning run needs besides the architecture.

    Batches are formed by a token budget (``tokens_per_batch``) when it is set, else by ``batch_size``
    sequences. ``max_steps`` (when > 0) overrides ``num_epochs``.
    """

    model_size: str = "small"
    batch_size: int = 16
    tokens_per_batch: int = 0
    num_epochs: int = 1
    max_steps: int = 0
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    mlm_probability: float = 0.15
    mlm_loss_weight: float = 1.0
    structure_loss_weight: float = 0.5
    pair_loss_weight: float = 0.5
    max_seq_len: int = 512
    use_ast: bool = False
    ast_target_activation: float = 0.4
    # The default is the measured winner of benchmarks/ast_efficiency.py (docs/ast_benchmark.md): uniform row
    # subsampling with no scoring forward matched dense at equal FLOPs and CPU time, while loss-based selection
    # ("loss", the scoring forward plus the selected rows) ended measurably worse. All others stay selectable:
    # loss | entropy | random | random_scored | infobatch | tokens | sundew.
    ast_strategy: str = "random"
    ast_reference: str = "batch"
    ast_kp: float = 0.5
    ast_ki: float = 0.05
    ast_warmup_epochs: int = 0
    precision: str = "auto"
    gradient_checkpointing: bool = False
    eval_every: int = 200
    save_every: int = 200
    log_every: int = 10
    flops_every: int = 100
    seed: int = 42
    num_workers: int = 0
    device: str = "auto"
    output_dir: str = "runs/pretrain"
    data_path: str = ""
    use_dummy_data: bool = False
    # At most this many training records per family (0 = all): keeps one huge family (GtRNAdb's tRNAs) from
    # drowning the rest. Validation and test splits are never capped.
    max_records_per_family: int = 0
    # Families whose structures the model must not see (their structure and pair targets become unknown; their
    # sequences stay in the masked-nucleotide task): comma-separated accessions or names; "archiveii" = the
    # Rfam families of ArchiveII's kinds (genesis_rna.data.store.ARCHIVEII_KIND_PATTERN).
    structure_exclude_families: str = ""
    # GenesisRNAConfig fields that differ from the preset, "key=value,key=value" (e.g. "pair_bias=true,
    # pair_conv_layers=3" for the structure-aware v2 encoder, or "d_model=384,n_layers=6" for a scaling check).
    model_overrides: str = ""

    def __post_init__(self) -> None:
        _check(self.model_size in PRESETS, f"model_size must be one of {', '.join(PRESETS)}, got {self.model_size!r}")
        parse_model_overrides(self.model_overrides)  # a typo fails here, before any compute is spent
        for name in ("batch_size", "max_seq_len"):
            _check(int(getattr(self, name)) > 0, f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("tokens_per_batch", "num_epochs", "max_steps", "warmup_steps", "eval_every", "save_every",
                     "log_every", "flops_every", "num_workers", "ast_warmup_epochs", "max_records_per_family"):
            _check(int(getattr(self, name)) >= 0, f"{name} must be >= 0, got {getattr(self, name)!r}")
        _check(self.num_epochs > 0 or self.max_steps > 0, "set num_epochs or max_steps to a positive number")
        _check(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        _check(self.max_grad_norm >= 0, f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm}")
        _check(0 < self.mlm_probability < 1, f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        for name in ("mlm_loss_weight", "structure_loss_weight", "pair_loss_weight"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(0 < self.ast_target_activation <= 1,
               f"ast_target_activation must be in (0, 1], got {self.ast_target_activation}")
        _check(self.ast_reference in ("batch", "window"),
               f"ast_reference must be batch or window, got {self.ast_reference!r}")
        _check(self.precision in ("auto", "fp32", "bf16", "fp16"),
               f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device must be auto, cpu or cuda, got {self.device!r}")

    def model_config(self, **overrides: Any) -> GenesisRNAConfig:
        """The preset architecture named by ``model_size``, with ``max_len`` wide enough for ``max_seq_len``."""
        for key, value in parse_model_overrides(self.model_overrides).items():
            overrides.setdefault(key, value)
        overrides.setdefault("max_len", max(self.max_seq_len + 2, 3))
        overrides.setdefault("gradient_checkpointing", self.gradient_checkpointing)
        return GenesisRNAConfig.from_preset(self.model_size, **overrides)


__all__ = ["GenesisRNAConfig", "TrainingConfig", "PRESETS"]


def parse_model_overrides(text: str) -> dict[str, Any]:
    """``"pair_bias=true,n_layers=6"`` -> ``{"pair_bias": True, "n_layers": 6}``, typed by GenesisRNAConfig's fields."""
    types = {f.name: f.type for f in fields(GenesisRNAConfig)}
    out: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = (x.strip() for x in item.partition("="))
        if not sep or key not in types:
            raise ConfigError(f"model_overrides: expected key=value with a GenesisRNAConfig field, got {item!r}")
        kind = types[key]
        if kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ConfigError(f"model_overrides: {key} must be true or false, got {value!r}")
            out[key] = value.lower() in ("true", "1")
        else:
            try:
                out[key] = {"int": int, "float": float}.get(kind, str)(value)
            except ValueError:
                raise ConfigError(f"model_overrides: {key} must be of type {kind}, got {value!r}") from None
    return out
