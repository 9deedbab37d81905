"""``genesis-rna evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import GenesisRNAError
from ..evaluate import archiveii, nrc

EVALUATE_DESCRIPTION = ("``genesis-rna evaluate archiveii``: secondary-structure benchmarks on ArchiveII, per fold and "
                        "resumable.")


# ------------------------------------------------------------------------------------------------ evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="benchmarks: ArchiveII secondary structure, nRC classification",
                       description="Same as `python -m genesis_rna.eval_benchmarks`. Resumable: finished "
                       "results under OUTPUT are kept. Details: docs/structure.md, docs/finetune.md.")
    add_evaluate_arguments(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    print(run_benchmark(args))
    return 0


def add_nrc_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``genesis-rna evaluate nrc`` (``python -m genesis_rna.eval_benchmarks nrc``)."""
    p.add_argument("--output", "-o", required=True, metavar="DIR",
                   help="output directory: methods/*.json (one per finished method and seed), models/, cache/, "
                        "results.json, results.md; a rerun skips finished methods")
    p.add_argument("--data", required=True, metavar="DIR", help="directory with train.fa and test.fa ('>ID CLASS' "
                   "headers), e.g. ../shared/data/classification/nrc")
    p.add_argument("--methods", nargs="+", choices=nrc.METHODS, default=["kmer", "probe"],
                   help="kmer: k-mer (k=1..4) logistic regression; probe: linear probe on frozen mean embeddings; "
                        "conv: conv-pooling head on frozen per-nucleotide rows; finetune: encoder + conv-pooling "
                        "head (slow: ~46 min per seed on 2 CPU cores). Default: kmer probe")
    p.add_argument("--encoder", default="genesis-rna-small", metavar="NAME_OR_DIR", help="encoder name or directory (default genesis-rna-small)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                   help="conv/finetune: one model per seed (default 0); with 2+ finetune seeds also the ensemble "
                        "(equal-weight mean of the members' class probabilities)")
    p.add_argument("--epochs", type=int, default=10, help="finetune epochs (default 10: the full recipe)")
    p.add_argument("--encoder-lr", type=float, default=1e-4, help="finetune encoder learning rate (default 1e-4)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--limit", type=int, default=0, metavar="N",
                   help="smoke runs: subsample train to about N and test to about N/2 (recorded; an OUTPUT holding "
                        "results of another limit is refused)")
    p.add_argument("--verbose", action="store_true", help="progress bars while embedding and training")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` parser: one sub-command per benchmark (``archiveii``, ``nrc``)."""
    sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    add_archiveii_arguments(sub.add_parser(
        "archiveii", help="secondary structure: ArchiveII family-fold and k-fold F1 (docs/structure.md)",
        description="ArchiveII secondary-structure benchmark, resumable per (fold, method)."))
    add_nrc_arguments(sub.add_parser(
        "nrc", help="nRC 13-class ncRNA classification accuracy (docs/finetune.md)",
        description="nRC ncRNA classification benchmark, resumable per method."))


def run_benchmark(args: argparse.Namespace) -> str:
    """Run the benchmark ``args.benchmark`` names; returns its one-line summary."""
    if args.benchmark == "nrc":
        return nrc.summary_line(nrc.run_nrc(args))
    return archiveii.summary_line(archiveii.run_archiveii(args))


def add_archiveii_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=("famfold", "kfold"), default="famfold")
    p.add_argument("--folds", nargs="+", default=None, help="fold names/numbers (default all)")
    p.add_argument("--methods", nargs="+", default=["vienna_mfe", "vienna_mea", "vienna_bpp", "genesis_hybrid"],
                   help=f"methods: {' '.join(archiveii.METHODS)}")
    p.add_argument("--output", "-o", required=True, help="output directory (resumable)")
    p.add_argument("--data", required=True, metavar="DIR", help="ArchiveII CSV directory (ArchiveII.csv and the split files), "
                   "e.g. ../shared/data/structure/archiveII_csv")
    p.add_argument("--cache", default=None, help="ViennaRNA cache directory (default OUTPUT/cache/vienna)")
    p.add_argument("--encoder", default="genesis-rna-small", help="encoder name or directory for genesis_* methods")
    p.add_argument("--fold-model", default=None, help="structure model directory/name for the fold_model method")
    p.add_argument("--max-train", type=int, default=None, help="cap on training sequences per fold (seeded sample)")
    p.add_argument("--max-valid", type=int, default=60, help="cap on validation sequences per fold (default 60)")
    p.add_argument("--max-test", type=int, default=None, help="cap on test sequences per fold (seeded sample)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps-per-epoch", type=int, default=500)
    p.add_argument("--max-train-len", type=int, default=160, help="training crops of at most this many nt")
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for test predictions")
    p.add_argument("--vienna-params", choices=tuple(archiveii.VIENNA_PARAMS), default="turner2004",
                   help="ViennaRNA energy parameters for the baselines and the priors (default turner2004, "
                        "RNAfold's; the others were fitted to known structures: see docs/structure.md)")
    p.add_argument("--valid-from", choices=("split", "family"), default="split",
                   help="learned heads' validation (early stopping, threshold): the split file's valid partition "
                        "(default), or, for famfold, an ensemble whose members each hold out one training family")
    p.add_argument("--members", type=int, default=4,
                   help="--valid-from family: ensemble members = training families held out in turn (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="log every epoch to stderr")


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.eval_benchmarks``."""

    p = argparse.ArgumentParser(prog="python -m genesis_rna.eval_benchmarks", description=EVALUATE_DESCRIPTION)
    add_evaluate_arguments(p)
    args = p.parse_args(argv)
    try:
        print(run_benchmark(args))
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return 2
    return 0
