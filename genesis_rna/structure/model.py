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

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .download import file_digest
from .errors import CheckpointError, ConfigError

__all__ = [
    "StructureModelConfig", "StructureModel", "PairExample", "vienna_partition", "vienna_prior", "add_vienna_priors",
    "build_structure_model",
    "load_structure_model", "train_structure_model", "predict_proba", "rfam_training_examples",
    "STRUCTURE_MODEL_TYPE",
]

STRUCTURE_MODEL_TYPE = "genesis-rna-fold"
_NUC_INDEX = {"A": 0, "C": 1, "G": 2, "U": 3}


# ----------------------------------------------------------------------------------------------- ViennaRNA
def vienna_partition(sequence: str):
    """ViennaRNA on one sequence: ``(fold_compound, mfe_structure, mfe_kcal, bpp)``, ``bpp`` float64 L x L symmetric.

    Default RNAfold energy parameters at 37 C; the partition function is rescaled from the MFE so long
    sequences do not overflow. The fold compound is returned for further queries (MEA, energies). The one place
    where the project runs the partition function: the structure model's prior, the ArchiveII cache and the
    server's fallback all use it.
    """
    try:
        import RNA
    except ImportError as err:  # pragma: no cover - ViennaRNA is a dependency
        raise ConfigError("ViennaRNA (import RNA) is not installed; install the ViennaRNA Python package or "
                          "use a model without the Vienna prior (--no-vienna)") from err
    fc = RNA.fold_compound(sequence, RNA.md())
    structure, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    upper = np.triu(np.array(fc.bpp(), dtype=np.float64)[1:, 1:], 1)
    return fc, structure, float(mfe), upper + upper.T


def vienna_prior(sequence: str) -> tuple[np.ndarray, np.ndarray]:
    """ViennaRNA base-pair probabilities and MFE pair indicator, both float32 L x L symmetric."""
    import RNA

    seq = sequence.upper().replace("T", "U")
    n = len(seq)
    _, structure, _, bpp = vienna_partition(seq)
    mfe_mat = np.zeros((n, n), dtype=np.float32)
    pt = np.array(RNA.ptable(structure), dtype=np.int64)[1:] - 1
    i = np.flatnonzero(pt >= 0)
    mfe_mat[i, pt[i]] = 1.0
    return bpp.astype(np.float32), mfe_mat


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
        from .tokenization import RNATokenizer

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
            from .pretrained import load, resolve_model_dir

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

    from ._fileutil import atomic_path, atomic_write

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


def is_structure_model_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a structure model (not a plain encoder)."""
    cfg = Path(path) / "config.json"
    try:
        return json.loads(cfg.read_text()).get("model_type") == STRUCTURE_MODEL_TYPE
    except (OSError, ValueError):
        return False


def load_structure_model(name_or_dir: str | os.PathLike, *, device: str = "cpu") -> StructureModel:
    """Load a structure model directory (or shipped name); its referenced encoder must be loadable."""
    from safetensors.torch import load_file

    from .pretrained import load, resolve_model_dir

    directory = resolve_model_dir(name_or_dir)
    if not is_structure_model_dir(directory):
        raise CheckpointError(f"{directory}: not a structure model (config.json model_type is not "
                              f"{STRUCTURE_MODEL_TYPE!r})")
    cfg = StructureModelConfig.from_dict(json.loads((directory / "config.json").read_text()))
    state = load_file(str(directory / "model.safetensors"))
    encoder = None
    if cfg.encoder and cfg.encoder_included:
        from .config import GenesisRNAConfig
        from .model import GenesisRNAModel

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


# ----------------------------------------------------------------------------------------------- data
@dataclass
class PairExample:
    """A training/evaluation item: sequence, true partner array, optional cached Vienna prior."""

    id: str
    sequence: str
    partner: np.ndarray
    prior: tuple[np.ndarray, np.ndarray] | None = None
    family: str = ""


def _crop(ex: PairExample, max_len: int, rng: np.random.Generator) -> tuple[str, np.ndarray, tuple | None, int]:
    """A random window of at most ``max_len`` nt (pairs leaving it are dropped); the prior is cropped too."""
    n = len(ex.sequence)
    if n <= max_len:
        return ex.sequence, ex.partner, ex.prior, 0
    s = int(rng.integers(0, n - max_len + 1))
    e = s + max_len
    part = ex.partner[s:e].copy()
    part = np.where((part >= s) & (part < e), part - s, -1)
    prior = None if ex.prior is None else tuple(m[s:e, s:e] for m in ex.prior)
    return ex.sequence[s:e], part, prior, s


def _target(partner: np.ndarray) -> torch.Tensor:
    n = partner.shape[0]
    t = torch.zeros(n, n)
    i = np.flatnonzero(partner >= 0)
    t[i, partner[i]] = 1.0
    return t


def _loss(logits: torch.Tensor, partner: np.ndarray, pos_weight: float) -> torch.Tensor:
    """BCE over the upper triangle with ``j - i > 3`` (the only pairs a structure can contain)."""
    n = partner.shape[0]
    iu = torch.triu_indices(n, n, offset=4)
    t = _target(partner)[iu[0], iu[1]]
    z = logits[iu[0], iu[1]]
    return nn.functional.binary_cross_entropy_with_logits(z, t, pos_weight=torch.tensor(pos_weight))


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


# ----------------------------------------------------------------------------------------------- training
def evaluate_f1(model: StructureModel, items: Sequence[PairExample], threshold: float | Sequence[float] = 0.5
                ) -> dict[float, float]:
    """Mean exact-pair F1 of MEA decoding at each threshold (the probabilities are computed once)."""
    from .fold import decode
    from .structure import pair_metrics

    thresholds = [threshold] if isinstance(threshold, (int, float)) else list(threshold)
    scores = {t: [] for t in thresholds}
    for ex in items:
        p = predict_proba(model, ex.sequence, ex.prior)
        for t in thresholds:
            pred = decode(p, ex.sequence, threshold=t)
            scores[t].append(pair_metrics(pred, ex.partner)["f1"])
    return {t: float(np.mean(v)) if v else 0.0 for t, v in scores.items()}


def train_structure_model(model: StructureModel, train: Sequence[PairExample], valid: Sequence[PairExample], *,
                          epochs: int = 10, lr: float = 3e-3, encoder_lr: float = 1e-5, max_train_len: int = 160,
                          steps_per_epoch: int | None = None, patience: int = 3, seed: int = 0,
                          log: Callable[[str], None] | None = None, time_budget_s: float | None = None,
                          thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
                          on_step: Callable[[float], None] | None = None) -> dict:
    """Train with BCE (pos_weight) on random crops of at most ``max_train_len`` nt, one sequence per step.

    After each epoch the model is scored on ``valid`` (mean F1 of MEA decoding at several thresholds); the best
    epoch's weights and threshold are kept (early stopping after ``patience`` epochs without improvement).
    ``time_budget_s`` stops training early (the best state so far is kept). ``on_step(loss)`` is called after
    every optimiser step (a progress bar). Returns a history dict.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    groups = [{"params": head, "lr": lr}]
    if model.config.finetune and model.encoder is not None:
        groups.append({"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": encoder_lr})
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    best = (-1.0, None, model.config.threshold)
    history = []
    bad = 0
    start = time.perf_counter()
    n_steps = steps_per_epoch or len(train)
    for epoch in range(epochs):
        model.train()
        losses = []
        for k in rng.permutation(len(train))[:n_steps] if n_steps <= len(train) else rng.integers(0, len(train), n_steps):
            seq, part, prior, _ = _crop(train[int(k)], max_train_len, rng)
            logits = model(seq, prior)
            loss = _loss(logits, part, model.config.pos_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(losses[-1])
            if time_budget_s and time.perf_counter() - start > time_budget_s:
                break
        f1s = evaluate_f1(model, valid, thresholds) if valid else {model.config.threshold: -float(np.mean(losses))}
        t_best = max(f1s, key=f1s.get)
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None,
               "valid_f1": f1s[t_best], "threshold": t_best, "elapsed_s": time.perf_counter() - start}
        history.append(row)
        if log:
            log(json.dumps(row))
        if f1s[t_best] > best[0]:
            best = (f1s[t_best], {k: v.detach().clone() for k, v in model.state_dict().items()}, t_best)
            bad = 0
        else:
            bad += 1
        if bad >= patience or (time_budget_s and time.perf_counter() - start > time_budget_s):
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.config.threshold = float(best[2])
    model.eval()
    return {"history": history, "best_valid_f1": best[0], "threshold": float(best[2]),
            "train_seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------- Rfam data
def rfam_training_examples(store_path: str | os.PathLike, *, n: int = 3000, max_len: int = 200,
                           seed: int = 0, exclude_archiveii: bool = True, split: str = "train"
                           ) -> tuple[list[PairExample], list[str]]:
    """Up to ``n`` Rfam seed records (structure source ``input``: SS_cons projected per sequence) of at most
    ``max_len`` nt, excluding the 34 families of ArchiveII's kinds; at most ``ceil(n / 200)`` per family so big
    families do not dominate. Returns the examples and the excluded family accessions."""
    from .data import ShardStore, archiveii_kind_families
    from .tokenization import RNATokenizer

    store = ShardStore(store_path, split)
    excluded = archiveii_kind_families(store) if exclude_archiveii else []
    ex_codes = set(store.family_codes(excluded)) if excluded else set()
    lengths = store.lengths
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(store))
    per_family: dict[int, int] = {}
    cap = max(1, math.ceil(n / 200))
    tok = RNATokenizer()
    out: list[PairExample] = []
    for k in order:
        if len(out) >= n:
            break
        if not 20 <= lengths[k] <= max_len:
            continue
        rec = store[int(k)]
        if rec.structure_source != "input" or rec.family in ex_codes or per_family.get(rec.family, 0) >= cap:
            continue
        partner = np.asarray(rec.partner, dtype=np.int64)
        if (partner < -1).any() or not (partner >= 0).any():
            continue
        per_family[rec.family] = per_family.get(rec.family, 0) + 1
        fam = store.family_ids[rec.family] if rec.family >= 0 else ""
        out.append(PairExample(rec.id, tok.decode(rec.tokens), partner, family=fam))
    return out, excluded


def add_vienna_priors(items: Sequence[PairExample], progress: bool = False) -> int:
    """Fill the ViennaRNA prior of every example that has none, in place; returns how many were computed.

    Computed once per example (training crops it per step and reuses it every epoch); this is the slow part of
    hybrid training (~1e-8 x L^3 s per sequence), hence the progress bar.
    """
    from tqdm.auto import tqdm

    todo = [ex for ex in items if ex.prior is None]
    for ex in tqdm(todo, desc="ViennaRNA priors", unit="seq", disable=not progress, dynamic_ncols=True,
                   file=sys.stderr):
        ex.prior = vienna_prior(ex.sequence)
    return len(todo)


# ----------------------------------------------------------------------------------------------- CLI
def _train_main(args: argparse.Namespace) -> int:
    from .structure import validate_partners

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    examples, excluded = rfam_training_examples(args.store, n=args.n_train + args.n_valid, max_len=args.max_len,
                                                seed=args.seed)
    families = sorted({e.family for e in examples})
    rng = np.random.default_rng(args.seed)
    valid_fams = set(rng.choice(families, size=max(1, len(families) // 10), replace=False).tolist())
    train = [e for e in examples if e.family not in valid_fams]
    valid = [e for e in examples if e.family in valid_fams][: args.n_valid]
    for e in train + valid:
        validate_partners(e.partner, len(e.sequence))
    if args.vienna:
        log(f"computing ViennaRNA priors for {len(train) + len(valid)} sequences")
        add_vienna_priors(train + valid, progress=True)
    torch.set_num_threads(max(1, args.threads))
    model = build_structure_model(args.encoder, use_vienna=args.vienna, finetune=args.finetune,
                                  channels=args.channels)
    info = train_structure_model(model, train, valid, epochs=args.epochs, lr=args.lr, max_train_len=args.max_len,
                                 steps_per_epoch=args.steps_per_epoch, seed=args.seed, log=log,
                                 time_budget_s=args.time_budget)
    model.config.training = {
        "data": f"Rfam seed structures (SS_cons projected) from {args.store}, structure_source=input, "
                f"<= {args.max_len} nt, family-disjoint valid split",
        "n_train": len(train), "n_valid": len(valid), "n_train_families": len({e.family for e in train}),
        "excluded_families": excluded, "best_valid_f1": info["best_valid_f1"], "epochs_run": len(info["history"]),
        "train_seconds": round(info["train_seconds"], 1),
    }
    save_structure_model(model, args.output)
    print(f"trained structure model on {len(train)} sequences ({len(valid)} valid, F1 {info['best_valid_f1']:.3f} "
          f"at threshold {info['threshold']}) in {info['train_seconds']:.0f} s -> {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis_rna.structure_model",
                                     description="Train the structure model on Rfam seed structures.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a structure model on a shard store's Rfam structures")
    p.add_argument("--encoder", default="genesis-rna-small", help="encoder name or directory ('none' = one-hot only)")
    p.add_argument("--store", required=True, help="shard store with partner arrays (genesis-rna preprocess)")
    p.add_argument("--output", required=True, help="model directory to write")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-valid", type=int, default=120)
    p.add_argument("--max-len", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--no-vienna", dest="vienna", action="store_false", help="no ViennaRNA prior channels")
    p.add_argument("--finetune", action="store_true", help="train the encoder too (it is then included)")
    p.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.encoder.lower() == "none":
        args.encoder = None
    from .errors import GenesisRNAError

    try:
        return _train_main(args)
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
