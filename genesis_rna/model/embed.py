"""Embeddings in batches: sequences packed by token budget (:func:`genesis_rna.data.batching.token_budget_batches`)
on the device and precision of :mod:`genesis_rna.model.device`, long sequences in overlapping windows.

Long sequences. A window holds ``config.max_len - 2`` nucleotides. A longer sequence is cut into windows that
overlap by ``overlap`` nucleotides (default: a quarter of a window); each nucleotide takes its embedding from the
window in which it lies farthest from an edge, so every position is seen with as much context on both sides as
the model allows and the output still has exactly one row per nucleotide. Windows are contiguous slices of the
sequence, each framed by ``[CLS]``/``[SEP]`` as the model saw during training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.batching import token_budget_batches
from ..errors import InputError
from ..vocab import CLS_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID
from .device import autocast_context, resolve_device, resolve_dtype

INCLUDE_CHOICES = ("mean", "per_tok", "bos")


# --------------------------------------------------------------------------------------------- windows


def window_spans(length: int, window: int, overlap: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` spans of at most ``window`` nucleotides covering ``length``, overlapping by ``overlap``.

    The last window is aligned to the end of the sequence so no window is needlessly short.
    """
    if window <= 0:
        raise InputError(f"window must be positive, got {window}")
    if length <= window:
        return [(0, length)]
    overlap = window // 4 if overlap is None else overlap
    if not 0 <= overlap < window:
        raise InputError(f"window overlap must be in [0, {window}), got {overlap}")
    stride = window - overlap
    n = math.ceil((length - window) / stride) + 1
    starts = [min(k * stride, length - window) for k in range(n)]
    return [(s, s + window) for s in dict.fromkeys(starts)]


def window_owner(length: int, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """For each position, the index of the span in which it lies farthest from an edge (most context)."""
    pos = np.arange(length)
    depth = np.full((len(spans), length), -1, dtype=np.int64)
    for k, (s, e) in enumerate(spans):
        inside = (pos >= s) & (pos < e)
        depth[k, inside] = np.minimum(pos[inside] - s, e - 1 - pos[inside])
    return depth.argmax(axis=0)


# --------------------------------------------------------------------------------------------- embeddings
@dataclass
class EmbeddingResult:
    """Embeddings of one record: ``per_tok[layer]`` is [L, d], ``mean[layer]`` [d], ``bos[layer]`` [d]."""

    id: str
    length: int
    per_tok: dict[int, np.ndarray] = field(default_factory=dict)
    mean: dict[int, np.ndarray] = field(default_factory=dict)
    bos: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class _Chunk:
    record: int
    span: tuple[int, int]
    ids: list[int]


def normalise_layers(repr_layers: Iterable[int], n_layers: int) -> list[int]:
    """ESM convention: layers 0..n_layers, negative indices count from the end (-1 = final layer)."""
    out = []
    for layer in repr_layers:
        if not -(n_layers + 1) <= layer <= n_layers:
            raise InputError(f"layer {layer} out of range: this model has layers 0..{n_layers} (or -1..-{n_layers + 1})")
        out.append(layer % (n_layers + 1))
    return sorted(dict.fromkeys(out))


def _chunks(sequences: Sequence[str], window: int, overlap: int | None) -> tuple[list[_Chunk], list[list[int]]]:
    chunks: list[_Chunk] = []
    per_record: list[list[int]] = []
    for r, seq in enumerate(sequences):
        mine = []
        for s, e in window_spans(len(seq), window, overlap):
            ids = [CLS_ID, *(NUCLEOTIDE_IDS[c] for c in seq[s:e]), SEP_ID]
            mine.append(len(chunks))
            chunks.append(_Chunk(r, (s, e), ids))
        per_record.append(mine)
    return chunks, per_record


def _pad(chunks: Sequence[_Chunk], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c.ids) for c in chunks)
    ids = torch.full((len(chunks), width), PAD_ID, dtype=torch.long)
    for k, c in enumerate(chunks):
        ids[k, : len(c.ids)] = torch.tensor(c.ids)
    ids = ids.to(device)
    return ids, (ids != PAD_ID).long()


def _assemble(record_id: str, seq_len: int, chunk_ids: list[int], outputs: dict[int, dict[int, np.ndarray]],
              chunks: Sequence[_Chunk], layers: list[int], include: Sequence[str]) -> EmbeddingResult:
    """Stitch a record's window outputs ([n_tokens, d] incl. specials) into exactly ``seq_len`` rows."""
    spans = [chunks[c].span for c in chunk_ids]
    owner = window_owner(seq_len, spans)
    result = EmbeddingResult(record_id, seq_len)
    for layer in layers:
        rows = np.empty((seq_len, outputs[chunk_ids[0]][layer].shape[-1]), dtype=np.float32)
        for k, c in enumerate(chunk_ids):
            s, _ = spans[k]
            take = np.nonzero(owner == k)[0]
            rows[take] = outputs[c][layer][1 + take - s]
        if "per_tok" in include:
            result.per_tok[layer] = rows
        if "mean" in include:
            result.mean[layer] = rows.mean(axis=0)
        if "bos" in include:  # the [CLS] of the first window, as ESM's "bos"
            result.bos[layer] = outputs[chunk_ids[0]][layer][0].copy()
    return result


@torch.inference_mode()
def embed_sequences(
    model: torch.nn.Module,
    records: Sequence[tuple[str, str]],
    *,
    repr_layers: Sequence[int] = (-1,),
    include: Sequence[str] = ("mean",),
    tokens_per_batch: int = 4096,
    window_overlap: int | None = None,
    device: str | torch.device = "auto",
    dtype: str = "auto",
    progress: bool = False,
) -> Iterator[EmbeddingResult]:
    """Embed ``(id, normalised_sequence)`` records; yields one :class:`EmbeddingResult` per record.

    Records are yielded as soon as all their windows are done (in length order, not input order), so memory stays
    bounded by one batch plus the records in flight. Sequences must already be normalised (``io.read_fasta`` does).
    """
    bad = sorted(set(include) - set(INCLUDE_CHOICES))
    if bad or not include:
        raise InputError(f"--include takes {', '.join(INCLUDE_CHOICES)}; got {' '.join(include) or 'nothing'}")
    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    config = model.config
    layers = normalise_layers(repr_layers, config.n_layers)
    model.eval().to(dev)
    seqs = [s for _, s in records]
    for rid, s in records:
        if not s:
            raise InputError("zero-length sequence", record=rid)
    chunks, per_record = _chunks(seqs, config.max_len - 2, window_overlap)
    remaining = [len(c) for c in per_record]
    outputs: dict[int, dict[int, np.ndarray]] = {}
    batches = token_budget_batches([len(c.ids) for c in chunks], tokens_per_batch)
    bar = _progress(len(records), progress)
    try:
        for batch in batches:
            ids, mask = _pad([chunks[i] for i in batch], dev)
            with autocast_context(dev, cdtype):
                out = model(ids, attention_mask=mask, repr_layers=layers, return_logits=False)
            reps = {layer: out["representations"][layer].float().cpu().numpy() for layer in layers}
            for k, i in enumerate(batch):
                n = len(chunks[i].ids)
                outputs[i] = {layer: reps[layer][k, :n] for layer in layers}
                r = chunks[i].record
                remaining[r] -= 1
                if remaining[r] == 0:
                    yield _assemble(records[r][0], len(seqs[r]), per_record[r], outputs, chunks, layers, include)
                    for c in per_record[r]:
                        outputs.pop(c, None)
                    bar.update(1)
    finally:
        bar.close()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="seq", desc="embed", disable=not enabled, dynamic_ncols=True)
