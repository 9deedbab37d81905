"""``genesis-rna pretrain`` and ``preprocess``."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
from collections.abc import Sequence

from ..config import TrainingConfig
from ..data.format import FOLD_METHODS
from ..data.preprocess import PreprocessReport, preprocess
from ..data.shards import DEFAULT_SHARD_SIZE
from ..data.splits import check_split
from ..errors import GenesisRNAError, InputError
from ..training.pretrain import run


# ------------------------------------------------------------------------------------------------ pretrain
def add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a model (masked nucleotides + structure + pairs, optional AST)",
                       description="Pretrain genesis-rna; same as `python -m genesis_rna.train_pretrain`. "
                       "Re-running the same command resumes from the latest checkpoint.",
                       epilog=PRETRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pretrain_arguments(p)
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    argv = sys.argv[1:]
    argv = argv[1:] if argv[:1] == ["pretrain"] else argv  # run_info's command already says "genesis-rna pretrain"
    result = run_pretrain_args(args, argv)
    if int(os.environ.get("RANK", "0")) == 0:
        print(pretrain_summary(result))
    return 0


# ------------------------------------------------------------------------------------------------ preprocess
PREPROCESS_EXAMPLES = """examples:
  genesis-rna preprocess ../shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz -o /data/rfam_store
  genesis-rna preprocess seqs.fa.gz structures/ -o /data/store --max-len 1024 --workers 8
"""


def add_preprocess(sub) -> None:
    p = sub.add_parser("preprocess", help="raw FASTA/Stockholm/CT/BPSEQ/dbn -> sharded pretraining store",
                       description="Normalise, de-duplicate, length-filter, add structures (given or ViennaRNA "
                       "MFE) and write a sharded, memory-mapped store with family-disjoint splits.",
                       epilog=PREPROCESS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_preprocess_arguments(p)
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> int:
    print(run_preprocess_args(args, sys.argv[1:]).summary())
    return 0


PRETRAIN_DESCRIPTION = "Pretraining entry point: ``python -m genesis_rna.train_pretrain`` = ``genesis-rna pretrain``."
PRETRAIN_EXAMPLES = """examples:
  genesis-rna pretrain --use_dummy_data --max_steps 50 --output_dir /tmp/run_dummy
  genesis-rna pretrain --data_path examples/well_known_rnas.fa --use_ast --max_steps 30 --output_dir runs/quickstart
  genesis-rna preprocess ../shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz -o /data/rfam_store
  genesis-rna pretrain --config experiments/config_pretrain_small.yaml --data_path /data/rfam_store \\
      --output_dir /runs/small --use_ast --ast_target_activation 0.4
  torchrun --nproc_per_node 2 -m genesis_rna.train_pretrain --data_path /data/rfam_store --max_steps 1000

Run folder: config.yaml, metrics.jsonl, checkpoints/ (resume), best/ and final/ (model directories usable with
`genesis-rna embed --model`), training_curves.png. Keep run folders outside the repository.
"""


_HELP = {
    "model_size": "architecture preset: small | base | large",
    "batch_size": "sequences per batch (when tokens_per_batch is 0)",
    "tokens_per_batch": "token budget per batch; > 0 switches to length-bucketed token-budget batches",
    "max_steps": "optimiser steps; > 0 overrides num_epochs",
    "use_ast": "Adaptive Sparse Training: only selected samples enter the backward pass",
    "ast_target_activation": "fraction of samples that learn (AST)",
    "ast_strategy": "AST selection: random (default, measured best; no scoring forward) | random_scored | loss | entropy | infobatch | sundew | tokens (see docs/ast_benchmark.md)",
    "ast_reference": "rank AST scores within the batch (batch) or against recent scores (window)",
    "precision": "auto (bf16 where native) | fp32 | bf16 | fp16 (CUDA only)",
    "data_path": "shard store (genesis-rna preprocess) or raw FASTA/Stockholm/CT/BPSEQ/dbn file or directory",
    "use_dummy_data": "synthetic hairpin RNAs (a smoke run needing no data)",
    "flops_every": "measure executed FLOPs (and a dense reference) every N steps; 0 = never",
    "model_overrides": "GenesisRNAConfig fields that differ from the preset, e.g. pair_bias=true,pair_conv_layers=3",
    "output_dir": "run folder (checkpoints, metrics, final model); keep it outside the repository",
}


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _spellings(name: str) -> tuple[str, ...]:
    """``--output_dir`` (the TrainingConfig field, as the flag always was) and ``--output-dir`` (as every other
    command spells its flags)."""
    dashed = name.replace("_", "-")
    return (f"--{name}",) if dashed == name else (f"--{name}", f"--{dashed}")


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One flag per TrainingConfig field (default ``None`` = not given), plus run options."""
    parser.add_argument("--config", default=None, help="YAML file with TrainingConfig fields")
    for f in dataclasses.fields(TrainingConfig):
        names = _spellings(f.name)
        help_text = _HELP.get(f.name, "") + f" (default {f.default!r})"
        if f.type == "bool":
            parser.add_argument(*names, nargs="?", const=True, default=None, type=_bool, metavar="BOOL",
                                help=help_text)
        else:
            parser.add_argument(*names, type={"int": int, "float": float}.get(f.type, str), default=None,
                                help=help_text)
    parser.add_argument(*_spellings("no_resume"), action="store_true", help="start over even if checkpoints exist")
    parser.add_argument(*_spellings("preprocess_workers"), type=int, default=None,
                        help="processes for ViennaRNA folding when --data_path is raw files (default all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """Defaults < ``--config`` YAML < flags given on the command line."""
    cfg = TrainingConfig.load_yaml(args.config) if args.config else TrainingConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)
             if getattr(args, f.name, None) is not None}
    return TrainingConfig.from_dict({**cfg.to_dict(), **given}, source="command line")


def pretrain_summary(result) -> str:
    """One line for stdout."""
    ev = result.last_eval
    val = (f"; val MLM loss {ev['val_mlm_loss']:.3f} (acc {ev.get('val_mlm_acc', math.nan):.3f})"
           if "val_mlm_loss" in ev else "")
    act = result.last_train.get("activation_cumulative")
    ast = f"; AST activation {act:.2f}" if act is not None and act < 1 else ""
    resumed = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    final = f" -> {result.final_dir}" if result.final_dir else ""
    return (f"trained {result.step} steps in {result.elapsed_seconds:.1f} s{resumed}; "
            f"loss {result.last_train.get('loss', math.nan):.3f}{val}{ast}{final}")


def run_pretrain_args(args: argparse.Namespace, argv: Sequence[str] | None = None):
    cfg = config_from_args(args)
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(cfg, resume=not args.no_resume, progress=not args.quiet,
               preprocess_workers=args.preprocess_workers, command="genesis-rna pretrain " + shlex.join(argv))


def pretrain_main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.train_pretrain`` (and under ``torchrun``)."""
    parser = add_pretrain_arguments(argparse.ArgumentParser(
        prog="python -m genesis_rna.train_pretrain", description=PRETRAIN_DESCRIPTION,
        epilog=PRETRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    try:
        result = run_pretrain_args(args, argv)
    except GenesisRNAError as err:
        print(f"genesis-rna: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genesis-rna: interrupted (resume with the same command)", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(pretrain_summary(result))
    return 0


def _fractions(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return check_split([float(p) for p in parts])
    except (ValueError, InputError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input_family(text: str) -> tuple[str, str]:
    fam, sep, path = text.partition("=")
    if not sep or not fam.strip() or not path.strip() or len(fam.split()) != 1:
        raise argparse.ArgumentTypeError(f"expected FAMILY=PATH (e.g. RF00005=trna_gtrnadb/), got {text!r}")
    return path, fam.strip()


def add_preprocess_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``genesis-rna preprocess`` options to ``parser`` (the CLI owns the subparser)."""
    parser.add_argument("inputs", nargs="+", help="FASTA(.gz), Stockholm(.gz, e.g. Rfam.seed.gz), .ct, .bpseq, "
                        ".dbn, tRNAscan-SE .ss files or directories of them")
    parser.add_argument("-o", "--output", required=True, help="output shard-store directory (must not exist)")
    parser.add_argument("--min-len", type=int, default=10, help="drop sequences shorter than this (default 10)")
    parser.add_argument("--max-len", type=int, default=None, help="drop sequences longer than this (default: keep)")
    parser.add_argument("--no-fold", dest="fold_missing", action="store_false",
                        help="store records without a given structure as unknown instead of folding them with "
                             "ViennaRNA (MFE)")
    parser.add_argument("--fold-method", choices=FOLD_METHODS, default="mfe",
                        help="how records without a structure are folded: ViennaRNA MFE (default) or its base-pair "
                             "probabilities (bpp: soft pair targets p >= 0.05 stored per record, labels from the "
                             "p > 0.5 pairs; records over 1,000 nt get MFE)")
    parser.add_argument("--fold-fraction", type=float, default=1.0,
                        help="fold only this fraction of the records without a structure (chosen by sequence "
                             "hash, so reproducible); the rest are stored with unknown structure (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes for structures (default: all cores; 0 = main process)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="nucleotides per shard")
    parser.add_argument("--split", type=_fractions, default=(0.9, 0.05, 0.05),
                        help="train,validation,test fractions (default 0.9,0.05,0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="skip and count bad records/files (default) or stop at the first")
    parser.add_argument("--input-family", dest="input_families", action="append", default=[], type=_input_family,
                        metavar="FAMILY=PATH",
                        help="records of input PATH (a file, or every file under a directory) that carry no family "
                             "of their own get FAMILY, so they go to that family's split; repeatable. E.g. "
                             "RF00005=trna_gtrnadb/ keeps GtRNAdb tRNAs with Rfam's tRNA family")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_preprocess_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> PreprocessReport:
    """Run :func:`preprocess` from parsed arguments; ``argv`` (the CLI's) is recorded in the manifest."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return preprocess(
        args.inputs, args.output, min_len=args.min_len, max_len=args.max_len, fold_missing=args.fold_missing,
        fold_method=args.fold_method, fold_fraction=args.fold_fraction,
        workers=args.workers, shard_size=args.shard_size, split=args.split, seed=args.seed,
        progress=not args.quiet, on_error=args.on_error, overwrite=args.overwrite,
        command="genesis-rna " + shlex.join(argv), input_families=_family_map(getattr(args, "input_families", [])),
    )


def _family_map(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, fam in pairs:
        if out.setdefault(path, fam) != fam:
            raise InputError(f"two families given for one input ({out[path]} and {fam})", path=path)
    return out


def preprocess_main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.preprocess``: the same options as ``genesis-rna preprocess``."""
    parser = add_preprocess_arguments(argparse.ArgumentParser(
        prog="python -m genesis_rna.preprocess",
        description="Raw RNA files -> sharded, memory-mapped pretraining store (``genesis-rna preprocess``)."))
    args = parser.parse_args(argv)
    try:
        report = run_preprocess_args(args, ["preprocess", *(sys.argv[1:] if argv is None else argv)])
    except GenesisRNAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
