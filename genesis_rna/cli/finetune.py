"""``genesis-rna finetune`` and ``predict``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import GenesisRNAError, InputError
from ..finetune.data import PAIR_TASKS, TASKS, ColumnSpec, check_task
from ..finetune.structure import (
    DEFAULT_CROP,
    DEFAULT_LR,
    STRUCTURE_COLUMNS,
    _check_output,
    _source,
    load_pair_splits,
    resolve_encoder,
    train_pair_task,
)
from ._common import progress_enabled, same_file

#: the pooling heads of genesis_rna.model.heads.POOLINGS, spelled out so that `genesis-rna --help` needs no PyTorch
#: (tests/test_architecture.py checks that the two agree)
POOLINGS = ("mean", "cls", "conv")


# ------------------------------------------------------------------------------------------------ finetune
def add_finetune(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune on a sequence, per-nucleotide or pair (structure) task",
                       description="Fine-tune genesis-rna (or a one-hot CNN baseline) for classification or "
                       "regression of sequences or nucleotides, or train a structure model for `genesis-rna fold` "
                       "from your structures (--task pair); same as `python -m genesis_rna.train_finetune`. "
                       "See docs/finetune.md.",
                       epilog=FINETUNE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_finetune_arguments(p)
    p.set_defaults(func=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    print(finetune_summary(run_finetune_args(args), args.output_dir))
    return 0


# ------------------------------------------------------------------------------------------------ predict
PREDICT_EXAMPLES = """examples:
  genesis-rna predict runs/nrc_frozen new.fa --output predictions.csv
  genesis-rna predict runs/openvaccine test.jsonl.gz --output profiles.jsonl

Sequence tasks write CSV (id, prediction, prob_<class> ... or one column per target); per-nucleotide tasks
write JSON Lines (id, sequence, one list per target with one value per nucleotide).
"""


def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="apply a model written by `genesis-rna finetune`",
                       description="Predict with a fine-tuned model directory (task.json + weights).",
                       epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="directory written by `genesis-rna finetune`")
    p.add_argument("input", help="FASTA, CSV, TSV or JSONL (.gz accepted); labels not needed")
    p.add_argument("--output", "-o", required=True, help="output .csv (sequence tasks) or .jsonl (per-nucleotide)")
    p.add_argument("--sequence-column", default=None, help="default: the column the model was trained with")
    p.add_argument("--id-column", default=None, help="default: the column the model was trained with")
    p.add_argument("--toks-per-batch", type=int, default=8192, help="token budget of a batch (default 8192)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from ..finetune.predict import predict_file

    if same_file(args.output, args.input):
        raise GenesisRNAError(f"{args.output}: output would overwrite the input")
    start = time.perf_counter()
    done = predict_file(args.model_dir, args.input, args.output, sequence_column=args.sequence_column,
                        id_column=args.id_column, device=args.device, dtype=args.dtype,
                        tokens_per_batch=args.toks_per_batch, progress=progress_enabled(args))
    print(f"predicted {done['n']} records ({done['nt']} nt, {done['task']}) with {args.model_dir} in "
          f"{time.perf_counter() - start:.1f} s -> {done['output']}")
    return 0


# =============================================================================================== CLI
def _reject_options(args: argparse.Namespace) -> None:
    """Options of the sequence tasks that mean nothing here: an error rather than silently ignored."""
    if args.random_init:
        raise InputError("--random-init is not available for --task pair (use --encoder none for the "
                         "no-language-model baseline)")
    if args.monitor not in (None, "f1"):
        raise InputError("--task pair stops early on validation F1; drop --monitor")
    if str(args.device).lower() not in ("auto", "cpu"):
        raise InputError("--task pair trains on the CPU (one sequence per step); drop --device")
    for name in ("epochs", "patience", "channels"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        raise InputError("--steps-per-epoch must be at least 1")
    if args.crop is not None and args.crop < 8:
        raise InputError("--crop must be at least 8 nucleotides")


def run_pair_args(args: argparse.Namespace) -> dict[str, Any]:
    """``genesis-rna finetune --task pair``: read, split, train, write; the results for :func:`summary`."""
    _reject_options(args)
    train_paths = [args.train] if isinstance(args.train, (str, os.PathLike)) else list(args.train)
    spec = ColumnSpec(sequence_column=args.sequence_column, id_column=args.id_column,
                      label_columns=list(args.label_columns), split_column=args.split_column,
                      filters=list(args.filter))
    split = load_pair_splits(train_paths, spec, valid_path=args.valid, test_path=args.test,
                             valid_values=args.valid_values, test_values=args.test_values,
                             valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
                             split_seed=args.split_seed)
    _check_output(Path(args.output_dir))
    encoder = resolve_encoder(args.encoder, args.model)
    if encoder is None and args.mode == "full":
        raise InputError("--mode full fine-tunes the encoder, and --encoder none has none (its whole network "
                         "trains anyway); drop --mode full")
    progress = not args.quiet and sys.stderr.isatty()

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    provenance = {"command": "genesis-rna finetune --task pair",
                  "data": {"train": [os.path.abspath(p) for p in train_paths],
                           "valid": _source(args.valid, spec, args.valid_fraction, args.split_seed),
                           "test": _source(args.test, spec, args.test_fraction, args.split_seed)},
                  "columns": {"sequence": args.sequence_column, "split": args.split_column,
                              "structure": (args.label_columns[0] if args.label_columns != ["label"]
                                            else " or ".join(STRUCTURE_COLUMNS))}}
    results = train_pair_task(split, args.output_dir, encoder=encoder, mode=args.mode,
                              use_vienna=args.vienna, channels=args.channels, epochs=args.epochs,
                              steps_per_epoch=args.steps_per_epoch, crop=args.crop or DEFAULT_CROP,
                              lr=args.lr if args.lr is not None else DEFAULT_LR, encoder_lr=args.encoder_lr,
                              patience=args.patience, seed=args.seed, provenance=provenance, log=log,
                              progress=progress)
    return results


def pair_summary(results: dict[str, Any], output_dir: str) -> str:
    """One line: sizes, epochs, valid F1 and threshold, test F1, and how to fold with the model."""
    n = results["n"]
    line = (f"trained a structure model on {n['train']} structures ({results['epochs_run']} epochs, best "
            f"{results['best_epoch']}); valid F1 {results['best_valid_f1']:.4f} at threshold {results['threshold']}")
    test = results.get("test")
    if test and test.get("n"):
        line += f"; test F1 {test['f1']:.4f} (n={test['n']})"
    return line + f" -> {output_dir} (fold with: genesis-rna fold INPUT.fa --model {output_dir})"


FINETUNE_EXAMPLES = """examples:
  # nRC 13-class ncRNA classification (label = first word of the FASTA description), frozen encoder
  genesis-rna finetune ../shared/data/classification/nrc/train.fa --test ../shared/data/classification/nrc/test.fa \\
      --task classification --output-dir runs/nrc_frozen
  # RBP binding (CSV, 0/1 label, 10%% of train held out for early stopping), full fine-tune
  genesis-rna finetune rbp/PUM2/train.csv.gz --test rbp/PUM2/test.csv.gz --task classification \\
      --label-column label --mode full --output-dir runs/pum2
  # OpenVaccine: 3 per-nucleotide targets, 68 scored positions, folds 1-4 train / 0 valid
  genesis-rna finetune openvaccine/train.jsonl.gz --task token-regression \\
      --label-column reactivity deg_Mg_pH10 deg_Mg_50C --scored-length-column seq_scored \\
      --split-column fold --valid-values 0 --filter SN_filter=1 --output-dir runs/openvaccine
  # the same head on one-hot input (CNN baseline)
  genesis-rna finetune train.fa --test test.fa --task classification --encoder onehot --output-dir runs/onehot
  genesis-rna predict runs/nrc_frozen new.fa --output predictions.csv
  # secondary structure (pair task) from dot-bracket / .ct / .bpseq files or a CSV structure column
  genesis-rna finetune my_structures.dbn --task pair --test held_out.dbn --output-dir runs/my_fold
  genesis-rna fold new.fa --model runs/my_fold --output folds/
"""


# =============================================================================================== CLI
def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``genesis-rna finetune`` (also ``python -m genesis_rna.train_finetune``)."""
    p.add_argument("train", nargs="+",
                   help="training data: FASTA (.fa), CSV, TSV or JSONL (.gz accepted); --task pair: also .dbn/.db, "
                        ".ct, .bpseq, Stockholm (.sto) files or directories of them (several allowed)")
    p.add_argument("--task", required=True, choices=TASKS + ("pair",),
                   help="classification | regression | token-classification | token-regression | pair "
                        "(secondary structure: trains a structure model for `genesis-rna fold`)")
    p.add_argument("--output-dir", "-o", required=True,
                   help="run folder = model directory for `genesis-rna predict` (--task pair: for "
                        "`genesis-rna fold --model`)")
    d = p.add_argument_group("data and columns")
    d.add_argument("--valid", default=None,
                   help="validation file (default: a random --valid-fraction of train; --task pair: also a directory)")
    d.add_argument("--test", default=None,
                   help="test file (evaluated once, with the best epoch; --task pair: also a directory)")
    d.add_argument("--sequence-column", default="sequence", help="column with the sequence (default sequence)")
    d.add_argument("--id-column", default="id", help="column with record ids (default id)")
    d.add_argument("--label-column", "--label-columns", dest="label_columns", nargs="+", default=["label"],
                   help="target column(s); several for multi-output regression (default label; FASTA: the "
                        "header label; --task pair: the dot-bracket or base_pairs column, default structure, "
                        "else base_pairs)")
    d.add_argument("--label-regex", default=None,
                   help="FASTA: regex on the description whose group 1 (or group 'label') is the label "
                        "(default: label=X if present, else the first word)")
    d.add_argument("--labels", nargs="+", default=None, help="class names in output order (default: sorted)")
    d.add_argument("--scored-length-column", default=None,
                   help="per-nucleotide tasks: column giving how many leading positions are scored")
    d.add_argument("--split-column", default=None, help="column assigning rows to train/valid/test (or folds)")
    d.add_argument("--valid-values", default=None, help="split-column values meaning valid, comma-separated")
    d.add_argument("--test-values", default=None, help="split-column values meaning test, comma-separated")
    d.add_argument("--valid-fraction", type=float, default=0.1, help="random validation share (default 0.1)")
    d.add_argument("--test-fraction", type=float, default=0.0, help="random test share without --test (default 0)")
    d.add_argument("--split-seed", type=int, default=0, help="seed of the random split (default 0)")
    d.add_argument("--filter", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep only rows where COLUMN equals VALUE (repeatable), e.g. SN_filter=1")
    m = p.add_argument_group("model")
    m.add_argument("--encoder", default="genesis", metavar="{genesis,onehot}",
                   help="genesis-rna encoder (default) or one-hot input through a small CNN (baseline); --task "
                        "pair: also none (= onehot: one-hot pair features) or an encoder NAME|DIR")
    m.add_argument("--mode", choices=("frozen", "full"), default="frozen",
                   help="frozen: cache encoder outputs, train the head only; full: train the encoder too")
    m.add_argument("--model", default=None, help="model directory or shipped name (default genesis-rna-small)")
    m.add_argument("--random-init", metavar="PRESET", choices=("small", "base", "large"), default=None,
                   help="a randomly initialised encoder of this preset (baseline)")
    m.add_argument("--pooling", choices=POOLINGS, default="mean",
                   help="sequence tasks (default mean; conv: a 1-D convolution over the per-nucleotide rows with "
                        "max+mean pooling, for motif-driven labels such as protein binding)")
    m.add_argument("--head-hidden", type=int, default=None,
                   help="head hidden width (default d_model; 0 = linear probe)")
    m.add_argument("--head-conv-layers", type=int, default=0,
                   help="per-nucleotide tasks: residual conv layers (width 128, kernel 9) over the rows before the "
                        "head, so each position reads its neighbours (default 0)")
    m.add_argument("--dropout", type=float, default=0.1)
    m.add_argument("--onehot-width", type=int, default=128)
    m.add_argument("--onehot-layers", type=int, default=3, help="conv layers of --encoder onehot (0 = bare one-hot)")
    m.add_argument("--onehot-kernel", type=int, default=9)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--patience", type=int, default=5, help="epochs without a better validation metric before stopping")
    t.add_argument("--monitor", default=None,
                   help="validation metric for early stopping (default: auroc for 2 classes, accuracy, macro_f1 "
                        "per token, spearman for one target, mcrmse for several)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="head learning rate (default 1e-3; --task pair 3e-3)")
    t.add_argument("--encoder-lr", type=float, default=5e-5, help="encoder learning rate in --mode full (5e-5)")
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--crop", type=int, default=None,
                   help="--mode full: random training crop (default: model window); --task pair: training crop "
                        "for every mode (default 160)")
    t.add_argument("--toks-per-batch", type=int, default=8192, help="token budget when computing features")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s = p.add_argument_group("pair (secondary-structure) task")
    s.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps (one structure each) per epoch (default: one pass over the training set)")
    s.add_argument("--no-vienna", dest="vienna", action="store_false",
                   help="no ViennaRNA prior channels (then folding never needs ViennaRNA)")
    s.add_argument("--channels", type=int, default=16, help="width of the 2D ResNet over pair features (default 16)")


def run_finetune_args(args: argparse.Namespace) -> dict[str, Any]:
    from ..finetune.trainer import FinetuneConfig, build_encoder, finetune, load_task_data

    if args.task in PAIR_TASKS:
        return run_pair_args(args)
    check_task(args.task)
    if not isinstance(args.train, str):
        if len(args.train) != 1:
            raise InputError(f"--task {args.task} takes one training file, got {len(args.train)} (only --task pair "
                             "reads several)")
        args.train = args.train[0]
    if args.encoder not in ("genesis", "onehot"):
        raise InputError(f"--encoder {args.encoder!r}: choose genesis or onehot (an encoder directory or name goes "
                         "to --model)")
    for name in ("epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    spec = ColumnSpec(sequence_column=args.sequence_column, id_column=args.id_column,
                      label_columns=list(args.label_columns), scored_length_column=args.scored_length_column,
                      split_column=args.split_column, label_regex=args.label_regex, filters=list(args.filter))
    split = load_task_data(args.train, args.task, spec, valid_path=args.valid, test_path=args.test,
                           valid_values=args.valid_values, test_values=args.test_values,
                           valid_fraction=args.valid_fraction, test_fraction=args.test_fraction,
                           split_seed=args.split_seed)
    cfg = FinetuneConfig(task=args.task, output_dir=args.output_dir, encoder=args.encoder, mode=args.mode,
                         pooling=args.pooling, head_hidden=args.head_hidden, dropout=args.dropout,
                         head_conv_layers=args.head_conv_layers,
                         epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                         lr=1e-3 if args.lr is None else args.lr,
                         encoder_lr=args.encoder_lr, weight_decay=args.weight_decay, monitor=args.monitor,
                         crop=args.crop, seed=args.seed, device=args.device, dtype=args.dtype,
                         tokens_per_batch=args.toks_per_batch, onehot_width=args.onehot_width,
                         onehot_layers=args.onehot_layers, onehot_kernel=args.onehot_kernel,
                         progress=not args.quiet and sys.stderr.isatty())
    encoder, name = build_encoder(cfg, args.model, args.random_init)
    cfg.base_model = name
    results = finetune(cfg, split, spec, encoder, labels=args.labels, base_name=name, data_path=args.train)
    results["n"] = {k: len(v) for k, v in split.items()}
    return results


def finetune_summary(results: dict[str, Any], output_dir: str) -> str:
    """One line: sizes, best epoch, the monitored metric on valid and on test."""
    if results.get("task") in PAIR_TASKS:
        return pair_summary(results, output_dir)
    mon = results["monitor"]
    parts = [f"fine-tuned on {results['n']['train']} sequences ({results['epochs_run']} epochs, best "
             f"{results['best_epoch']})"]
    for name in ("valid", "test"):
        if name in results:
            extra = "" if mon == "accuracy" or "accuracy" not in results[name] else \
                f", accuracy {results[name]['accuracy']:.4f}"
            parts.append(f"{name} {mon} {results[name][mon]:.4f}{extra}")
    return "; ".join(parts) + f" -> {output_dir}"


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.train_finetune``."""
    parser = argparse.ArgumentParser(prog="python -m genesis_rna.train_finetune", epilog=FINETUNE_EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Fine-tune genesis-rna (or a one-hot baseline) on a task.")
    add_finetune_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(finetune_summary(run_finetune_args(args), args.output_dir))
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return 2
    return 0
