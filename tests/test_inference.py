"""Batching, windows and embedding writers: properties that must hold for any input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genesis_rna.data.batching import token_budget_batches
from genesis_rna.errors import InputError
from genesis_rna.io.embeddings import EmbeddingWriter, read_embeddings
from genesis_rna.model.embed import EmbeddingResult, window_owner, window_spans


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=60), st.integers(64, 8192))
def test_token_budget_batches_cover_everything_once_within_budget(lengths, budget):
    batches = token_budget_batches(lengths, budget)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or width * len(b) <= budget


@given(st.integers(1, 5000), st.integers(8, 1022), st.data())
def test_window_spans_cover_sequence(length, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    spans = window_spans(length, window, overlap)
    covered = np.zeros(length, bool)
    for s, e in spans:
        assert 0 <= s < e <= length and e - s <= window
        covered[s:e] = True
    assert covered.all()
    if length > window:
        assert all(e - s == window for s, e in spans)
        # consecutive windows overlap by at least the requested amount
        assert all(prev[1] - nxt[0] >= overlap for prev, nxt in zip(spans, spans[1:], strict=False))


def test_window_owner_picks_most_central_window():
    spans = window_spans(10, 6, 2)  # [(0,6), (4,10)]
    assert spans == [(0, 6), (4, 10)]
    owner = window_owner(10, spans)
    # position 4: depth 1 in the first window (edge at 5) and 0 in the second -> first; position 5 -> second
    assert owner.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_bad_window_overlap():
    with pytest.raises(InputError):
        window_spans(100, 10, 10)


@pytest.mark.parametrize("target", ["out.npz", "out.h5", "outdir"])
def test_embedding_writers_round_trip(tmp_path, target):
    rng = np.random.default_rng(0)
    results = []
    for rid, n in [("seq/1-10", 10), ("b c", 3)]:
        per_tok = rng.normal(size=(n, 4)).astype(np.float32)
        results.append(EmbeddingResult(rid, n, per_tok={4: per_tok}, mean={4: per_tok.mean(0)}))
    path = tmp_path / target
    with EmbeddingWriter(path) as w:
        for r in results:
            w.add(r)
    back = read_embeddings(path)
    assert set(back) == {"seq/1-10", "b c"}
    for r in results:
        np.testing.assert_array_equal(back[r.id]["per_tok_layer4"], r.per_tok[4])
        np.testing.assert_allclose(back[r.id]["mean_layer4"], r.mean[4])


@pytest.mark.parametrize("target", ["out.npz", "out.h5", "outdir"])
def test_embedding_writer_leaves_nothing_on_failure(tmp_path, target):
    path = tmp_path / target
    with pytest.raises(RuntimeError):
        with EmbeddingWriter(path) as w:
            w.add(EmbeddingResult("a", 2, mean={1: np.zeros(3, np.float32)}))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_duplicate_ids_rejected(tmp_path):
    with pytest.raises(InputError, match="duplicate"):
        with EmbeddingWriter(tmp_path / "x.npz") as w:
            w.add(EmbeddingResult("a", 1, mean={1: np.zeros(2, np.float32)}))
            w.add(EmbeddingResult("a", 1, mean={1: np.zeros(2, np.float32)}))
    assert list(tmp_path.iterdir()) == []
