"""Secondary structure: partner arrays and dot-bracket (``pairs``), ViennaRNA, decoding, the structure model
and ``fold``. The package namespace holds the pair functions (no PyTorch), as ``genesis_rna.structure`` always did."""

from .pairs import *  # noqa: F403
from .pairs import __all__  # noqa: F401
