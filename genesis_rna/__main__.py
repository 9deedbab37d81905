"""``python -m genesis_rna`` is the same as the ``genesis-rna`` command."""

import sys

from .cli import main

sys.exit(main())
