"""Metric and baseline code of benchmarks/rbp_binding.py and benchmarks/openvaccine.py, checked by hand and against
scikit-learn / the fine-tuning module's own metric."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

pytest.importorskip("sklearn")

import openvaccine  # noqa: E402
import rbp_binding  # noqa: E402

from genesis_rna.finetune.data import Example  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "downstream"


def test_seeded_subsample_is_a_deterministic_ordered_subset():
    items = list(range(100))
    a = rbp_binding.seeded_subsample(items, 10, seed=3)
    assert a == rbp_binding.seeded_subsample(items, 10, seed=3)
    assert len(a) == 10 and len(set(a)) == 10 and a == sorted(a) and set(a) <= set(items)
    assert a != rbp_binding.seeded_subsample(items, 10, seed=4)
    assert rbp_binding.seeded_subsample(items, 0) == items
    assert rbp_binding.seeded_subsample(items, 500) == items


def test_binary_metrics_by_hand():
    # ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): 3 of 4 positive-negative pairs ordered -> AUROC 0.75;
    # AP = 0.5 * 1 (first hit at precision 1) + 0.5 * 2/3 (second hit at precision 2/3)
    m = rbp_binding.binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_kmer_features_k1_to_5_by_hand():
    x = rbp_binding.kmer_features(["ACGUA", "NNAAN"], rbp_binding.KS)
    assert x.shape == (2, 4 + 16 + 64 + 256 + 1024)
    # k = 1 block (A C G U): ACGUA has 2 A of 5 positions
    assert x[0, :4].tolist() == pytest.approx([0.4, 0.2, 0.2, 0.2])
    # the only 5-mer of ACGUA, at its lexicographic index in the k = 5 block
    idx5 = 4 + 16 + 64 + 256 + int("".join({"A": "0", "C": "1", "G": "2", "U": "3"}[c] for c in "ACGUA"), 4)
    assert x[0, idx5] == pytest.approx(1.0)
    assert x[0, 4 + 16 + 64 + 256:].sum() == pytest.approx(1.0)
    # k-mers with N are skipped: NNAAN has one AA among its 4 dimers
    assert x[1, 4] == pytest.approx(0.25) and x[1, 4:20].sum() == pytest.approx(0.25)


def test_logreg_valid_c_picks_the_best_validation_auroc():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
    res = rbp_binding.logreg_valid_c(x[:200], y[:200], x[200:300], y[200:300], x[300:], y[300:], cs=(1e-4, 1.0))
    assert res["n_features"] == 5 and res["n_train"] == 200 and res["C"] in (1e-4, 1.0)
    assert res["test_auroc"] > 0.85
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs = {}
    for c in (1e-4, 1.0):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x[:200], y[:200])
        aucs[c] = roc_auc_score(y[200:300], pipe.predict_proba(x[200:300])[:, 1])
    assert res["valid_auroc"] == pytest.approx(max(aucs.values()))


def test_mcrmse_pooled_by_hand_and_against_finetune_metric():
    nan = math.nan
    y = [np.array([[1.0, 0.0], [2.0, nan], [nan, nan]]), np.array([[0.0, 1.0]])]
    p = [np.array([[0.0, 0.0], [2.0, 5.0], [9.0, 9.0]]), np.array([[2.0, 0.0]])]
    # column 0: errors 1, 0, 2 -> sqrt(5/3); column 1: errors 0, 1 -> sqrt(1/2); positions with NaN ignored
    want = (math.sqrt(5 / 3) + math.sqrt(1 / 2)) / 2
    assert openvaccine.mcrmse_pooled(y, p) == pytest.approx(want)
    from genesis_rna.finetune.metrics import mcrmse

    assert mcrmse(np.concatenate(y), np.concatenate(p)) == pytest.approx(want)


def test_position_mean_by_hand():
    nan = math.nan
    train = [np.array([[1.0], [nan]]), np.array([[3.0], [4.0]])]
    out = openvaccine.position_mean(train, 3)
    assert out[:, 0].tolist() == pytest.approx([2.0, 4.0, 0.0])  # third position: no data -> 0


def test_fold_split_uses_next_fold_for_validation():
    ex = [Example(str(i), "ACGU", None, None, {"fold": i % 5}) for i in range(20)]
    split = openvaccine.fold_split(ex, 4)
    assert {e.row["fold"] for e in split["test"]} == {4}
    assert {e.row["fold"] for e in split["valid"]} == {0}
    assert {e.row["fold"] for e in split["train"]} == {1, 2, 3}
    assert sum(len(v) for v in split.values()) == 20 and ex[0].split is None  # copies, input untouched


@pytest.mark.skipif(not (DATA / "openvaccine" / "train.jsonl.gz").is_file(), reason="shared data absent")
def test_openvaccine_rows_and_targets_from_real_data():
    ex = openvaccine.load_data()
    assert len(ex) == 1587  # SN_filter == 1 rows, as the data README counts them
    t = ex[0].target
    assert t.shape == (107, 3) and not np.isnan(t[:68]).any() and np.isnan(t[68:]).all()
