"""``python -m genesis_rna.eval_benchmarks``, a documented entry point: forwards to :mod:`genesis_rna.cli.evaluate`
(see docs/architecture.md)."""

import sys

from .cli.evaluate import evaluate_main as main

if __name__ == "__main__":
    sys.exit(main())
