"""RNA-protein binding (CLIP-seq windows, PUM2 / QKI / ELAVL1): k-mer logistic regression vs genesis-rna embeddings.

    python benchmarks/rbp_binding.py                                   # all three proteins, shipped model
    python benchmarks/rbp_binding.py --proteins PUM2 --train-size 2000 # a quick run
    python benchmarks/rbp_binding.py --full-epochs 2 --full-train-size 3000   # also fine-tune the encoder (slow)

Per protein (data: ../shared/data/downstream/rbp/<P>/{train,test}.csv.gz; 101-nt windows, 20 % bound):

* 10 % of train.csv (seeded, seed 0) is held out as the validation split: it picks logistic-regression C and
  the early-stopping epoch; every number in the table is on the full test.csv (10,000 windows).
* k-mer baseline: k = 1..5 frequencies (1,364 features), standardised, logistic regression; trained on all of
  the remaining train split, and also on the same subsample the language model saw (a like-for-like row).
* genesis-rna: mean embeddings of the final layer and the concatenation of layers 1..n (one encoder pass), each
  with the same logistic regression; and the ``genesis-rna finetune --mode frozen`` MLP head (train_finetune's
  ``finetune``) on the cached final-layer means. Embedding costs CPU time, so the training split is a seeded
  subsample of ``--train-size`` windows (the validation split is subsampled in proportion).

Writes benchmarks/results/rbp_binding/results.{json,md}; prints the machine and the command.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis_rna._fileutil import atomic_write  # noqa: E402
from genesis_rna.evaluate.nrc import kmer_features  # noqa: E402
from genesis_rna.finetune.data import ColumnSpec, Example, assign_splits, load_examples  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "downstream" / "rbp"
OUT = ROOT / "benchmarks" / "results" / "rbp_binding"
PROTEINS = ("PUM2", "QKI", "ELAVL1")
KS = (1, 2, 3, 4, 5)
CS = (0.0001, 0.001, 0.01, 0.1, 1.0, 10.0)


def machine() -> str:
    """One line naming the CPU and the thread setting (numbers are only comparable within one run)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores (shared with other jobs), torch CPU, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def save_results(results: dict, path: Path, write_markdown) -> None:
    """``results.json`` written atomically, then ``results.md`` beside it (after every protein/fold: resumable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        json.dump(results, fh, indent=1)
    write_markdown(results, path.parent / "results.md")


def finish_run(results: dict, path: Path, command: str, t0: float, c0: float, write_markdown) -> int:
    """Record this run's command, wall and CPU seconds, save, and say where the results are."""
    results.setdefault("runs", []).append({"command": command, "wall_seconds": time.perf_counter() - t0,
                                           "cpu_seconds": time.process_time() - c0})
    save_results(results, path, write_markdown)
    print(f"-> {path}, {path.parent / 'results.md'} ({time.perf_counter() - t0:.0f} s wall, "
          f"{time.process_time() - c0:.0f} CPU s)")
    return 0



def seeded_subsample(items: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
    """``n`` items drawn without replacement by a seeded shuffle, kept in input order (all when n <= 0 or >= len)."""
    if n <= 0 or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def binary_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC and AUPRC (average precision) from scikit-learn, the reference implementation."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"auroc": float(roc_auc_score(y, score)), "auprc": float(average_precision_score(y, score))}


def logreg_valid_c(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                   x_test: np.ndarray, y_test: np.ndarray, cs: Sequence[float] = CS) -> dict[str, Any]:
    """Standardise + L2 logistic regression; C with the best validation AUROC; test metrics of that fit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.process_time()
    best: tuple[float, float, Any] | None = None
    for c in cs:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        pipe.fit(x_train, y_train)
        auc = binary_metrics(y_valid, pipe.predict_proba(x_valid)[:, 1])["auroc"]
        if best is None or auc > best[0]:
            best = (auc, c, pipe)
    assert best is not None
    test = binary_metrics(y_test, best[2].predict_proba(x_test)[:, 1])
    return {"test_auroc": test["auroc"], "test_auprc": test["auprc"], "valid_auroc": best[0], "C": best[1],
            "n_train": int(len(y_train)), "n_features": int(x_train.shape[1]),
            "fit_cpu_seconds": time.process_time() - t0}


def layer_means(model, sequences: Sequence[str], *, dtype: str) -> tuple[np.ndarray, float]:
    """``[N, n_layers, d]`` per-layer mean embeddings (layers 1..n, one pass) and the CPU seconds spent."""
    from genesis_rna.model.embed import embed_sequences

    n = model.config.n_layers
    layers = list(range(1, n + 1))
    out = np.zeros((len(sequences), n, model.config.d_model), dtype=np.float32)
    t0 = time.process_time()
    records = [(str(i), s) for i, s in enumerate(sequences)]
    for res in embed_sequences(model, records, repr_layers=layers, include=("mean",), tokens_per_batch=8192,
                               device="cpu", dtype=dtype, progress=sys.stderr.isatty()):
        out[int(res.id)] = np.stack([res.mean[layer] for layer in layers])
    return out, time.process_time() - t0


def cached_layer_means(model, sequences: Sequence[str], cache: Path, dtype: str) -> tuple[np.ndarray, float]:
    if cache.is_file():
        x = np.load(cache)
        if x.shape[0] == len(sequences):
            return x, 0.0
    x, cpu = layer_means(model, sequences, dtype=dtype)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, x)
    tmp.replace(cache)
    return x, cpu


def load_protein(protein: str) -> tuple[list[Example], list[Example], list[Example]]:
    """Train (90 %), valid (10 %, seeded) and test examples of one protein."""
    spec = ColumnSpec()
    train = load_examples(DATA / protein / "train.csv.gz", "classification", spec)
    test = load_examples(DATA / protein / "test.csv.gz", "classification", spec)
    assign_splits(train, valid_fraction=0.1, seed=0)
    return [e for e in train if e.split == "train"], [e for e in train if e.split == "valid"], test


def _labels(examples: Sequence[Example]) -> np.ndarray:

    return np.asarray([int(e.target) for e in examples])


def finetune_head(model, name: str, split: dict[str, list[Example]], feats: dict[str, list[np.ndarray]] | None,
                  mode: str, run_dir: Path, epochs: int, dtype: str, pooling: str = "mean",
                  patience: int | None = None, encoder: str = "genesis") -> dict[str, Any]:
    """The project's fine-tuning (``genesis-rna finetune --task classification``) with cached features."""
    from genesis_rna.finetune.trainer import FinetuneConfig, finetune

    split = {k: [copy.copy(e) for e in v] for k, v in split.items()}
    cfg = FinetuneConfig(task="classification", output_dir=str(run_dir), mode=mode, base_model=name,
                         encoder=encoder, onehot_layers=0, pooling=pooling, epochs=epochs,
                         patience=patience or (10 if mode == "frozen" else 2),
                         batch_size=64 if mode == "frozen" else 32, dtype=dtype, device="cpu",
                         progress=sys.stderr.isatty())
    t0 = time.perf_counter()
    res = finetune(cfg, split, ColumnSpec(), model, labels=["0", "1"], base_name=name, features=feats)
    return {"test_auroc": res["test"]["auroc"], "test_auprc": res["test"]["auprc"],
            "valid_auroc": res["valid"]["auroc"], "best_epoch": res["best_epoch"], "epochs_run": res["epochs_run"],
            "n_train": len(split["train"]), "cpu_seconds": res["cpu_seconds"],
            "wall_seconds": time.perf_counter() - t0, "model_dir": str(run_dir)}


def run_protein(protein: str, model, model_name: str, args) -> dict[str, Any]:
    train, valid, test = load_protein(protein)
    test = seeded_subsample(test, args.test_size, seed=4)  # smoke runs only; the table uses the full test set
    y_tr, y_va, y_te = _labels(train), _labels(valid), _labels(test)
    row: dict[str, Any] = {"n_train_full": len(train), "n_valid_full": len(valid), "n_test": len(test)}
    t0 = time.process_time()
    kx = {k: kmer_features([e.sequence for e in v], KS) for k, v in (("train", train), ("valid", valid),
                                                                    ("test", test))}
    row["kmer_features_cpu_seconds"] = time.process_time() - t0
    if not args.no_kmer_full:
        row["kmer_full"] = logreg_valid_c(kx["train"], y_tr, kx["valid"], y_va, kx["test"], y_te)
        print(f"{protein} k-mer (all {len(train)}): test AUROC {row['kmer_full']['test_auroc']:.4f}", flush=True)
    sub_idx = seeded_subsample(range(len(train)), args.train_size, seed=1)
    val_idx = seeded_subsample(range(len(valid)), max(1, args.train_size // 9) if args.train_size > 0 else 0,
                               seed=2)
    tr_s, va_s = [train[i] for i in sub_idx], [valid[i] for i in val_idx]
    row["n_train_sub"], row["n_valid_sub"] = len(tr_s), len(va_s)
    row["kmer_sub"] = logreg_valid_c(kx["train"][sub_idx], y_tr[sub_idx], kx["valid"][val_idx], y_va[val_idx],
                                     kx["test"], y_te)
    print(f"{protein} k-mer ({len(tr_s)}): test AUROC {row['kmer_sub']['test_auroc']:.4f}", flush=True)
    if model is None:
        return row
    cache = Path(args.cache_dir) / f"{model_name.replace('/', '_')}-{protein}"
    t_wall = time.perf_counter()
    e_tr, c1 = cached_layer_means(model, [e.sequence for e in tr_s], cache / f"train-{len(tr_s)}.npy", args.dtype)
    e_va, c2 = cached_layer_means(model, [e.sequence for e in va_s], cache / f"valid-{len(va_s)}.npy", args.dtype)
    e_te, c3 = cached_layer_means(model, [e.sequence for e in test], cache / f"test-{len(test)}.npy", args.dtype)
    if c1 + c2 + c3 > 0:  # all from the cache: keep the stored cost of the run that embedded them
        row["embed_cpu_seconds"], row["embed_wall_seconds"] = c1 + c2 + c3, time.perf_counter() - t_wall
        row["embed_windows"] = sum(n for n, c in ((len(tr_s), c1), (len(va_s), c2), (len(test), c3)) if c > 0)
    yt, yv = y_tr[sub_idx], y_va[val_idx]
    row["genesis_last"] = logreg_valid_c(e_tr[:, -1], yt, e_va[:, -1], yv, e_te[:, -1], y_te)
    flat = [x.reshape(len(x), -1) for x in (e_tr, e_va, e_te)]
    row["genesis_concat"] = logreg_valid_c(flat[0], yt, flat[1], yv, flat[2], y_te)
    print(f"{protein} genesis logreg: last {row['genesis_last']['test_auroc']:.4f}, concat "
          f"{row['genesis_concat']['test_auroc']:.4f}", flush=True)
    if not args.no_head:
        split = {"train": tr_s, "valid": va_s, "test": test}
        feats = {"train": list(e_tr[:, -1]), "valid": list(e_va[:, -1]), "test": list(e_te[:, -1])}
        row["genesis_frozen_head"] = finetune_head(model, model_name, split, feats, "frozen",
                                                   Path(args.run_dir) / f"{protein}-frozen", 100, args.dtype)
        print(f"{protein} frozen MLP head: test AUROC {row['genesis_frozen_head']['test_auroc']:.4f}", flush=True)
    if not args.no_conv:
        row.update(conv_rows(protein, model, model_name, {"train": train, "valid": valid, "test": test},
                             sub_idx, val_idx, args))
    if args.full_epochs:
        n = args.full_train_size
        split = {"train": seeded_subsample(tr_s, n, 3), "valid": va_s, "test": test}
        # a copy: full fine-tuning trains the encoder in place, and the next protein must embed with the shipped one
        row["genesis_full"] = finetune_head(copy.deepcopy(model), model_name, split, None, "full",
                                            Path(args.run_dir) / f"{protein}-full", args.full_epochs, args.dtype)
        print(f"{protein} full fine-tune: test AUROC {row['genesis_full']['test_auroc']:.4f}", flush=True)
    return row


def conv_rows(protein: str, model, model_name: str, data: dict[str, list[Example]], sub_idx: Sequence[int],
              val_idx: Sequence[int], args) -> dict[str, Any]:
    """``finetune --pooling conv`` on frozen per-nucleotide rows: on the LM subsample, on every training window,
    and the same head on bare one-hot rows (every window): how much of the gain is the head, how much the LM."""
    from genesis_rna.finetune.heads import OneHotConvEncoder, encoder_features
    from genesis_rna.model.device import resolve_device, resolve_dtype

    run = Path(args.run_dir)
    kw = {"patience": 3, "pooling": "conv"}
    rows: dict[str, Any] = {}
    if args.conv_rows in ("all", "onehot"):
        rows["onehot_conv_all"] = finetune_head(OneHotConvEncoder(layers=0), "one-hot", data, None, "frozen",
                                                run / f"{protein}-onehot-conv", dtype="fp32", encoder="onehot",
                                                epochs=args.onehot_conv_epochs, **kw)
        print(f"{protein} one-hot conv head: {rows['onehot_conv_all']['test_auroc']:.4f}", flush=True)
    if args.conv_rows == "onehot":
        return rows
    t0, w0 = time.process_time(), time.perf_counter()
    cpu = resolve_device("cpu")
    feats = {k: encoder_features(model, [e.sequence for e in v], "per_tok", device=cpu,
                                 dtype=resolve_dtype(args.dtype, cpu), progress=sys.stderr.isatty())
             for k, v in data.items()}
    feats = {k: [f.astype(np.float16) for f in v] for k, v in feats.items()}
    rows.update({"conv_embed_cpu_seconds": time.process_time() - t0,
                 "conv_embed_wall_seconds": time.perf_counter() - w0})
    sub = {"train": [data["train"][i] for i in sub_idx], "valid": [data["valid"][i] for i in val_idx],
           "test": data["test"]}
    sub_feats = {"train": [feats["train"][i] for i in sub_idx], "valid": [feats["valid"][i] for i in val_idx],
                 "test": feats["test"]}
    kw["epochs"] = args.conv_epochs
    rows["genesis_conv_sub"] = finetune_head(model, model_name, sub, sub_feats, "frozen", run / f"{protein}-conv-sub",
                                             dtype=args.dtype, **kw)
    rows["genesis_conv_all"] = finetune_head(model, model_name, data, feats, "frozen", run / f"{protein}-conv-all",
                                             dtype=args.dtype, **kw)
    print(f"{protein} conv head: genesis {rows['genesis_conv_sub']['n_train']} "
          f"{rows['genesis_conv_sub']['test_auroc']:.4f}, all {rows['genesis_conv_all']['test_auroc']:.4f}", flush=True)
    return rows


def _fmt(r: dict | None, extra: str = "") -> str:
    if not r:
        return "| - | - | - | |"
    return f"| {r['test_auroc']:.4f} | {r['test_auprc']:.4f} | {r['valid_auroc']:.4f} | {extra} |"


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# RNA-protein binding (CLIP-seq windows, RBP-31 subset): test AUROC / AUPRC", "",
             f"Model: `{results.get('model')}`. Machine: {results['machine']}.", "",
             "Test: the `n_test` windows below of each protein's test.csv (10,000 windows, 20 % bound; a seeded "
             "subsample when fewer). Validation: 10 % of train.csv (seed 0), subsampled with the training set; it "
             "picks C / the best epoch. Embedding costs count only windows not already in the embedding cache.", ""]
    for protein, row in results["proteins"].items():
        lines += [f"## {protein} (n_test {row['n_test']})", "", "| method | train windows | test AUROC | test AUPRC | valid AUROC | notes |",
                  "|---|---|---|---|---|---|"]
        for key, what in (("kmer_full", "k-mer (k=1..5) freq. + logistic regression"),
                          ("kmer_sub", "k-mer (k=1..5) freq. + logistic regression"),
                          ("genesis_last", "genesis mean embedding (last layer) + logistic regression"),
                          ("genesis_concat", "genesis mean embeddings (layers 1..4 concat) + logistic regression"),
                          ("genesis_frozen_head", "genesis frozen encoder + MLP head (`finetune --mode frozen`)"),
                          ("genesis_conv_sub", "genesis frozen per-nucleotide rows + conv head (`--pooling conv`)"),
                          ("genesis_conv_all", "genesis frozen per-nucleotide rows + conv head (`--pooling conv`)"),
                          ("onehot_conv_all", "one-hot rows + the same conv head (no language model)"),
                          ("genesis_full", "genesis full fine-tune (encoder + MLP head, `--mode full`)")):
            r = row.get(key)
            if not r:
                continue
            if "C" in r:
                extra = f"C={r['C']:g}; fit {r['fit_cpu_seconds']:.0f} CPU s"
            else:
                extra = f"best epoch {r['best_epoch']} of {r['epochs_run']}; {r['cpu_seconds']:.0f} CPU s"
            if key == "genesis_conv_sub" and "conv_embed_cpu_seconds" in row:
                extra += (f"; per-nucleotide rows of all windows: {row['conv_embed_cpu_seconds']:.0f} CPU s, "
                          f"{row['conv_embed_wall_seconds']:.0f} s wall")
            if key == "genesis_last" and "embed_cpu_seconds" in row:
                extra += (f"; embedding {row['embed_windows']} windows: {row['embed_cpu_seconds']:.0f} CPU s, "
                          f"{row['embed_wall_seconds']:.0f} s wall")
            lines.append(f"| {what} | {r['n_train']} " + _fmt(r, extra))
        lines.append("")
    lines += ["Commands:", ""] + [f"    {c}" for c in results.get("commands", [])]
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="genesis-rna-small", help="model directory or shipped name")
    p.add_argument("--no-model", action="store_true", help="only the k-mer baselines")
    p.add_argument("--proteins", nargs="+", default=list(PROTEINS), choices=PROTEINS)
    p.add_argument("--train-size", type=int, default=5000, help="training windows the LM embeds (0 = all)")
    p.add_argument("--no-kmer-full", action="store_true", help="skip the k-mer baseline on the whole train split")
    p.add_argument("--no-head", action="store_true", help="skip the frozen MLP head")
    p.add_argument("--no-conv", action="store_true",
                   help="skip the conv-pooling heads (they embed every window per nucleotide: ~4 CPU-min a protein)")
    p.add_argument("--conv-epochs", type=int, default=20, help="epoch cap of the genesis conv heads (patience 3)")
    p.add_argument("--onehot-conv-epochs", type=int, default=60,
                   help="epoch cap of the one-hot conv head (patience 3; it learns more slowly: 20 epochs capped it)")
    p.add_argument("--conv-rows", choices=("all", "onehot"), default="all",
                   help="onehot: only the one-hot conv row (keeps the stored genesis rows)")
    p.add_argument("--full-epochs", type=int, default=0, help="also fine-tune the encoder for N epochs (slow)")
    p.add_argument("--full-train-size", type=int, default=2000)
    p.add_argument("--test-size", type=int, default=0, help="subsample test (smoke runs; 0 = all)")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "genesis-rna" / "rbp"))
    p.add_argument("--run-dir", default="/tmp/genesis_rna_rbp_runs")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"RBP data not found at {DATA}", file=sys.stderr)
        return 2
    command = "python benchmarks/rbp_binding.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"machine: {machine()}\ncommand: {command}", flush=True)
    model = None
    if not args.no_model:
        from genesis_rna import pretrained

        model = pretrained.load(args.model)[0]
    path = Path(args.out) / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("model") != (None if args.no_model else args.model):
        results = {}
    results.update({"model": None if args.no_model else args.model, "machine": machine()})
    t0, c0 = time.perf_counter(), time.process_time()
    for protein in args.proteins:
        old = results.setdefault("proteins", {}).get(protein, {})
        new = run_protein(protein, model, args.model, args)
        if old.get("n_test") != new["n_test"] or old.get("n_train_sub") != new["n_train_sub"]:
            old = {}  # another test/train subsample: rows are not comparable, start this protein afresh
        results["proteins"][protein] = {**old, **new}  # e.g. a --no-kmer-full rerun keeps the stored k-mer row
        results["commands"] = sorted(set(results.get("commands", [])) | {command})
        save_results(results, path, write_markdown)
    return finish_run(results, path, command, t0, c0, write_markdown)


if __name__ == "__main__":
    sys.exit(main())
