"""Comparative (template) structure prediction: transfer the known structure of the most similar sequence.

When a sequence has a close relative of known structure (another 5S rRNA, another tRNA), aligning the two and
copying the relative's pairs through the alignment is the oldest and still one of the most accurate ways to
predict its structure. On ArchiveII's random k-fold split almost every test sequence has such a relative in the
training folds, which is why models trained on those folds score far above their family-fold numbers; this module
makes that explicit as a baseline, and mixes it with a thermodynamic model for sequences without a close relative.

Search: cosine similarity of k-mer count vectors picks a few candidates (cheap, one matrix product), then a
semi-global alignment (Biopython's ``PairwiseAligner``, end gaps free) of each candidate decides; identity is the
number of identical aligned columns divided by the query length, so a short fragment of a long template does not
look identical. Transfer: a template pair ``(a, b)`` becomes a query pair ``(i, j)`` when both ends are aligned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

__all__ = ["Template", "TemplateHit", "TemplateLibrary", "transfer_pairs", "mix_with_prior"]

_BASES = "ACGU"


@dataclass(frozen=True)
class Template:
    """A sequence of known structure: ``partner[i] = j`` (0-based) or -1 (docs/architecture.md partner arrays)."""

    id: str
    sequence: str
    partner: np.ndarray


@dataclass(frozen=True)
class TemplateHit:
    """The best template for a query: its id, the identity, and the query->template position map (-1 = gap)."""

    template_id: str
    identity: float
    query_to_template: np.ndarray


def _kmer_index(k: int) -> dict[str, int]:
    return {"".join(p): n for n, p in enumerate(product(_BASES, repeat=k))}


def _aligner():
    from Bio.Align import PairwiseAligner

    aligner = PairwiseAligner()
    aligner.mode = "global"
    aligner.match_score, aligner.mismatch_score = 1.0, -1.0
    aligner.open_gap_score, aligner.extend_gap_score = -2.0, -0.5
    aligner.end_gap_score = 0.0  # semi-global: overhangs at either end of either sequence are free
    return aligner


def transfer_pairs(template_partner: np.ndarray, query_to_template: np.ndarray) -> np.ndarray:
    """Query partner array with every template pair whose two ends are aligned to query positions."""
    template_to_query = np.full(len(template_partner), -1, dtype=np.int64)
    aligned = np.flatnonzero(query_to_template >= 0)
    template_to_query[query_to_template[aligned]] = aligned
    partner = np.full(len(query_to_template), -1, dtype=np.int64)
    for i in aligned:
        b = template_partner[query_to_template[i]]
        if b >= 0 and template_to_query[b] >= 0:
            partner[i] = template_to_query[b]
    return partner


def mix_with_prior(transferred: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """``weight * template + (1 - weight) * prior`` as a symmetric pair-probability matrix (for MEA decoding)."""
    length = len(transferred)
    template = np.zeros((length, length), dtype=np.float32)
    i = np.flatnonzero(transferred >= 0)
    template[i, transferred[i]] = 1.0
    return weight * template + (1.0 - weight) * np.asarray(prior, dtype=np.float32)


class TemplateLibrary:
    """Sequences of known structure, searchable by k-mer prefilter + alignment."""

    def __init__(self, templates: Sequence[Template], k: int = 3, candidates: int = 8) -> None:
        if not templates:
            raise ValueError("a template library needs at least one template")
        self.templates = list(templates)
        self.k, self.candidates = k, candidates
        self._index = _kmer_index(k)
        self._profiles = np.stack([self._profile(t.sequence) for t in self.templates])
        self._aligner = _aligner()
        self._position = {t.id: n for n, t in enumerate(self.templates)}

    def _profile(self, sequence: str) -> np.ndarray:
        counts = np.zeros(len(self._index), dtype=np.float32)
        for n in range(len(sequence) - self.k + 1):
            idx = self._index.get(sequence[n:n + self.k])
            if idx is not None:
                counts[idx] += 1
        norm = np.linalg.norm(counts)
        return counts / norm if norm else counts

    def _align(self, query: str, template: str) -> tuple[float, np.ndarray]:
        alignment = self._aligner.align(template, query)[0]
        mapping = np.full(len(query), -1, dtype=np.int64)
        same = 0
        for (t0, t1), (q0, q1) in zip(*alignment.aligned, strict=True):
            mapping[q0:q1] = np.arange(t0, t1)
            same += sum(a == b for a, b in zip(template[t0:t1], query[q0:q1], strict=True))
        return same / max(1, len(query)), mapping

    def best_hit(self, query: str, exclude: str | None = None) -> TemplateHit:
        """The template with the highest alignment identity among the k-mer nearest candidates."""
        sims = self._profiles @ self._profile(query)
        order = np.argsort(-sims)
        best: TemplateHit | None = None
        tried = 0
        for n in order:
            t = self.templates[n]
            if t.id == exclude:
                continue
            identity, mapping = self._align(query, t.sequence)
            if best is None or identity > best.identity:
                best = TemplateHit(t.id, identity, mapping)
            tried += 1
            if tried >= self.candidates:
                break
        assert best is not None
        return best

    def predict(self, query: str, exclude: str | None = None) -> tuple[np.ndarray, TemplateHit]:
        """The transferred partner array (not yet checked for canonical pairs) and the hit it came from."""
        hit = self.best_hit(query, exclude)
        template = self.templates[self._position[hit.template_id]]
        return transfer_pairs(np.asarray(template.partner), hit.query_to_template), hit
