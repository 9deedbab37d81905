"""``python -m genesis_rna.train_finetune``, a documented entry point: forwards to :mod:`genesis_rna.cli.finetune`
(see docs/architecture.md)."""

import sys

from .cli.finetune import finetune_main as main

if __name__ == "__main__":
    sys.exit(main())
