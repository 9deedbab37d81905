"""OpenVaccine mRNA degradation: per-nucleotide MCRMSE of a token-regression head on one-hot vs genesis-rna input.

    python benchmarks/openvaccine.py                       # 5-fold CV: one-hot CNN, bare one-hot, genesis frozen (+ CNN)
    python benchmarks/openvaccine.py --folds 0 --full-epochs 5   # also fine-tune the encoder on fold 0 (slow)

Data: ../shared/data/downstream/openvaccine/train.jsonl.gz, only rows with SN_filter = 1 (1,587 of 2,097; the
rows Kaggle scored), for training and for scoring. Targets: the three Kaggle-scored columns (reactivity,
deg_Mg_pH10, deg_Mg_50C) at the first ``seq_scored`` (68) positions. Cross-validation on the source's ``fold``
column: for test fold K, fold (K+1) mod 5 is the validation split (early stopping on MCRMSE) and the other three
folds train. MCRMSE = mean over the three targets of the RMSE pooled over all scored positions of the test fold
(Kaggle's definition).

Methods, all through the project's fine-tuning code (``genesis-rna finetune --task token-regression``):

* ``onehot-cnn``: ``--encoder onehot`` (3 residual conv layers, width 128, kernel 9) + the token-regression head;
* ``onehot-bare``: ``--encoder onehot --onehot-layers 0`` (the head on bare one-hot vectors, no context);
* ``genesis-frozen``: ``--mode frozen`` on the genesis-rna model (per-nucleotide final-layer vectors, embedded
  once here and passed to ``finetune``), the token-regression head alone on each row;
* ``genesis-frozen-cnn``: the same frozen rows through ``--head-conv-layers 3``: the 3 residual conv layers of
  ``onehot-cnn`` (width 128, kernel 9) as part of the head, so LM rows and one-hot rows get the same network;
* ``genesis-full`` (``--full-epochs N``): ``--mode full``, the encoder fine-tuned too;
* ``position-mean``: no model, the training folds' mean of each target at each position (a floor to beat).

Writes benchmarks/results/openvaccine/results.{json,md}; prints the machine and the command.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from rbp_binding import finish_run, machine, save_results  # noqa: E402

from genesis_rna._fileutil import atomic_write  # noqa: E402
from genesis_rna.finetune.data import ColumnSpec, Example, assign_splits, load_examples  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "downstream" / "openvaccine" / "train.jsonl.gz"
OUT = ROOT / "benchmarks" / "results" / "openvaccine"
TARGETS = ("reactivity", "deg_Mg_pH10", "deg_Mg_50C")
ANCHORS = {"Kaggle NAttn (BEACON)": 0.263, "best LM (BEACON)": 0.313, "RNA-FM (BEACON)": 0.347}
METHODS = ("position-mean", "onehot-bare", "onehot-cnn", "genesis-frozen", "genesis-frozen-cnn", "genesis-full")
FROZEN = ("genesis-frozen", "genesis-frozen-cnn")


def mcrmse_pooled(y: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> float:
    """Kaggle MCRMSE: per target column, RMSE over every scored (non-NaN) position of every sequence; then the mean.

    ``y`` and ``pred`` are per-sequence ``[L, k]`` arrays (NaN in ``y`` = not scored).
    """
    yy = np.concatenate([np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1]) for a in y])
    pp = np.concatenate([np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1]) for a in pred])
    cols = []
    for j in range(yy.shape[1]):
        ok = ~np.isnan(yy[:, j])
        cols.append(math.sqrt(float(np.mean((yy[ok, j] - pp[ok, j]) ** 2))))
    return float(np.mean(cols))


def position_mean(train: Sequence[np.ndarray], length: int) -> np.ndarray:
    """``[length, k]``: per position and target, the mean over training sequences (NaN-skipping; 0 where none)."""
    k = np.shape(train[0])[-1]
    stack = np.full((len(train), length, k), np.nan)
    for i, t in enumerate(train):
        n = min(length, len(t))
        stack[i, :n] = np.asarray(t, np.float64)[:n]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # positions no sequence scores: mean of nothing -> 0
        out = np.nanmean(stack, axis=0)
    return np.nan_to_num(out, nan=0.0)


def fold_split(examples: Sequence[Example], test_fold: int, n_folds: int = 5) -> dict[str, list[Example]]:
    """Test = fold K, valid = fold (K+1) mod n, train = the rest (copies; ``split`` set)."""
    ex = [copy.copy(e) for e in examples]
    for e in ex:
        e.split = str(e.row["fold"])
    assign_splits(ex, valid_values=[str((test_fold + 1) % n_folds)], test_values=[str(test_fold)])
    return {s: [e for e in ex if e.split == s] for s in ("train", "valid", "test")}


def load_data() -> list[Example]:
    spec = ColumnSpec(label_columns=list(TARGETS), scored_length_column="seq_scored", filters=["SN_filter=1"])
    return load_examples(DATA, "token-regression", spec)


def spec() -> ColumnSpec:
    return ColumnSpec(label_columns=list(TARGETS), scored_length_column="seq_scored", split_column="fold",
                      filters=["SN_filter=1"])


def run_finetune(method: str, model, model_name: str, split: dict[str, list[Example]],
                 feats: dict[str, list[np.ndarray]] | None, out_dir: Path, args) -> dict[str, Any]:
    from genesis_rna.finetune.trainer import FinetuneConfig, build_encoder, finetune

    onehot = method.startswith("onehot")
    cfg = FinetuneConfig(task="token-regression", output_dir=str(out_dir), encoder="onehot" if onehot else "genesis",
                         mode="full" if method == "genesis-full" else "frozen", device="cpu", dtype=args.dtype,
                         epochs=args.full_epochs if method == "genesis-full" else args.epochs,
                         patience=2 if method == "genesis-full" else 10, batch_size=32,
                         onehot_layers=0 if method == "onehot-bare" else 3,
                         head_conv_layers=3 if method == "genesis-frozen-cnn" else 0, progress=sys.stderr.isatty())
    if onehot:
        encoder, name = build_encoder(cfg, None, None)
    else:
        encoder, name = (copy.deepcopy(model) if method == "genesis-full" else model), model_name
    cfg.base_model = name
    t0 = time.perf_counter()
    res = finetune(cfg, split, spec(), encoder, base_name=name, features=feats)
    row = {"test_mcrmse": res["test"]["mcrmse"], "valid_mcrmse": res["valid"]["mcrmse"],
           "best_epoch": res["best_epoch"], "epochs_run": res["epochs_run"], "cpu_seconds": res["cpu_seconds"],
           "wall_seconds": time.perf_counter() - t0}
    row.update({f"test_{t}_rmse": res["test"][f"{t}/rmse"] for t in TARGETS})
    return row


def genesis_token_features(model, examples: Sequence[Example], cache: Path, dtype: str) -> tuple[list, float]:
    """Per-nucleotide final-layer vectors (fp16) of every example, cached as one ``[N, L, d]`` array."""
    import torch

    from genesis_rna.finetune.heads import encoder_features
    from genesis_rna.model.device import resolve_dtype

    if cache.is_file():
        x = np.load(cache)
        if len(x) == len(examples):
            return list(x), 0.0
    t0 = time.process_time()
    feats = encoder_features(model, [e.sequence for e in examples], "per_tok", device=torch.device("cpu"),
                             dtype=resolve_dtype(dtype, torch.device("cpu")), progress=sys.stderr.isatty())
    x = np.stack(feats).astype(np.float16)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache.with_suffix(".tmp.npy"), x)
    cache.with_suffix(".tmp.npy").replace(cache)
    return list(x), time.process_time() - t0


def write_markdown(results: dict, path: Path) -> None:
    folds = sorted({int(f) for row in results["methods"].values() for f in row["folds"]})
    most = max(len(row["folds"]) for row in results["methods"].values())  # a one-fold extra (genesis-full) does
    common = sorted(set.intersection(*[set(row["folds"]) for row in results["methods"].values()  # not shrink it
                                       if len(row["folds"]) == most]), key=int)
    lines = ["# OpenVaccine (Kaggle stanford-covid-vaccine): per-nucleotide MCRMSE", "",
             f"Model: `{results['model']}`. Machine: {results['machine']}.", "",
             f"{results['n_rows']} RNAs with SN_filter = 1; targets {', '.join(TARGETS)} at the first 68 positions. "
             "Test fold K, validation fold K+1 (early stopping), the other three folds train. Lower is better.", "",
             f"Means over folds {', '.join(common) or 'none'}; a method run on fewer folds: over its own, named.", "",
             "| method | " + " | ".join(f"fold {f}" for f in folds) + " | mean MCRMSE | per-target RMSE "
             "(mean) | CPU s (sum, all folds) |", "|---|" + "---|" * (len(folds) + 3)]
    for method in METHODS:
        row = results["methods"].get(method)
        if not row:
            continue
        cells = [f"{row['folds'][str(f)]['test_mcrmse']:.4f}" if str(f) in row["folds"] else "-" for f in folds]
        own = [f for f in common if f in row["folds"]] if set(common) <= set(row["folds"]) else sorted(row["folds"])
        done = [row["folds"][f] for f in own]
        mean = np.mean([r["test_mcrmse"] for r in done]) if done else math.nan
        per_t = ", ".join(f"{np.mean([r[f'test_{t}_rmse'] for r in done]):.3f}" for t in TARGETS) if done else "-"
        cpu = sum(r.get("cpu_seconds", 0.0) for r in row["folds"].values())
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean:.4f}{'' if own == common else ' (folds ' + ', '.join(own) + ')'} | {per_t} | "
                     f"{cpu:.0f} |")
    if "embed_cpu_seconds" in results:
        lines += ["", f"Embedding all {results['n_rows']} RNAs once (per-nucleotide, bf16): "
                      f"{results['embed_cpu_seconds']:.0f} CPU s."]
    lines += ["", "Anchors (BEACON, a different split and all rows; not measured here): " +
              ", ".join(f"{k} {v}" for k, v in ANCHORS.items()) + ".", "", "Commands:", ""]
    lines += [f"    {c}" for c in results.get("commands", [])]
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="genesis-rna-small", help="model directory or shipped name")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", choices=METHODS,
                   default=["position-mean", "onehot-bare", "onehot-cnn", "genesis-frozen", "genesis-frozen-cnn"])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--full-epochs", type=int, default=0, help="> 0 adds genesis-full (encoder fine-tuned)")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "genesis-rna" / "openvaccine"))
    p.add_argument("--run-dir", default="/tmp/genesis_rna_openvaccine_runs")
    args = p.parse_args(argv)
    if not DATA.is_file():
        print(f"OpenVaccine data not found at {DATA}", file=sys.stderr)
        return 2
    command = "python benchmarks/openvaccine.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"machine: {machine()}\ncommand: {command}", flush=True)
    methods = list(args.methods) + (["genesis-full"] if args.full_epochs and "genesis-full" not in args.methods
                                    else [])
    examples = load_data()
    path = Path(args.out) / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if results.get("model") != args.model or results.get("n_rows") != len(examples):
        results = {}
    results.update({"model": args.model, "machine": machine(), "n_rows": len(examples), "targets": list(TARGETS)})
    results.setdefault("methods", {})
    t0, c0 = time.perf_counter(), time.process_time()
    model, feats_all = None, None
    if any(m.startswith("genesis") for m in methods):
        from genesis_rna import pretrained

        model = pretrained.load(args.model)[0]
        if any(m in FROZEN for m in methods):
            cache = Path(args.cache_dir) / f"{args.model.replace('/', '_')}-{len(examples)}.npy"
            feats_all, cpu = genesis_token_features(model, examples, cache, args.dtype)
            if cpu:
                results["embed_cpu_seconds"] = cpu
    index = {e.id: i for i, e in enumerate(examples)}
    for fold in args.folds:
        split = fold_split(examples, fold)
        for method in methods:
            if method == "position-mean":
                mean = position_mean([e.target for e in split["train"]], 107)
                preds = [mean[: len(e.sequence)] for e in split["test"]]
                row = {"test_mcrmse": mcrmse_pooled([e.target for e in split["test"]], preds)}
                for j, t in enumerate(TARGETS):
                    row[f"test_{t}_rmse"] = mcrmse_pooled([e.target[:, j: j + 1] for e in split["test"]],
                                                          [q[:, j: j + 1] for q in preds])
            else:
                feats = None
                if method in FROZEN:
                    feats = {s: [feats_all[index[e.id]] for e in split[s]] for s in split}
                row = run_finetune(method, model, args.model, split, feats,
                                   Path(args.run_dir) / f"{method}-fold{fold}", args)
            results["methods"].setdefault(method, {"folds": {}})["folds"][str(fold)] = row
            print(f"fold {fold} {method}: test MCRMSE {row['test_mcrmse']:.4f}", flush=True)
            results["commands"] = sorted(set(results.get("commands", [])) | {command})
            save_results(results, path, write_markdown)
    return finish_run(results, path, command, t0, c0, write_markdown)


if __name__ == "__main__":
    sys.exit(main())
