"""nRC 13-class ncRNA classification: k-mer baseline, linear probe on frozen embeddings, fine-tuned head.

What each number means (all are test accuracy on the 2,600 test sequences, trained on the 6,320 train ones):

* ``kmer_logreg``: normalised k-mer counts (k = 1..4 by default, 340 features), standardised, multinomial
  logistic regression with the L2 strength chosen by stratified 5-fold cross-validation on train. A model
  that knows nothing about RNA beyond local composition; any embedding worth its name must beat it.
* ``probe``: the same classifier on the encoder's frozen mean embedding (last layer, mean over nucleotides;
  long sequences windowed as in ``genesis-rna embed``). This is the representation-quality number.
* ``finetune_frozen``: ``genesis-rna finetune --mode frozen`` (the MLP head on the same frozen mean embedding,
  early stopping on a random 10 % of train).
* ``finetune_full``: ``genesis-rna finetune --mode full`` (encoder trained too), when asked for (slow on CPU).

Needs scikit-learn (``pip install genesis-rna[bench]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenesisRNAError
from .finetune_data import ColumnSpec, Example, load_examples

# Up to 100: on nRC the frozen embeddings chose the old top (C = 10) and still choose C = 100 (k-mers: 0.03).
DEFAULT_CS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def read_nrc(path: str | os.PathLike) -> list[Example]:
    """nRC FASTA (``>ID CLASS``): examples with the class as target."""
    return load_examples(path, "classification", ColumnSpec())


def kmer_features(sequences: Sequence[str], ks: Sequence[int] = (1, 2, 3, 4)) -> np.ndarray:
    """Per sequence and k, the frequencies of the 4^k ACGU k-mers (k-mers with N are skipped)."""
    cols = {"".join(p): i for i, p in enumerate(q for k in ks for q in product("ACGU", repeat=k))}
    x = np.zeros((len(sequences), len(cols)), dtype=np.float32)
    for r, s in enumerate(sequences):
        for k in ks:
            n = max(1, len(s) - k + 1)
            for i in range(len(s) - k + 1):
                c = cols.get(s[i: i + k])
                if c is not None:
                    x[r, c] += 1.0 / n
    return x


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise GenesisRNAError("the nRC probe needs scikit-learn: pip install 'genesis-rna[bench]'") from None
    return LogisticRegression, GridSearchCV, StratifiedKFold, make_pipeline, StandardScaler


def linear_probe(x_train: np.ndarray, y_train: Sequence[str], x_test: np.ndarray, y_test: Sequence[str], *,
                 cs: Sequence[float] = DEFAULT_CS, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Standardise, then multinomial logistic regression with C chosen by stratified k-fold CV on train."""
    LogisticRegression, GridSearchCV, StratifiedKFold, make_pipeline, StandardScaler = _sklearn()
    from .train_finetune import accuracy, macro_f1

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    search = GridSearchCV(pipe, {"logisticregression__C": list(cs)}, cv=StratifiedKFold(folds, shuffle=True,
                          random_state=seed), scoring="accuracy", n_jobs=1)
    t0 = time.process_time()
    search.fit(x_train, np.asarray(y_train))
    pred = search.predict(x_test)
    y_test = np.asarray(y_test)
    per_class = {c: float(np.mean(pred[y_test == c] == c)) for c in sorted(set(y_test))}
    return {"test_accuracy": accuracy(y_test, pred), "test_macro_f1": macro_f1(y_test, pred),
            "cv_accuracy": float(search.best_score_), "C": float(search.best_params_["logisticregression__C"]),
            "per_class_test_accuracy": per_class, "n_features": int(x_train.shape[1]),
            "fit_cpu_seconds": time.process_time() - t0}


def mean_embeddings(model, sequences: Sequence[str], *, cache: str | os.PathLike | None = None,
                    device: str = "auto", dtype: str = "auto", tokens_per_batch: int = 8192,
                    progress: bool = False) -> tuple[np.ndarray, float]:
    """``[N, d]`` last-layer mean embeddings (loaded from / saved to ``cache`` .npy) and the CPU seconds spent."""
    from .inference import resolve_device, resolve_dtype
    from .train_finetune import encoder_features

    if cache and Path(cache).is_file():
        x = np.load(cache)
        if x.shape[0] == len(sequences):
            return x, 0.0
    dev = resolve_device(device)
    t0 = time.process_time()
    feats = encoder_features(model, sequences, "mean", device=dev, dtype=resolve_dtype(dtype, dev),
                             tokens_per_batch=tokens_per_batch, progress=progress)
    x = np.stack(feats).astype(np.float32)
    if cache:
        from ._fileutil import atomic_path

        with atomic_path(cache, suffix=".npy") as tmp:
            np.save(tmp, x)
    return x, time.process_time() - t0


__all__ = ["read_nrc", "kmer_features", "linear_probe", "mean_embeddings", "DEFAULT_CS"]
