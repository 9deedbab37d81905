"""The trainable structure model: pair features over the encoder -> a small 2D ResNet -> symmetric pair logits.

Why this shape: the anchors (Zablocki et al. 2025) put a 2D ResNet on frozen language-model embeddings; on RNA
families absent from training they collapse (RNA-FM 0.31 F1), while ViennaRNA's thermodynamics does not depend
on families at all. So the pair features here are, per pair (i, j), any of

* ``onehot``: the 4 x 4 outer product of one-hot nucleotides (16 channels) and two distance channels (always on);
* ``embeddings``: per-nucleotide encoder states projected to ``proj_dim``, combined as ``a_i + a_j`` and
  ``a_i * a_j`` (2 ``proj_dim`` channels, symmetric in i and j);
* ``attention``: every layer's and head's attention map, symmetrised and scaled by L (uniform attention = 1);
* ``pair_logits``: the encoder's own pretraining pair head, when it has one (2 channels);
* ``vienna``: ViennaRNA's base-pair probabilities, their logit and the MFE pairs (3 channels): the hybrid.

The ResNet is cheap enough for two CPU cores (default 16 channels, 6 dilated residual blocks, ~30k
parameters); logits are symmetrised as ``(z + z^T) / 2``. Frozen mode runs the encoder under ``no_grad``
(its features are recomputed per step: with 4 layers this costs less than the 2D convolutions, and caching the
L x L attention maps of a few thousand sequences would need gigabytes); ``finetune`` trains it too.

A model directory holds ``config.json`` (``model_type: genesis-rna-fold``) and ``model.safetensors`` (head
weights; plus ``encoder.*`` weights and ``encoder_config.json`` when the encoder is included). A frozen model
references its encoder by name or path and records the encoder weights' SHA-256 so a mismatch is reported.

Training the shipped default (Rfam seed structures of families other than ArchiveII's kinds)::

    python -m genesis_rna.structure_model train --encoder genesis-rna-small --store /work/stores/rfam_trna \\
        --output genesis_rna/weights/genesis-rna-fold-small
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..download import file_digest
from ..errors import CheckpointError, ConfigError
from ..model.registry import STRUCTURE_MODEL_TYPE, is_structure_model_dir
from .vienna import vienna_prior

__all__ = [
    "StructureModelConfig", "StructureModel", "build_structure_model", "save_structure_model", "is_structure_model_dir",
    "load_structure_model", "predict_proba", "STRUCTURE_MODEL_TYPE",
]

_NUC_INDEX = {"A": 0, "C": 1, "G": 2, "U": 3}


# ----------------------------------------------------------------------------------------------- config
@dataclass
class StructureModelConfig:
    """What goes into the pair features and how big the ResNet is; saved as ``config.json``."""

    encoder: str | None = None          # name or directory of the encoder; None = no encoder
    encoder_included: bool = False      # encoder weights live in this model's directory
    encoder_sha256: str | None = None   # of the referenced encoder's model.safetensors
    use_embeddings: bool = True
    use_attention: bool = True
    use_pair_logits: bool = True
    use_vienna: bool = False
    finetune: bool = False
    d_model: int = 0                    # filled from the encoder
    n_attention_maps: int = 0           # n_layers * n_heads, filled from the encoder
    has_pair_head: bool = False
    proj_dim: int = 8
    channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1)
    max_len: int = 512                  # nucleotides folded in one piece (the encoder's window)
    threshold: float = 0.5              # decoding threshold, tuned on validation data by training
    pos_weight: float = 4.0
    model_type: str = STRUCTURE_MODEL_TYPE
    training: dict = field(default_factory=dict)  # what it was trained on (provenance, free form)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StructureModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown structure-model config keys: {', '.join(unknown)}")
        d = dict(d)
        if "dilations" in d:
            d["dilations"] = tuple(int(x) for x in d["dilations"])
        return cls(**d)

    @property
    def n_channels(self) -> int:
        """Number of input channels of the pair feature map."""
        n = 16 + 2
        if self.encoder:
            if self.use_embeddings:
                n += 2 * self.proj_dim
            if self.use_attention:
                n += self.n_attention_maps
            if self.use_pair_logits and self.has_pair_head:
                n += 2
        if self.use_vienna:
            n += 3
        return n


# ----------------------------------------------------------------------------------------------- network
class _ResBlock(nn.Module):
    """Pre-norm residual block of two dilated 3x3 convolutions."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(self.norm(x)))))


class StructureModel(nn.Module):
    """Pair features -> 2D ResNet -> symmetric logits ``[L, L]`` for one sequence at a time.

    One sequence per step keeps CPU memory and padding waste low (lengths range from 30 to 500 nt).
    """

    def __init__(self, config: StructureModelConfig, encoder: nn.Module | None = None) -> None:
        super().__init__()
        if config.encoder and encoder is None:
            raise ConfigError("this structure model needs its encoder; pass it or use load_structure_model")
        self.config = config
        self.encoder = encoder
        if encoder is not None and not config.finetune:
            for p in encoder.parameters():
                p.requires_grad_(False)
        self.proj = nn.Linear(config.d_model, config.proj_dim) if config.encoder and config.use_embeddings else None
        c = config.channels
        self.stem = nn.Conv2d(config.n_channels, c, 1)
        self.blocks = nn.ModuleList(_ResBlock(c, d) for d in config.dilations)
        self.out_norm = nn.GroupNorm(1, c)
        self.out = nn.Conv2d(c, 1, 1)
        if config.use_vienna:
            # the hybrid starts as ViennaRNA (logit of its bpp) and learns a correction: with the output conv at
            # zero, an untrained hybrid predicts exactly Vienna's probabilities, so short CPU runs cannot do worse
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            self.prior_scale = nn.Parameter(torch.ones(()))

    # -- features -------------------------------------------------------------------------------------------
    def encoder_outputs(self, sequence: str) -> dict[str, torch.Tensor]:
        """Hidden states ``[L, d]``, attention maps ``[H, L, L]`` and pair logits ``[L, L]`` (specials stripped)."""
        from ..tokenization import RNATokenizer

        cfg = self.config
        batch = RNATokenizer()([sequence])
        device = next(self.encoder.parameters()).device
        ids = batch["input_ids"].to(device)
        n = len(sequence)
        grad = cfg.finetune and self.training
        with torch.set_grad_enabled(grad):
            out = self.encoder(ids, need_attentions=cfg.use_attention, return_logits=False)
            res = {"hidden": out["last_hidden_state"][0, 1:n + 1].float()}
            if cfg.use_attention:
                res["attention"] = out["attentions"][0, :, :, 1:n + 1, 1:n + 1].flatten(0, 1).float()
            if cfg.use_pair_logits and cfg.has_pair_head:
                res["pair_logits"] = self.encoder.pair_head(out["last_hidden_state"], ids)[0, 1:n + 1, 1:n + 1].float()
        return res

    def features(self, sequence: str, prior: tuple[np.ndarray, np.ndarray] | None = None,
                 encoder_out: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The ``[C, L, L]`` pair feature map of one sequence (see the module docstring for the channels)."""
        cfg = self.config
        n = len(sequence)
        device = self.stem.weight.device
        chans = [_onehot_pairs(sequence, device), _distance_channels(n, device)]
        if cfg.encoder:
            enc = encoder_out if encoder_out is not None else self.encoder_outputs(sequence)
            if cfg.use_embeddings:
                a = self.proj(enc["hidden"])  # [L, p]
                chans.append((a[:, None, :] + a[None, :, :]).permute(2, 0, 1))
                chans.append((a[:, None, :] * a[None, :, :]).permute(2, 0, 1))
            if cfg.use_attention:
                att = enc["attention"]
                chans.append((att + att.transpose(1, 2)) * (n / 2.0))
            if cfg.use_pair_logits and cfg.has_pair_head:
                z = enc["pair_logits"]
                chans.append(torch.stack([torch.sigmoid(z), z.clamp(-20, 20) / 10.0]))
        if cfg.use_vienna:
            if prior is None:
                prior = vienna_prior(sequence)
            bpp = torch.as_tensor(prior[0], dtype=torch.float32, device=device)
            mfe = torch.as_tensor(prior[1], dtype=torch.float32, device=device)
            logit = torch.log(bpp.clamp_min(1e-4)) - torch.log1p(-bpp.clamp(max=1 - 1e-4))
            chans.append(torch.stack([bpp, logit / 10.0, mfe]))
        return torch.cat(chans, dim=0)

    def forward_features(self, feats: torch.Tensor) -> torch.Tensor:
        """``[C, L, L]`` (or ``[B, C, L, L]``) features -> symmetric logits ``[L, L]`` (``[B, L, L]``)."""
        squeeze = feats.dim() == 3
        feats = feats[None] if squeeze else feats
        x = self.stem(feats)
        for block in self.blocks:
            x = block(x)
        z = self.out(torch.nn.functional.gelu(self.out_norm(x)))[:, 0]
        if self.config.use_vienna:  # the prior logit channel is the second-last (stored / 10)
            z = z + self.prior_scale * feats[:, -2] * 10.0
        z = (z + z.transpose(-1, -2)) / 2.0
        return z[0] if squeeze else z

    def forward(self, sequence: str, prior: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
        return self.forward_features(self.features(sequence, prior))


def _onehot_pairs(sequence: str, device: torch.device) -> torch.Tensor:
    """16 channels: ``onehot(i) outer onehot(j)``; N and other letters are all zero."""
    idx = [_NUC_INDEX.get(c, -1) for c in sequence.upper().replace("T", "U")]
    oh = torch.zeros(len(idx), 4, device=device)
    for k, v in enumerate(idx):
        if v >= 0:
            oh[k, v] = 1.0
    return (oh[:, None, :, None] * oh[None, :, None, :]).reshape(len(idx), len(idx), 16).permute(2, 0, 1)


def _distance_channels(n: int, device: torch.device) -> torch.Tensor:
    """``log(1 + |i - j|) / log(1 + 512)`` and the hairpin-rule indicator ``|i - j| > 3``."""
    pos = torch.arange(n, device=device, dtype=torch.float32)
    d = (pos[:, None] - pos[None, :]).abs()
    return torch.stack([torch.log1p(d) / math.log(513.0), (d > 3).float()])


# ----------------------------------------------------------------------------------------------- build/save/load
def build_structure_model(encoder: str | os.PathLike | None = None, *, use_vienna: bool = False,
                          finetune: bool = False, encoder_model: nn.Module | None = None, **options
                          ) -> StructureModel:
    """A freshly initialised structure model over ``encoder`` (a name/directory, or None for one-hot only).

    ``encoder_model`` passes an already loaded encoder (e.g. a random model in tests); ``encoder`` then only
    names it in the config.
    """
    enc = None
    sha = None
    if encoder is not None or encoder_model is not None:
        if encoder_model is None:
            from ..pretrained import load, resolve_model_dir

            enc = load(encoder)[0]
            sha = file_digest(resolve_model_dir(encoder) / "model.safetensors")
        else:
            enc = encoder_model
        ec = enc.config
        options.setdefault("d_model", ec.d_model)
        options.setdefault("n_attention_maps", ec.n_layers * ec.n_heads)
        options.setdefault("has_pair_head", getattr(enc, "pair_head", None) is not None)
        options.setdefault("max_len", min(512, ec.max_len - 2))
    name = None if encoder is None and encoder_model is None else os.fspath(encoder or "in-memory")
    cfg = StructureModelConfig(encoder=name, encoder_sha256=sha, use_vienna=use_vienna, finetune=finetune,
                               encoder_included=finetune, **options)
    return StructureModel(cfg, enc)


def save_structure_model(model: StructureModel, directory: str | os.PathLike) -> None:
    """Write ``config.json`` + ``model.safetensors`` (atomically; encoder weights only when included)."""
    from safetensors.torch import save_file

    from .._fileutil import atomic_path, atomic_write

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if not model.config.encoder_included:
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    else:
        enc_cfg = dataclasses.asdict(model.encoder.config)
        with atomic_write(out / "encoder_config.json") as fh:
            json.dump(enc_cfg, fh, indent=2, sort_keys=True)
    # tied weights share storage; safetensors refuses shared tensors, so store clones
    state = {k: v.clone() for k, v in state.items()}
    with atomic_path(out / "model.safetensors", suffix=".safetensors") as tmp:
        save_file(state, tmp, metadata={"format": "pt"})
    with atomic_write(out / "config.json") as fh:
        json.dump(model.config.to_dict(), fh, indent=2, sort_keys=True)


def load_structure_model(name_or_dir: str | os.PathLike, *, device: str = "cpu") -> StructureModel:
    """Load a structure model directory (or shipped name); its referenced encoder must be loadable."""
    from safetensors.torch import load_file

    from ..pretrained import load, resolve_model_dir

    directory = resolve_model_dir(name_or_dir)
    if not is_structure_model_dir(directory):
        raise CheckpointError(f"{directory}: not a structure model (config.json model_type is not "
                              f"{STRUCTURE_MODEL_TYPE!r})")
    cfg = StructureModelConfig.from_dict(json.loads((directory / "config.json").read_text()))
    state = load_file(str(directory / "model.safetensors"))
    encoder = None
    if cfg.encoder and cfg.encoder_included:
        from ..config import GenesisRNAConfig
        from ..model.encoder import GenesisRNAModel

        enc_cfg = GenesisRNAConfig(**json.loads((directory / "encoder_config.json").read_text()))
        encoder = GenesisRNAModel(enc_cfg)
    elif cfg.encoder:
        try:
            encoder = load(cfg.encoder)[0]
            enc_dir = resolve_model_dir(cfg.encoder)
        except CheckpointError as err:
            raise CheckpointError(f"{directory}: its encoder {cfg.encoder!r} is not available ({err})") from None
        if cfg.encoder_sha256 and file_digest(enc_dir / "model.safetensors") != cfg.encoder_sha256:
            raise CheckpointError(f"{directory}: encoder {cfg.encoder!r} has different weights than the ones this "
                                  "structure model was trained on; retrain it (python -m genesis_rna.structure_model "
                                  "train ...)")
    model = StructureModel(cfg, encoder)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if cfg.encoder_included or not k.startswith("encoder.")]
    if missing or unexpected:
        raise CheckpointError(f"{directory}: weights do not match the config (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    model.eval()
    return model.to(device)


@torch.no_grad()
def predict_proba(model: StructureModel, sequence: str, prior: tuple[np.ndarray, np.ndarray] | None = None,
                  dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Pair probabilities ``[L, L]`` float32, exactly symmetric, for one sequence within the model window."""
    model.eval()
    ctx = torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    with ctx:
        z = model(sequence, prior)
    p = torch.sigmoid(z.float()).numpy().astype(np.float32)
    return np.triu(p, 1) + np.triu(p, 1).T


