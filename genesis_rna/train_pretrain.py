"""``python -m genesis_rna.train_pretrain``, a documented entry point: forwards to :mod:`genesis_rna.cli.training`
(see docs/architecture.md)."""

import sys

from .cli.training import pretrain_main as main

if __name__ == "__main__":
    sys.exit(main())
