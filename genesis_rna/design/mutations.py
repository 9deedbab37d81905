"""Zero-shot mutation-effect scores from the masked-language-model head (``genesis-rna score-mutations``).

A variant is scored by how much more (or less) the model expects the mutant bases than the wild-type ones,
the masked-marginal log-likelihood ratio of ESM-1v (Meier et al. 2021)::

    score = sum over mutated positions i of  log p(mut_i | wt with i masked) - log p(wt_i | wt with i masked)

Every position needs one forward pass of the wild type with that position masked, whatever the variant, so a
whole variant set (or a saturation scan: all 3L single substitutions) costs at most L masked forwards, which are
batched. The ``wt-marginal`` method uses the log-probabilities of one unmasked forward of the wild type instead
(one pass in all; ESM-1v's "wildtype marginal"). Higher scores mean "more like what the model has seen", which
for functional RNAs tracks fitness.

Variants are written ``A23G`` (1-based position, wild-type base, mutant base) and combined with ``:`` or ``,``
(``A23G:C40U``); ``T`` is read as ``U``. Each is checked against the wild type, and a mismatch is an error that
names the variant. Full-length mutant sequences (FASTA or a CSV ``sequence`` column) are turned into the same
substitutions; insertions and deletions are not scored by this method.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.batching import token_budget_batches
from ..errors import CheckpointError, InputError, SequenceError
from ..model.device import autocast_context, resolve_device, resolve_dtype
from ..vocab import CLS_ID, MASK_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID
from .variants import BASES, METHODS, Substitution, apply_variant, format_variant, saturation_variants

BASE_IDS = [NUCLEOTIDE_IDS[b] for b in BASES]
@dataclass
class VariantScore:
    """Score of one variant: its id, the substitutions (``A23G:C40U`` form), mutant sequence and score."""

    id: str
    variant: str
    n_mutations: int
    score: float
    sequence: str


# --------------------------------------------------------------------------------------------- model passes
def _window(length: int, positions: Sequence[int], window: int) -> tuple[int, int]:
    """``[start, end)`` of at most ``window`` nucleotides containing ``positions``, centred on them."""
    if length <= window:
        return 0, length
    lo, hi = min(positions), max(positions)
    if hi - lo + 1 > window:
        raise InputError(f"positions {lo + 1} and {hi + 1} are farther apart than the model's window of {window} nt")
    centre = (lo + hi) // 2
    start = min(max(0, centre - window // 2), length - window)
    return start, start + window


def _ready(model: torch.nn.Module, dev: torch.device) -> None:
    """Eval mode on ``dev``; skipped when already so (``.to`` walks every parameter: costly in inner loops)."""
    if model.training:
        model.eval()
    param = next(model.parameters(), None)
    if param is not None and param.device != dev:
        model.to(dev)


def masked_log_probs(
    model: torch.nn.Module,
    items: Sequence[tuple[str, Sequence[int]]],
    *,
    tokens_per_batch: int = 16384,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
) -> list[np.ndarray]:
    """For each ``(sequence, positions)``: mask those positions together, return ``[len(positions), 4]``
    log-probabilities of A, C, G, U there (log-softmax over the model's whole vocabulary, as ESM does).

    All items run as a few padded batches (token budget ``tokens_per_batch``). Sequences longer than the
    model's window are cut to a window centred on the masked positions.
    """
    if getattr(model, "mlm_head", None) is None:
        raise CheckpointError("this model has no MLM head, so it cannot score nucleotides")
    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    window = model.config.max_len - 2
    encoded = []
    for seq, positions in items:
        start, end = _window(len(seq), positions, window)
        ids = [CLS_ID] + [NUCLEOTIDE_IDS[c] for c in seq[start:end]] + [SEP_ID]
        rows = [p - start + 1 for p in positions]
        for r in rows:
            ids[r] = MASK_ID
        encoded.append((ids, rows))
    out: list[np.ndarray | None] = [None] * len(items)
    _ready(model, dev)
    for batch in token_budget_batches([len(e[0]) for e in encoded], tokens_per_batch):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        for k, i in enumerate(batch):
            ids[k, : len(encoded[i][0])] = torch.tensor(encoded[i][0])
        ids = ids.to(dev)
        with torch.no_grad(), autocast_context(dev, cdtype):
            hidden = model(ids, attention_mask=ids != PAD_ID, return_logits=False)["last_hidden_state"]
            bidx = torch.tensor([k for k, i in enumerate(batch) for _ in encoded[i][1]], dtype=torch.long)
            ridx = torch.tensor([r for i in batch for r in encoded[i][1]], dtype=torch.long)
            logits = model.mlm_head(hidden[bidx.to(dev), ridx.to(dev)])  # only the masked rows
        logp = torch.log_softmax(logits.float(), dim=-1)[:, BASE_IDS].cpu().numpy()
        offset = 0
        for i in batch:
            n = len(encoded[i][1])
            out[i] = logp[offset : offset + n]
            offset += n
    return out  # type: ignore[return-value]


def unmasked_log_probs(model: torch.nn.Module, sequence: str, *, device: str | torch.device = "cpu",
                       dtype: str = "fp32") -> np.ndarray:
    """``[L, 4]`` log-probabilities of A, C, G, U at every position from one unmasked forward (windows if long)."""
    from ..model.embed import window_owner, window_spans

    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    spans = window_spans(len(sequence), model.config.max_len - 2)
    owner = window_owner(len(sequence), spans)
    out = np.zeros((len(sequence), 4), dtype=np.float32)
    _ready(model, dev)
    for k, (s, e) in enumerate(spans):
        ids = torch.tensor([[CLS_ID] + [NUCLEOTIDE_IDS[c] for c in sequence[s:e]] + [SEP_ID]], device=dev)
        with torch.no_grad(), autocast_context(dev, cdtype):
            logits = model(ids, return_pair_logits=False)["mlm_logits"][0, 1:-1]
        logp = torch.log_softmax(logits.float(), dim=-1)[:, BASE_IDS].cpu().numpy()
        mine = np.nonzero(owner == k)[0]
        out[mine] = logp[mine - s]
    return out


def site_log_probs(model: torch.nn.Module, wild_type: str, positions: Iterable[int], *,
                   method: str = "masked-marginal", tokens_per_batch: int = 16384,
                   device: str | torch.device = "cpu", dtype: str = "fp32") -> dict[int, np.ndarray]:
    """``{position: [4] log-probs of ACGU}`` for the wild type: masked at each position alone (one forward per
    position, all batched) or, with ``wt-marginal``, read from one unmasked forward."""
    positions = sorted(set(positions))
    if method == "wt-marginal":
        table = unmasked_log_probs(model, wild_type, device=device, dtype=dtype)
        return {p: table[p] for p in positions}
    if method != "masked-marginal":
        raise InputError(f"unknown scoring method {method!r}; use one of {', '.join(METHODS)}")
    rows = masked_log_probs(model, [(wild_type, [p]) for p in positions], tokens_per_batch=tokens_per_batch,
                            device=device, dtype=dtype)
    return {p: r[0] for p, r in zip(positions, rows, strict=True)}


def score_variants(
    model: torch.nn.Module,
    wild_type: str,
    variants: Sequence[tuple[str, Sequence[Substitution]]],
    *,
    method: str = "masked-marginal",
    tokens_per_batch: int = 16384,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
) -> list[VariantScore]:
    """Zero-shot score of every ``(id, substitutions)`` (see the module docstring), in input order.

    Only the positions some variant mutates are masked, each once, whatever the number of variants.
    """
    if not wild_type or any(c not in BASES + "N" for c in wild_type):
        raise SequenceError("the wild type must be a normalised nucleotide sequence (A C G U N)")
    table = site_log_probs(model, wild_type, (s.position for _, subs in variants for s in subs), method=method,
                           tokens_per_batch=tokens_per_batch, device=device, dtype=dtype)
    out = []
    for rid, subs in variants:
        score = math.fsum(float(table[s.position][BASES.index(s.mut)] - table[s.position][BASES.index(s.wt)])
                          for s in subs)
        out.append(VariantScore(rid, format_variant(subs), len(subs), score, apply_variant(wild_type, subs)))
    return out


def scan(model: torch.nn.Module, wild_type: str, **kwargs) -> list[VariantScore]:
    """Saturation mutagenesis: every single substitution of the wild type, scored with L masked forwards."""
    variants = [(format_variant(v), v) for v in saturation_variants(wild_type)]
    return score_variants(model, wild_type, variants, **kwargs)


def write_scores_csv(scores: Sequence[VariantScore], path: str | os.PathLike, *, method: str) -> None:
    """CSV ``id,variant,n_mutations,score,method,sequence`` written atomically (temporary name, then rename)."""
    from ..io._text import open_output

    with open_output(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "variant", "n_mutations", "score", "method", "sequence"])
        for s in scores:
            writer.writerow([s.id, s.variant, s.n_mutations, f"{s.score:.6g}", method, s.sequence])


__all__ = ["VariantScore", "masked_log_probs", "unmasked_log_probs", "site_log_probs", "score_variants", "scan",
           "write_scores_csv"]
