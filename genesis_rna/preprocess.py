"""``python -m genesis_rna.preprocess``, a documented entry point: forwards to :mod:`genesis_rna.cli.training`
(see docs/architecture.md)."""

import sys

from .cli.training import preprocess_main as main

if __name__ == "__main__":
    sys.exit(main())
