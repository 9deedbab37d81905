"""Task metrics of fine-tuning (accuracy, macro-F1, AUROC, AP, Pearson/Spearman, RMSE, MCRMSE) and which way
is better."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LOWER_IS_BETTER = {"loss", "rmse", "mcrmse"}


# =============================================================================================== metrics
def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank, as Spearman's rho needs."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or xs[end] != xs[start]:
            ranks[order[start:end]] = 0.5 * (start + end - 1) + 1
            start = end
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_rank(np.asarray(a, np.float64)), _rank(np.asarray(b, np.float64)))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in ``y`` or ``pred`` (sklearn's ``average='macro'``)."""
    y, pred = np.asarray(y), np.asarray(pred)
    scores = []
    for c in np.union1d(y, pred):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _rank(np.asarray(score, np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AUPRC as average precision: ``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return math.nan
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    s, t = np.asarray(score, np.float64)[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct threshold
    tp = np.cumsum(t)[last]
    precision, recall = tp / (last + 1), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mcrmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean column-wise RMSE over ``[N, k]`` arrays, NaN targets skipped (the OpenVaccine/Kaggle metric)."""
    cols = [rmse(y[~np.isnan(y[:, j]), j], pred[~np.isnan(y[:, j]), j]) for j in range(y.shape[1])
            if (~np.isnan(y[:, j])).any()]
    return float(np.mean(cols)) if cols else math.nan


def classification_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """accuracy, macro-F1, cross-entropy; AUROC and AUPRC for two classes."""
    y = np.asarray(y)
    pred = probs.argmax(axis=1)
    out = {"accuracy": accuracy(y, pred), "macro_f1": macro_f1(y, pred),
           "loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))}
    if probs.shape[1] == 2:
        out["auroc"] = auroc(y == 1, probs[:, 1])
        out["auprc"] = average_precision(y == 1, probs[:, 1])
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Per target Spearman / Pearson / RMSE (NaN targets skipped), their means, and MCRMSE."""
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        ok = ~np.isnan(y[:, j])
        out[f"{name}/spearman"] = spearman(y[ok, j], pred[ok, j])
        out[f"{name}/pearson"] = pearson(y[ok, j], pred[ok, j])
        out[f"{name}/rmse"] = rmse(y[ok, j], pred[ok, j])
    for key in ("spearman", "pearson", "rmse"):
        out[key] = float(np.nanmean([out[f"{n}/{key}"] for n in names]))
    out["mcrmse"] = mcrmse(y, pred)
    if len(names) == 1:
        out = {k: v for k, v in out.items() if "/" not in k}
    return out


def default_monitor(task: str, n_outputs: int) -> str:
    """Metric for early stopping: AUROC (binary), accuracy, macro-F1 (per token), Spearman or MCRMSE."""
    if task == "classification":
        return "auroc" if n_outputs == 2 else "accuracy"
    if task == "token-classification":
        return "macro_f1"
    if task == "regression" and n_outputs == 1:
        return "spearman"
    return "mcrmse"


def better(metric: str, new: float, old: float) -> bool:
    if math.isnan(new):
        return False
    return math.isnan(old) or (new < old if metric in LOWER_IS_BETTER else new > old)


# =============================================================================================== models
