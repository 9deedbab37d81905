"""``genesis-rna fold``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ..errors import GenesisRNAError
from ._common import default_output, progress_enabled

# ------------------------------------------------------------------------------------------------ fold
FOLD_EXAMPLES = """examples:
  genesis-rna fold examples/well_known_rnas.fa --output folds/
  genesis-rna fold seqs.fa --output folds/ --format ct dbn --pseudoknots
  genesis-rna fold seqs.fa --model my-fold-model/ --threshold 0.4 --output folds/

Writes per record <id>.npy (L x L float32 symmetric base-pair probabilities), <id>.ct, <id>.bpseq and one
structures.dbn with all records (ids made file-system safe). Decoding: maximum expected accuracy (nested),
canonical + GU pairs, hairpins >= 3 nt. Sequences up to the model window (512 nt) are folded whole, longer
ones (up to 4000 nt) in windows overlapping by half. Without the shipped structure model, ViennaRNA alone.
Details: docs/structure.md.
"""


def add_fold(sub) -> None:
    p = sub.add_parser("fold", help="secondary structure: base-pair probabilities (.npy) and .ct/.bpseq/.dbn",
                       description="Predict base-pair probabilities and a valid secondary structure for every "
                       "record of a FASTA file.", epilog=FOLD_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="FASTA file (multi-line and .gz accepted)")
    p.add_argument("--output", "-o", default=None, help="output directory (default: <input name>.fold/)")
    p.add_argument("--model", default=None,
                   help="structure model directory or name, or 'vienna' for ViennaRNA alone "
                   "(default: the shipped genesis-rna-fold-small)")
    p.add_argument("--format", nargs="+", default=["npy", "ct", "bpseq", "dbn"], choices=("npy", "ct", "bpseq", "dbn"),
                   help="what to write (default all)")
    p.add_argument("--threshold", type=float, default=None,
                   help="decoding threshold: a pair needs probability above it (default: the model's tuned value)")
    p.add_argument("--allow-noncanonical", action="store_true", help="allow pairs other than AU, GC, GU")
    p.add_argument("--pseudoknots", action="store_true", help="add crossing pairs greedily after the nested decode")
    p.add_argument("--no-vienna", action="store_true", help="never run ViennaRNA (error if the model needs it)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="model compute precision (default fp32)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_fold)


def _run_fold(args: argparse.Namespace) -> int:
    import torch

    from ..structure.fold import run_fold

    output = args.output or default_output(args.input, ".fold")
    start = time.perf_counter()
    n, name, note = run_fold(args.input, output, model=args.model, formats=args.format, threshold=args.threshold,
                             allow_noncanonical=args.allow_noncanonical, pseudoknots=args.pseudoknots,
                             use_vienna=not args.no_vienna, progress=progress_enabled(args),
                             dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    if note:
        print(f"genesis-rna: note: {note}", file=sys.stderr)
    print(f"folded {n} records with {name} in {time.perf_counter() - start:.1f} s -> {output}")
    return 0


def _train_main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..structure.model import build_structure_model, save_structure_model
    from ..structure.pairs import validate_partners
    from ..structure.train import add_vienna_priors, rfam_training_examples, train_structure_model

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    examples, excluded = rfam_training_examples(args.store, n=args.n_train + args.n_valid, max_len=args.max_len,
                                                seed=args.seed)
    families = sorted({e.family for e in examples})
    rng = np.random.default_rng(args.seed)
    valid_fams = set(rng.choice(families, size=max(1, len(families) // 10), replace=False).tolist())
    train = [e for e in examples if e.family not in valid_fams]
    valid = [e for e in examples if e.family in valid_fams][: args.n_valid]
    for e in train + valid:
        validate_partners(e.partner, len(e.sequence))
    if args.vienna:
        log(f"computing ViennaRNA priors for {len(train) + len(valid)} sequences")
        add_vienna_priors(train + valid, progress=True)
    torch.set_num_threads(max(1, args.threads))
    model = build_structure_model(args.encoder, use_vienna=args.vienna, finetune=args.finetune,
                                  channels=args.channels)
    info = train_structure_model(model, train, valid, epochs=args.epochs, lr=args.lr, max_train_len=args.max_len,
                                 steps_per_epoch=args.steps_per_epoch, seed=args.seed, log=log,
                                 time_budget_s=args.time_budget)
    model.config.training = {
        "data": f"Rfam seed structures (SS_cons projected) from {args.store}, structure_source=input, "
                f"<= {args.max_len} nt, family-disjoint valid split",
        "n_train": len(train), "n_valid": len(valid), "n_train_families": len({e.family for e in train}),
        "excluded_families": excluded, "best_valid_f1": info["best_valid_f1"], "epochs_run": len(info["history"]),
        "train_seconds": round(info["train_seconds"], 1),
    }
    save_structure_model(model, args.output)
    print(f"trained structure model on {len(train)} sequences ({len(valid)} valid, F1 {info['best_valid_f1']:.3f} "
          f"at threshold {info['threshold']}) in {info['train_seconds']:.0f} s -> {args.output}")
    return 0


def structure_model_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis_rna.structure_model",
                                     description="Train the structure model on Rfam seed structures.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a structure model on a shard store's Rfam structures")
    p.add_argument("--encoder", default="genesis-rna-small", help="encoder name or directory ('none' = one-hot only)")
    p.add_argument("--store", required=True, help="shard store with partner arrays (genesis-rna preprocess)")
    p.add_argument("--output", required=True, help="model directory to write")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-valid", type=int, default=120)
    p.add_argument("--max-len", type=int, default=200)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--no-vienna", dest="vienna", action="store_false", help="no ViennaRNA prior channels")
    p.add_argument("--finetune", action="store_true", help="train the encoder too (it is then included)")
    p.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.encoder.lower() == "none":
        args.encoder = None

    try:
        return _train_main(args)
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return 2
