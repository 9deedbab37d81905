"""What every command shares: exit codes, progress, the model options and loading, output names."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import GenesisRNAError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def progress_enabled(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr, only when it is a terminal and --quiet is not given."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model directory or shipped model name (default: the shipped genesis-rna-small)")
    p.add_argument("--random-init", metavar="PRESET", choices=("small", "base", "large"), default=None,
                   help="use a randomly initialised model of this preset instead of trained weights (smoke tests, baselines)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="compute precision; auto = bf16 where the CPU/GPU computes it natively, else fp32")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def load_model(args: argparse.Namespace):
    from .. import pretrained

    if args.random_init:
        if args.model:
            raise GenesisRNAError("give either --model or --random-init, not both")
        return pretrained.random_model(args.random_init, seed=args.seed)[0], f"random {args.random_init} (seed {args.seed})"
    name = args.model or pretrained.DEFAULT_MODEL
    return pretrained.load(name)[0], name


def same_file(output: str, input_path: str) -> bool:
    """True when writing ``output`` would replace ``input_path`` (same path, or a link to it)."""
    if os.path.realpath(output) == os.path.realpath(input_path):
        return True
    try:
        return os.path.samefile(output, input_path)
    except OSError:  # output does not exist yet (or input is missing: reported when it is read)
        return False


def default_output(input_path: str, suffix: str) -> str:
    """``seqs.v2.fa.gz`` -> ``seqs.v2<suffix>`` in the current directory (only known extensions are dropped)."""
    name = os.path.basename(input_path)
    for ext in (".gz", ".fa", ".fasta", ".fna", ".fas", ".txt"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return (name or "output") + suffix
