"""nRC 13-class ncRNA classification benchmark: k-mer baseline vs frozen-embedding probe vs fine-tuned heads.

    python benchmarks/nrc.py --model genesis-rna-small                      # the shipped model
    python benchmarks/nrc.py --model /work/runs/genesis-rna-small/checkpoints/step-0001200 --name step-0001200
    python benchmarks/nrc.py --random-init small --name random-small        # the no-pretraining control
    python benchmarks/nrc.py --model genesis-rna-small --full-epochs 3      # also fine-tune the encoder (slow)

Each call adds (or replaces) one model's row in benchmarks/results/nrc/results.json and rewrites results.md
with every model measured so far; the k-mer baseline is computed once. Embeddings are cached (``--cache-dir``),
so a rerun of the same model costs only the classifiers. Data: ../shared/data/classification/nrc/{train,test}.fa.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from genesis_rna import pretrained  # noqa: E402
from genesis_rna._fileutil import atomic_write  # noqa: E402
from genesis_rna.errors import GenesisRNAError  # noqa: E402
from genesis_rna.evaluate.nrc import (  # noqa: E402
    ANCHORS,
    GOAL,
    ensemble_run,
    finetune_run,
    kmer_features,
    linear_probe,
    mean_embeddings,
    read_nrc,
    subsample,
)

DATA = ROOT.parent / "shared" / "data" / "classification" / "nrc"
OUT = ROOT / "benchmarks" / "results" / "nrc"


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _finetune_run(model, name: str, mode: str, train, test, args, features=None, pooling: str = "mean",
                  encoder: str = "genesis", dtype: str | None = None) -> dict:
    """:func:`genesis_rna.evaluate.nrc.finetune_run` into ``--run-dir/<name>-<mode>[-conv][-seedN]``, with this
    script's options (``--full-epochs``, ``--encoder-lr``, ``--head-dropout``, ``--head-weight-decay``,
    ``--seed``, ``--dtype``)."""
    run = f"{name}-{mode}" + ("-conv" if pooling == "conv" else "") + (f"-seed{args.seed}" if args.seed else "")
    return finetune_run(model, train, test, Path(args.run_dir) / run, mode=mode, pooling=pooling,
                        epochs=args.full_epochs if mode == "full" else 100, encoder_lr=args.encoder_lr,
                        dropout=args.head_dropout, weight_decay=args.head_weight_decay, seed=args.seed,
                        dtype=dtype or args.dtype, encoder_kind=encoder, base_name=name, features=features,
                        progress=sys.stderr.isatty())


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# nRC ncRNA classification (13 classes): test accuracy", "",
             f"Train {results['n_train']} / test {results['n_test']} sequences "
             f"(`../shared/data/classification/nrc`). Machine: {results['machine']}.", "",
             "| model | method | test accuracy | test macro-F1 | CV / valid accuracy | notes |",
             "|---|---|---|---|---|---|"]
    k = results.get("kmer_logreg")
    if k:
        lines.append(f"| none | k-mer (k=1..4) counts + logistic regression | {k['test_accuracy']:.4f} | "
                     f"{k['test_macro_f1']:.4f} | {k['cv_accuracy']:.4f} (5-fold) | C={k['C']:g}, "
                     f"{k['n_features']} features |")
    o = results.get("onehot_conv")
    if o:
        lines.append(f"| none | conv-pooling head on bare one-hot rows (`--encoder onehot --onehot-layers 0 "
                     f"--pooling conv`) | {o['test_accuracy']:.4f} | {o['test_macro_f1']:.4f} | "
                     f"{o['valid_accuracy']:.4f} (10% of train) | best epoch {o['best_epoch']} of "
                     f"{o['epochs_run']}; {o['cpu_seconds']:.0f} CPU s |")
    for name, row in results.get("models", {}).items():
        p = row.get("probe")
        if p:
            lines.append(f"| {name} | linear probe, frozen mean embedding | {p['test_accuracy']:.4f} | "
                         f"{p['test_macro_f1']:.4f} | {p['cv_accuracy']:.4f} (5-fold) | C={p['C']:g}; embedding "
                         f"{row['embed_cpu_seconds']:.0f} CPU s |")
        for mode in ("frozen", "conv", "full", "full_conv"):
            f = row.get(f"finetune_{mode}")
            if f:
                what = {"frozen": "MLP head, frozen encoder", "full": "full fine-tune (encoder + MLP head)",
                        "conv": "conv-pooling head (`--pooling conv`) on frozen per-nucleotide rows",
                        "full_conv": "full fine-tune (encoder + conv-pooling head)"}[mode]
                lines.append(f"| {name} | {what} | {f['test_accuracy']:.4f} | {f['test_macro_f1']:.4f} | "
                             f"{f['valid_accuracy']:.4f} (10% of train) | best epoch {f['best_epoch']} of "
                             f"{f['epochs_run']}; {f['cpu_seconds']:.0f} CPU s |")
    for name, e in results.get("ensembles", {}).items():
        lines.append(f"| {name} | mean probabilities of {len(e['members'])} fine-tuned models (equal weights, "
                     f"nothing tuned): {', '.join(Path(m).name for m in e['members'])} | {e['test_accuracy']:.4f} | "
                     f"{e['test_macro_f1']:.4f} | {e['valid_accuracy']:.4f} (10% of train) | "
                     f"{e['cpu_seconds']:.0f} CPU s to predict |")
    lines += ["", "Anchors (BEACON, not measured here): " +
              ", ".join(f"{k} {v:.2%}" for k, v in ANCHORS.items()) + f". Project goal: >= {GOAL:.0%}.", "",
              "Commands:", ""]
    lines += [f"    {c}" for c in results.get("commands", [])]
    with atomic_write(path) as fh:
        fh.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model directory or shipped name")
    p.add_argument("--random-init", default=None, choices=("small", "base", "large"))
    p.add_argument("--name", default=None, help="row name (default: the model name)")
    p.add_argument("--no-finetune", action="store_true", help="skip the frozen MLP-head fine-tune")
    p.add_argument("--no-probe", action="store_true", help="keep this model's stored probe row (e.g. for --full-epochs)")
    p.add_argument("--conv", action="store_true",
                   help="also the conv-pooling head (`finetune --pooling conv`) on frozen per-nucleotide rows")
    p.add_argument("--onehot-conv", action="store_true",
                   help="the same conv-pooling head on bare one-hot rows (no language model): how much is the LM")
    p.add_argument("--full-epochs", type=int, default=0, help="also fine-tune the encoder for N epochs (slow)")
    p.add_argument("--encoder-lr", type=float, default=5e-5)
    p.add_argument("--full-pooling", choices=("mean", "conv"), default="mean", help="head pooling of --full-epochs")
    # chosen on the 10 % validation split (step-0001200 frozen head: dropout 0 / no decay 0.630, 0.1 / 0.01 0.614)
    p.add_argument("--head-dropout", type=float, default=0.0)
    p.add_argument("--head-weight-decay", type=float, default=0.0)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--ensemble", nargs="+", default=None, metavar="DIR",
                   help="average the class probabilities of these fine-tuned model directories (row --name)")
    p.add_argument("--seed", type=int, default=0,
                   help="fine-tune seed (head init, batch order, dropout); the valid split stays seed 0")
    p.add_argument("--limit", type=int, default=0, help="subsample train to about N (test N/2): smoke runs")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "genesis-rna" / "nrc"))
    p.add_argument("--run-dir", default="/tmp/genesis_rna_nrc_runs", help="fine-tuned model directories")
    args = p.parse_args(argv)
    if args.ensemble and (args.model or args.random_init):
        p.error("--ensemble is its own row: run it without --model/--random-init")
    if not DATA.is_dir():
        print(f"nRC data not found at {DATA}", file=sys.stderr)
        return 2
    out = Path(args.out)
    results_path = out / "results.json"
    results = _load_json(results_path)
    train = subsample(read_nrc(DATA / "train.fa"), args.limit)
    test = subsample(read_nrc(DATA / "test.fa"), args.limit // 2)
    if results.get("n_train") != len(train) or results.get("n_test") != len(test):
        results = {}  # a different subsample: start a fresh table
    results.update({"n_train": len(train), "n_test": len(test),
                    "machine": f"{platform.machine()} {platform.processor() or 'CPU'}, {os.cpu_count()} cores, "
                               f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} "
                               "when the last row started"})
    y_train, y_test = [e.target for e in train], [e.target for e in test]
    if "kmer_logreg" not in results:
        t0 = time.process_time()
        xtr, xte = kmer_features([e.sequence for e in train]), kmer_features([e.sequence for e in test])
        results["kmer_logreg"] = {**linear_probe(xtr, y_train, xte, y_test), "features_cpu_seconds":
                                  time.process_time() - t0}
        print(f"k-mer baseline: test accuracy {results['kmer_logreg']['test_accuracy']:.4f}")
    if args.onehot_conv:
        from genesis_rna.finetune.heads import OneHotConvEncoder

        results["onehot_conv"] = _finetune_run(OneHotConvEncoder(layers=0), "one-hot", "frozen", train, test, args,
                                               pooling="conv", encoder="onehot", dtype="fp32")
        print(f"one-hot conv-pooling head: test accuracy {results['onehot_conv']['test_accuracy']:.4f}")
    if args.ensemble:
        name = args.name or "ensemble"
        results.setdefault("ensembles", {})[name] = ensemble_run(args.ensemble, train, test, args.dtype)
        print(f"{name}: test accuracy {results['ensembles'][name]['test_accuracy']:.4f}")
    if args.model or args.random_init:
        if args.random_init:
            model, _ = pretrained.random_model(args.random_init, seed=0)
            name = args.name or f"random-{args.random_init}"
        else:
            model, _ = pretrained.load(args.model)
            name = args.name or Path(args.model).name
        cache = Path(args.cache_dir) / f"{name}-{len(train)}-{len(test)}"
        cache.mkdir(parents=True, exist_ok=True)
        xtr, s1 = mean_embeddings(model, [e.sequence for e in train], cache=cache / "train.npy", dtype=args.dtype)
        xte, s2 = mean_embeddings(model, [e.sequence for e in test], cache=cache / "test.npy", dtype=args.dtype)
        row = results.setdefault("models", {}).get(name, {})
        row["embed_cpu_seconds"] = row.get("embed_cpu_seconds", 0.0) if s1 + s2 == 0 else s1 + s2
        row["embed_nt"] = int(sum(len(e.sequence) for e in train + test))
        if not args.no_probe or "probe" not in row:
            row["probe"] = linear_probe(xtr, y_train, xte, y_test)
            print(f"{name} probe: test accuracy {row['probe']['test_accuracy']:.4f}")
        if not args.no_finetune:
            row["finetune_frozen"] = _finetune_run(model, name, "frozen", train, test, args, features=(xtr, xte))
            print(f"{name} frozen fine-tune: test accuracy {row['finetune_frozen']['test_accuracy']:.4f}")
        if args.conv:
            row["finetune_conv"] = _finetune_run(model, name, "frozen", train, test, args, pooling="conv")
            print(f"{name} conv-pooling head: test accuracy {row['finetune_conv']['test_accuracy']:.4f}")
        if args.full_epochs:
            key = "finetune_full_conv" if args.full_pooling == "conv" else "finetune_full"
            row[key] = _finetune_run(model, name, "full", train, test, args, pooling=args.full_pooling)
            print(f"{name} full fine-tune ({args.full_pooling} pooling): test accuracy {row[key]['test_accuracy']:.4f}")
        results["models"][name] = row
    command = "python benchmarks/nrc.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    latest = _load_json(results_path)  # another run may have added its model meanwhile: merge, do not clobber
    if latest.get("n_train") == results["n_train"] and latest.get("n_test") == results["n_test"]:
        for other, other_row in latest.get("models", {}).items():
            if other != (name if args.model or args.random_init else None):
                results.setdefault("models", {})[other] = other_row
        for other, other_row in latest.get("ensembles", {}).items():
            if other != (name if args.ensemble else None):
                results.setdefault("ensembles", {})[other] = other_row
        results["commands"] = latest.get("commands", [])
    results["commands"] = sorted(set(results.get("commands", [])) | {command})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(results_path) as fh:
        json.dump(results, fh, indent=1)
    write_markdown(results, out / "results.md")
    print(f"-> {results_path}, {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GenesisRNAError as exc:  # e.g. --ensemble members with different classes: one line, no traceback
        sys.exit(f"nrc.py: error: {exc}")
