"""nRC 13-class ncRNA classification: k-mer baseline, linear probe on frozen embeddings, fine-tuned heads.

From one command (resumable; ``python -m genesis_rna.eval_benchmarks nrc`` is the same)::

    genesis-rna evaluate nrc --data ../shared/data/classification/nrc --methods kmer probe conv finetune --seeds 0 1 --output eval/nrc

writes one JSON per finished (method, seed) under ``eval/nrc/methods``, the fine-tuned model directories under
``eval/nrc/models``, cached embeddings under ``eval/nrc/cache``, and ``results.json`` + ``results.md`` (one row
per method and seed, plus the equal-weight ensemble of the fine-tuned seeds). A rerun skips finished JSONs.
The full fine-tune costs about 46 min per seed on 2 CPU cores. ``benchmarks/nrc.py`` (the README table's
script) uses the same functions.

What each number means (all are test accuracy on the 2,600 test sequences, trained on the 6,320 train ones):

* ``kmer``: normalised k-mer counts (k = 1..4 by default, 340 features), standardised, multinomial
  logistic regression with the L2 strength chosen by stratified 5-fold cross-validation on train. A model
  that knows nothing about RNA beyond local composition; any embedding worth its name must beat it.
* ``probe``: the same classifier on the encoder's frozen mean embedding (last layer, mean over nucleotides;
  long sequences windowed as in ``genesis-rna embed``). This is the representation-quality number.
* ``conv``: ``genesis-rna finetune --mode frozen --pooling conv`` (a conv-pooling head on the frozen
  per-nucleotide rows; up to 100 epochs, patience 10, batch 64), early stopping on the fixed seed-0 10 % of
  train (:func:`with_valid_split`).
* ``finetune``: ``genesis-rna finetune --mode full --pooling conv`` (encoder trained too, 10 epochs, encoder
  learning rate 1e-4): the recipe of the best single-model row. With two or more seeds, an ensemble row
  averages the members' class probabilities with equal weights (:func:`ensemble_run`; nothing tuned).
* ``finetune_frozen`` (``benchmarks/nrc.py`` only): the MLP head on the frozen mean embedding.

Needs scikit-learn for ``kmer`` and ``probe`` (``pip install genesis-rna[bench]``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from .._fileutil import safe_filename
from ..download import file_digest
from ..errors import GenesisRNAError, InputError
from ..finetune.data import ColumnSpec, Example, load_examples

#: BEACON (Ren et al. 2024) nRC test accuracies; not measured here.
ANCHORS = {"RNA-FM fine-tuned (BEACON)": 0.9681, "CNN (BEACON)": 0.8862}
GOAL = 0.95
METHODS = ("kmer", "probe", "conv", "finetune")

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
    from ..finetune.metrics import accuracy, macro_f1

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
    from ..finetune.heads import encoder_features
    from ..model.device import resolve_device, resolve_dtype

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
        from .._fileutil import atomic_path

        with atomic_path(cache, suffix=".npy") as tmp:
            np.save(tmp, x)
    return x, time.process_time() - t0


# ----------------------------------------------------------------------------------------------- data
def subsample(examples: Sequence[Example], limit: int) -> list[Example]:
    """Every ``len // limit``-th example, i.e. about ``limit`` of them (the nRC files are grouped by class, so
    every class keeps its share); ``limit`` 0 keeps all. For smoke runs."""
    return list(examples[:: max(1, len(examples) // limit)]) if limit else list(examples)


def load_nrc(directory: str | os.PathLike, limit: int = 0) -> tuple[list[Example], list[Example]]:
    """``(train, test)`` examples from ``DIRECTORY/train.fa`` and ``DIRECTORY/test.fa`` (``>ID CLASS`` headers).

    ``limit`` > 0 subsamples train to about ``limit`` and test to about ``limit // 2`` (:func:`subsample`).
    A missing directory or file is an :class:`~genesis_rna.errors.InputError` naming it.
    """
    d = Path(directory)
    if limit < 0:
        raise InputError(f"--limit must be 0 (all) or positive, not {limit}")
    if not d.is_dir():
        raise InputError("nRC data directory not found (expected train.fa and test.fa with '>ID CLASS' headers)",
                         path=d)
    for name in ("train.fa", "test.fa"):
        if not (d / name).is_file():
            raise InputError("not found (nRC FASTA with '>ID CLASS' headers expected)", path=d / name)
    train = subsample(read_nrc(d / "train.fa"), limit)
    test = subsample(read_nrc(d / "test.fa"), max(1, limit // 2) if limit else 0)
    return train, test


def with_valid_split(train: Sequence[Example], valid_fraction: float = 0.1, seed: int = 0) -> list[Example]:
    """Copies of ``train`` (same order) with ``split`` set to ``train`` or ``valid``: the fixed seeded split
    (10 %, seed 0) that every nRC fine-tune early-stops on, whatever the training seed."""
    from ..finetune.data import assign_splits

    train = [copy.copy(e) for e in train]
    for e in train:
        e.split = None
    assign_splits(train, valid_fraction=valid_fraction, seed=seed)
    return train


# ----------------------------------------------------------------------------------------------- fine-tuning
def finetune_run(encoder, train: Sequence[Example], test: Sequence[Example], output_dir: str | os.PathLike, *,
                 mode: str = "full", pooling: str = "conv", epochs: int | None = None, patience: int | None = None,
                 batch_size: int | None = None, lr: float = 1e-3, encoder_lr: float = 1e-4, dropout: float = 0.0,
                 weight_decay: float = 0.0, seed: int = 0, dtype: str = "auto", device: str = "auto",
                 encoder_kind: str = "genesis", base_name: str = "",
                 features: tuple[np.ndarray, np.ndarray] | None = None, progress: bool = False) -> dict[str, Any]:
    """``genesis-rna finetune`` on nRC: train on ``train`` less its :func:`with_valid_split` 10 % (early stopping),
    test on ``test``; the model directory is written to ``output_dir`` (usable by ``genesis-rna predict``).

    ``encoder`` is the module to fine-tune (a loaded genesis-rna model, or a ``OneHotConvEncoder`` with
    ``encoder_kind="onehot"``); ``mode="full"`` trains it too (and changes it in place), ``"frozen"`` trains
    the head only. Unset ``epochs`` / ``patience`` / ``batch_size`` take the nRC recipes: full 10 / 3 / 16,
    frozen 100 / 10 / 64. ``seed`` drives head initialisation, batch order and dropout, not the valid split.
    ``features`` (frozen mode only): precomputed encoder outputs ``(train, test)`` in the order of the inputs.

    Returns test accuracy and macro-F1, valid accuracy, best epoch, epochs run, CPU seconds of training, wall
    seconds and ``model_dir``.
    """
    from ..finetune.trainer import FinetuneConfig, finetune

    full = mode == "full"
    train = with_valid_split(train)
    split = {"train": [e for e in train if e.split == "train"], "valid": [e for e in train if e.split == "valid"],
             "test": list(test)}
    feats = None
    if features is not None:
        tr, te = features
        feats = {part: [tr[k] for k, e in enumerate(train) if e.split == part] for part in ("train", "valid")}
        feats["test"] = list(te)
    cfg = FinetuneConfig(task="classification", output_dir=os.fspath(output_dir), mode=mode, pooling=pooling,
                         encoder=encoder_kind, onehot_layers=0,
                         epochs=epochs if epochs is not None else (10 if full else 100),
                         patience=patience if patience is not None else (3 if full else 10),
                         batch_size=batch_size if batch_size is not None else (16 if full else 64), lr=lr,
                         encoder_lr=encoder_lr, dropout=dropout, weight_decay=weight_decay, dtype=dtype,
                         device=device, progress=progress, base_model=base_name, seed=seed)
    t0 = time.perf_counter()
    res = finetune(cfg, split, ColumnSpec(), encoder, base_name=base_name, features=feats)
    return {"test_accuracy": res["test"]["accuracy"], "test_macro_f1": res["test"]["macro_f1"],
            "valid_accuracy": res["valid"]["accuracy"], "best_epoch": res["best_epoch"],
            "epochs_run": res["epochs_run"], "cpu_seconds": res["cpu_seconds"],
            "wall_seconds": time.perf_counter() - t0, "model_dir": cfg.output_dir}


def ensemble_run(model_dirs: Sequence[str | os.PathLike], train: Sequence[Example], test: Sequence[Example],
                 dtype: str = "auto", *, device: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Mean class probabilities of fine-tuned model directories (e.g. one recipe, several seeds).

    Nothing is tuned: members are averaged with equal weight, so the valid accuracy (on the
    :func:`with_valid_split` 10 % of ``train`` every member early-stopped on) is as honest as each member's and
    the test accuracy is a fresh measurement. Members must share their classes (a
    :class:`~genesis_rna.errors.GenesisRNAError` otherwise). Returns members, test accuracy and macro-F1, valid
    accuracy and the CPU seconds spent predicting.
    """
    from ..finetune.metrics import classification_metrics
    from ..finetune.predict import predict_sequences

    model_dirs = [os.fspath(d) for d in model_dirs]
    if not model_dirs:
        raise GenesisRNAError("an ensemble needs at least one model directory")
    valid = [e for e in with_valid_split(train) if e.split == "valid"]
    sums: dict[str, np.ndarray] = {}
    outputs = None
    t0 = time.process_time()
    for d in model_dirs:
        for part, examples in (("valid", valid), ("test", test)):
            probs, info = predict_sequences(d, [e.sequence for e in examples], device=device, dtype=dtype,
                                            progress=progress)
            if outputs is not None and info["outputs"] != outputs:
                raise GenesisRNAError(f"{d}: its classes differ from {model_dirs[0]}'s; cannot average")
            outputs = info["outputs"]
            sums[part] = sums.get(part, 0) + np.stack(probs)
    index = {c: k for k, c in enumerate(outputs)}
    for part, examples in (("valid", valid), ("test", test)):
        unknown = sorted({e.target for e in examples} - set(index))
        if unknown:
            raise GenesisRNAError(f"{model_dirs[0]}: {part} class(es) {', '.join(unknown)} are not among the "
                                  f"model's classes ({', '.join(outputs)})")
    metrics = {part: classification_metrics(np.array([index[e.target] for e in examples]),
                                            sums[part] / len(model_dirs))
               for part, examples in (("valid", valid), ("test", test))}
    return {"members": model_dirs, "test_accuracy": metrics["test"]["accuracy"],
            "test_macro_f1": metrics["test"]["macro_f1"], "valid_accuracy": metrics["valid"]["accuracy"],
            "cpu_seconds": time.process_time() - t0}


# ----------------------------------------------------------------------------------------------- the command


def machine() -> str:
    """This machine in one line: platform, processor, cores and torch threads."""
    import torch

    return (f"{platform.platform()} ({platform.processor() or platform.machine()}), {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads")


def command_line(args: argparse.Namespace) -> str:
    """The ``genesis-rna evaluate nrc`` command that reproduces ``args`` (defaults spelled out where they matter)."""
    parts = ["genesis-rna", "evaluate", "nrc", "--output", os.fspath(args.output), "--data", os.fspath(args.data)]
    parts += ["--methods", *args.methods]
    if set(args.methods) - {"kmer"}:
        parts += ["--encoder", args.encoder]
    if set(args.methods) & {"conv", "finetune"}:
        parts += ["--seeds", *map(str, args.seeds)]
    if "finetune" in args.methods:
        parts += ["--epochs", str(args.epochs), "--encoder-lr", f"{args.encoder_lr:g}"]
    if getattr(args, "dtype", "auto") != "auto":
        parts += ["--dtype", args.dtype]
    if getattr(args, "limit", 0):
        parts += ["--limit", str(args.limit)]
    return shlex.join(parts)


def _options(method: str, args: argparse.Namespace, seed: int | None = None,
             members: Sequence[int] | None = None) -> dict[str, Any]:
    """The settings a (method, seed) result depends on: a finished JSON is reused only when they match."""
    opts: dict[str, Any] = {} if method == "kmer" else {"encoder": args.encoder}
    if seed is not None:
        opts["seed"] = seed
    if method in ("finetune", "ensemble"):
        opts.update(epochs=args.epochs, encoder_lr=args.encoder_lr)
    if members is not None:
        opts["members"] = list(members)
    return opts


def _describe(data: dict) -> str:
    limit = f"--limit {data.get('limit')}" if data.get("limit") else "no --limit"
    return f"{limit}, {data.get('n_train')} train / {data.get('n_test')} test sequences"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise InputError("not a finished result (invalid JSON); delete it to rerun that method", path=path) from None


def _plan(methods: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, str, int | None]]:
    """``(name, method, seed)`` in order: kmer, probe, conv per seed, finetune per seed."""
    jobs = []
    for m in METHODS:
        if m in methods:
            jobs += [(m, m, None)] if m in ("kmer", "probe") else [(f"{m}-seed{s}", m, s) for s in seeds]
    return jobs


def run_nrc(args: argparse.Namespace) -> dict[str, Any]:
    """Run every requested (method, seed) not finished yet under ``args.output``, then the fine-tuned seeds'
    ensemble (2+ seeds); write ``methods/NAME.json`` per result, ``results.json`` and ``results.md``.

    ``args`` carries the options of :func:`add_arguments`. Returns :func:`summarise`'s results dict.
    """
    from .._fileutil import atomic_write

    out = Path(args.output)
    methods = list(dict.fromkeys(args.methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    seeds = list(dict.fromkeys(int(s) for s in args.seeds))
    if not seeds:
        raise InputError("--seeds needs at least one seed")
    if args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, not {args.epochs}")
    device, verbose = getattr(args, "device", "auto"), bool(getattr(args, "verbose", False))
    data_dir, limit = Path(args.data), int(getattr(args, "limit", 0) or 0)
    train, test = load_nrc(data_dir, limit)
    data = {"limit": limit, "n_train": len(train), "n_test": len(test),
            "n_classes": len({e.target for e in train}), "train_sha256": file_digest(data_dir / "train.fa"),
            "test_sha256": file_digest(data_dir / "test.fa")}
    for path in sorted((out / "methods").glob("*.json")):
        old = _read_record(path).get("data", {})
        if old != data:
            what = "other data files" if old.get("train_sha256") != data["train_sha256"] or \
                old.get("test_sha256") != data["test_sha256"] else _describe(old)
            raise InputError(f"holds nRC results of {what} ({path.name}), not of this run's {_describe(data)}; "
                             "use another --output", path=out)
    command = command_line(argparse.Namespace(**{**vars(args), "methods": methods, "seeds": seeds}))
    jobs = _plan(methods, seeds)
    if "finetune" in methods and len(seeds) >= 2:
        jobs.append((f"finetune-ensemble-seeds{'-'.join(map(str, sorted(seeds)))}", "ensemble", None))
    todo = []
    for name, method, seed in jobs:
        path = out / "methods" / f"{name}.json"
        opts = _options(method, args, seed, sorted(seeds) if method == "ensemble" else None)
        if path.is_file():
            old = _read_record(path).get("options")
            if old != opts:
                raise InputError(f"was run with {json.dumps(old)}, this run asks for {json.dumps(opts)}; delete it "
                                 "or use another --output", path=path)
            continue
        todo.append((name, method, seed, path, opts))
    pending = {m for _, m, _, _, _ in todo}
    if pending & {"kmer", "probe"}:
        _sklearn()  # fail before hours of embedding, not after
    if pending & {"probe", "conv", "finetune"}:
        from .. import pretrained

        pretrained.resolve_model_dir(args.encoder)  # an unknown encoder: one line now
    y_train, y_test = [e.target for e in train], [e.target for e in test]
    data_tag = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    for name, method, seed, path, opts in todo:
        t0, c0 = time.perf_counter(), time.process_time()
        print(f"nrc {name}: running on {len(train)} train / {len(test)} test sequences ...", file=sys.stderr,
              flush=True)
        if method == "kmer":
            xtr, xte = kmer_features([e.sequence for e in train]), kmer_features([e.sequence for e in test])
            res = linear_probe(xtr, y_train, xte, y_test)
            sel, sel_name = res["cv_accuracy"], "5-fold CV"
        elif method == "probe":
            from .. import pretrained

            model = pretrained.load(args.encoder)[0]
            enc_tag = hashlib.sha256(str(pretrained.resolve_model_dir(args.encoder).resolve()).encode()).hexdigest()
            cache = out / "cache" / "embeddings" / f"{safe_filename(Path(args.encoder).name)}-{enc_tag[:8]}-{data_tag}"
            xtr, s1 = mean_embeddings(model, [e.sequence for e in train], cache=cache / "train.npy", device=device,
                                      dtype=args.dtype, progress=verbose)
            xte, s2 = mean_embeddings(model, [e.sequence for e in test], cache=cache / "test.npy", device=device,
                                      dtype=args.dtype, progress=verbose)
            res = {**linear_probe(xtr, y_train, xte, y_test), "embed_cpu_seconds": s1 + s2,
                   "embeddings_from_cache": s1 + s2 == 0}
            sel, sel_name = res["cv_accuracy"], "5-fold CV"
        elif method in ("conv", "finetune"):
            from .. import pretrained

            model = pretrained.load(args.encoder)[0]  # fresh per seed: a full fine-tune changes it in place
            full = method == "finetune"
            res = finetune_run(model, train, test, out / "models" / name, mode="full" if full else "frozen",
                               pooling="conv", epochs=args.epochs if full else None, encoder_lr=args.encoder_lr,
                               seed=seed, dtype=args.dtype, device=device, base_name=args.encoder,
                               progress=verbose)
            res["train_cpu_seconds"] = res.pop("cpu_seconds")
            res["train_wall_seconds"] = res.pop("wall_seconds")
            sel, sel_name = res["valid_accuracy"], "10% of train, seed-0 split"
        else:  # the ensemble of the finetune seeds
            dirs = [out / "models" / f"finetune-seed{s}" for s in sorted(seeds)]
            res = ensemble_run(dirs, train, test, args.dtype, device=device, progress=verbose)
            res["members"] = [f"finetune-seed{s}" for s in sorted(seeds)]
            res["predict_cpu_seconds"] = res.pop("cpu_seconds")
            sel, sel_name = res["valid_accuracy"], "10% of train, seed-0 split"
        rec = {"name": name, "method": method, "seed": seed, "options": opts, "data": data,
               "test_accuracy": res["test_accuracy"], "test_macro_f1": res["test_macro_f1"],
               "selection_accuracy": sel, "selection": sel_name, "cpu_seconds": time.process_time() - c0,
               "wall_seconds": time.perf_counter() - t0, "machine": machine(), "command": command,
               "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "details": res}
        with atomic_write(path) as fh:
            json.dump(rec, fh, indent=1)
        print(f"nrc {name}: test accuracy {rec['test_accuracy']:.4f} ({rec['wall_seconds']:.0f} s wall, "
              f"{rec['cpu_seconds']:.0f} CPU s)", file=sys.stderr, flush=True)
    return summarise(out)


# ----------------------------------------------------------------------------------------------- tables
_ORDER = {"kmer": 0, "probe": 1, "conv": 2, "finetune": 3, "ensemble": 4}
_WHAT = {"kmer": "k-mer (k=1..4) frequencies + logistic regression",
         "probe": "linear probe, frozen last-layer mean embedding",
         "conv": "conv-pooling head on frozen per-nucleotide rows",
         "finetune": "full fine-tune (encoder + conv-pooling head)",
         "ensemble": "equal-weight mean of the fine-tuned seeds' class probabilities (nothing tuned)"}


def _notes(rec: dict) -> str:
    d = rec.get("details", {})
    if rec["method"] in ("kmer", "probe"):
        return f"C={d.get('C', float('nan')):g}, {d.get('n_features')} features" + (
            f"; embedding {d['embed_cpu_seconds']:.0f} CPU s" if d.get("embed_cpu_seconds") else "")
    if rec["method"] in ("conv", "finetune"):
        extra = f" (--epochs {rec['options']['epochs']}, encoder lr {rec['options']['encoder_lr']:g})" \
            if rec["method"] == "finetune" else ""
        return f"best epoch {d.get('best_epoch')} of {d.get('epochs_run')}{extra}"
    return "members: " + ", ".join(d.get("members", []))


def summarise(out: str | os.PathLike) -> dict[str, Any]:
    """Collect every ``OUTPUT/methods/*.json`` into ``results.json`` and ``results.md``; returns the results."""
    from .._fileutil import atomic_write

    out = Path(out)
    recs = [_read_record(p) for p in sorted((out / "methods").glob("*.json"))]
    recs.sort(key=lambda r: (_ORDER.get(r["method"], 9), r.get("seed") if r.get("seed") is not None else -1,
                             r["name"]))
    rows = [{"name": r["name"], "method": r["method"], "seed": r.get("seed"), "what": _WHAT.get(r["method"], ""),
             "encoder": r["options"].get("encoder", "none"), "test_accuracy": r["test_accuracy"],
             "test_macro_f1": r["test_macro_f1"], "selection_accuracy": r["selection_accuracy"],
             "selection": r["selection"], "cpu_seconds": r["cpu_seconds"], "wall_seconds": r["wall_seconds"],
             "machine": r["machine"], "notes": _notes(r)} for r in recs]
    data = recs[0]["data"] if recs else {}
    best = max(rows, key=lambda r: r["test_accuracy"]) if rows else None
    goal: dict[str, Any] = {"test_accuracy": GOAL}
    if best:
        goal["met"] = best["test_accuracy"] >= GOAL
        goal["text"] = "met" if goal["met"] else f"missed by {100 * (GOAL - best['test_accuracy']):.2f} points"
        goal["best"] = best["name"]
    result = {"benchmark": "nrc", "output": str(out), "data": data, "n_train": data.get("n_train"),
              "n_test": data.get("n_test"), "limit": data.get("limit"), "machine": machine(), "rows": rows,
              "goal": goal, "anchors": ANCHORS, "commands": sorted({r["command"] for r in recs}), "runs": recs}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "results.json") as fh:
        json.dump(result, fh, indent=1)
    with atomic_write(out / "results.md") as fh:
        fh.write(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The results table: one row per method and seed (and the ensemble), then goal, anchors, machines, commands."""
    data = result.get("data") or {}
    lines = [f"# nRC ncRNA classification ({data.get('n_classes', 13)} classes): test accuracy", ""]
    if not result["rows"]:
        return "\n".join(lines + ["Nothing finished yet.", ""])
    lines.append(f"Train {data['n_train']} / test {data['n_test']} sequences." + (
        f" **Smoke run (`--limit {data['limit']}`): not comparable with the full benchmark.**" if data.get("limit")
        else ""))
    lines += ["", "| row | method | encoder | test accuracy | test macro-F1 | CV / valid accuracy | CPU s | wall s | "
              "notes |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r['what']} | {r['encoder']} | {r['test_accuracy']:.4f} | "
                     f"{r['test_macro_f1']:.4f} | {r['selection_accuracy']:.4f} ({r['selection']}) | "
                     f"{r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} | {r['notes']} |")
    g = result["goal"]
    best = next(r for r in result["rows"] if r["name"] == g["best"])
    lines += ["", f"Goal: test accuracy >= {GOAL:.0%}: **{g['text']}** (best row {best['name']}, "
              f"{best['test_accuracy']:.2%}). Anchors (BEACON, not measured here): "
              + ", ".join(f"{k} {v:.2%}" for k, v in ANCHORS.items()) + ".", "", "Machines:", ""]
    machines: dict[str, list[str]] = {}
    for r in result["rows"]:
        machines.setdefault(r["machine"], []).append(r["name"])
    lines += [f"- {m}: {', '.join(names)}" for m, names in machines.items()]
    lines += ["", "Commands:", ""] + [f"    {c}" for c in result["commands"]]
    return "\n".join(lines) + "\n"


def summary_line(result: dict[str, Any]) -> str:
    """One line: every row's test accuracy, the goal, and where the table is."""
    rows = result.get("rows") or []
    if not rows:
        return "nRC: nothing finished yet"
    accs = ", ".join(f"{r['name']} {r['test_accuracy']:.3f}" for r in rows)
    limit = f" [smoke run, --limit {result['limit']}]" if result.get("limit") else ""
    return (f"nRC test accuracy: {accs}; goal {GOAL:.2f} {result['goal']['text']}{limit} -> "
            f"{Path(result['output']) / 'results.md'}")


__all__ = ["read_nrc", "kmer_features", "linear_probe", "mean_embeddings", "DEFAULT_CS", "ANCHORS",
           "GOAL", "METHODS", "subsample", "load_nrc", "with_valid_split", "finetune_run", "ensemble_run",
           "run_nrc", "summarise", "markdown", "summary_line"]
