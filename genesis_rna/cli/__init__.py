"""``genesis-rna`` command line: parse arguments, call the library, report. No logic of its own.

Errors a user can fix (bad input, missing model, bad option) are printed as one line
``genesis-rna: error: <file>: record '<id>': <problem>`` with exit status 2; nothing else is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..errors import GenesisRNAError
from ._common import EXIT_INTERRUPTED, EXIT_USAGE
from .design import add_design, add_optimize_mrna, add_score_mutations
from .evaluate import add_evaluate
from .finetune import add_finetune, add_predict
from .model import add_convert, add_embed, add_models
from .serve import add_serve
from .structure import add_fold
from .training import add_preprocess, add_pretrain

# ------------------------------------------------------------------------------------------------ main
# In the order `genesis-rna --help` lists them: the everyday commands first, training and tooling after.
SUBCOMMANDS: list[Callable] = [
    add_embed, add_fold, add_score_mutations, add_design, add_optimize_mrna,  # inference
    add_finetune, add_predict, add_evaluate,                                     # downstream
    add_pretrain, add_preprocess, add_convert, add_models, add_serve,           # training and tools
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="genesis-rna", description="genesis-rna: an RNA foundation-model toolkit.")
    parser.add_argument("--version", action="version", version=f"genesis-rna {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("genesis-rna: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, permissions, a missing file a reader did not catch: one line, no trace
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"genesis-rna: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
