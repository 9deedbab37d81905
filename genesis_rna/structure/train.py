"""Training the structure model: pair examples (Rfam seed structures of a shard store), the loss, F1 early
stopping, and ``python -m genesis_rna.structure_model train``."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .model import StructureModel, predict_proba
from .vienna import vienna_prior

__all__ = ["PairExample", "train_structure_model", "evaluate_f1", "rfam_training_examples", "add_vienna_priors"]


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


# ----------------------------------------------------------------------------------------------- training
def evaluate_f1(model: StructureModel, items: Sequence[PairExample], threshold: float | Sequence[float] = 0.5
                ) -> dict[float, float]:
    """Mean exact-pair F1 of MEA decoding at each threshold (the probabilities are computed once)."""
    from .decode import decode
    from .pairs import pair_metrics

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
    from ..data.store import ShardStore, archiveii_kind_families
    from ..tokenization import RNATokenizer

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


