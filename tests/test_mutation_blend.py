"""The fine-tune + ridge blend of benchmarks/mutation_effects.py, against hand computations and limiting cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mutation_effects import blend_with_ridge  # noqa: E402


def _toy(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    split = np.array(["train"] * (n // 3) + ["valid"] * (n // 3) + ["test"] * (n - 2 * (n // 3)))
    return rng, y, split


def test_a_perfect_finetune_gets_all_the_weight():
    rng, y, split = _toy()
    ridge = y + rng.normal(scale=1.0, size=y.size)
    out = blend_with_ridge(3 * y + 7, ridge, y, split, n_boot=200)   # any affine map of y ranks perfectly
    assert out["weight_finetuned"] == 1.0
    assert out["test_spearman"] > 0.999
    assert out["bootstrap_test_diff_vs_ridge"]["ci95"][0] > 0.1


def test_noise_gets_no_weight_and_no_gain():
    rng, y, split = _toy(seed=1)
    ridge = y + rng.normal(scale=0.5, size=y.size)
    out = blend_with_ridge(rng.normal(size=y.size), ridge, y, split, n_boot=200)
    assert out["weight_finetuned"] <= 0.15
    lo, hi = out["bootstrap_test_diff_vs_ridge"]["ci95"]
    assert lo <= 0.0 + 1e-12 and hi < 0.05


def test_blend_equals_the_hand_formula_at_the_chosen_weight():
    rng, y, split = _toy(seed=2)
    ridge = y + rng.normal(scale=0.8, size=y.size)
    ft = y + rng.normal(scale=0.8, size=y.size)          # independent errors: a blend should help
    out = blend_with_ridge(ft, ridge, y, split, n_boot=100)
    va, te = split == "valid", split == "test"
    w = out["weight_finetuned"]
    assert 0.2 <= w <= 0.8
    hand = w * (ft - ft[va].mean()) / ft[va].std() + (1 - w) * (ridge - ridge[va].mean()) / ridge[va].std()
    assert abs(out["test_spearman"] - spearmanr(hand[te], y[te]).statistic) < 1e-12
    best = max(spearmanr((v * ft / ft[va].std() + (1 - v) * ridge / ridge[va].std())[va], y[va]).statistic
               for v in np.round(np.linspace(0, 1, 21), 2))
    assert abs(out["valid_spearman"] - best) < 1e-9
