"""``python -m genesis_rna.structure_model``, a documented entry point: forwards to :mod:`genesis_rna.cli.structure`
(see docs/architecture.md)."""

import sys

from .cli.structure import structure_model_main as main

if __name__ == "__main__":
    sys.exit(main())
