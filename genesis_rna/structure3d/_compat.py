"""Where fold and the designer live: ``genesis_rna.structure.fold`` / ``genesis_rna.design.inverse`` after the
package reorganisation (issue 24), ``genesis_rna.fold`` / ``genesis_rna.design`` before it."""

from __future__ import annotations


def fold_module():
    """The module with ``load_predictor``, ``predict_windows`` and ``decode``."""
    try:
        from ..structure import fold
    except ImportError:
        from .. import fold
    return fold


def design_function():
    """``genesis_rna``'s inverse-folding ``design(target, n, model=..., seed=...)``."""
    try:
        from ..design.inverse import design
    except ImportError:
        from ..design import design
    return design
