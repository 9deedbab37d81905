"""ViennaRNA's partition function as pair features (the prior of the hybrid structure model)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["vienna_partition", "vienna_prior"]


# ----------------------------------------------------------------------------------------------- ViennaRNA
def vienna_partition(sequence: str):
    """ViennaRNA on one sequence: ``(fold_compound, mfe_structure, mfe_kcal, bpp)``, ``bpp`` float64 L x L symmetric.

    Default RNAfold energy parameters at 37 C; the partition function is rescaled from the MFE so long
    sequences do not overflow. The fold compound is returned for further queries (MEA, energies). The one place
    where the project runs the partition function: the structure model's prior, the ArchiveII cache and the
    server's fallback all use it.
    """
    try:
        import RNA
    except ImportError as err:  # pragma: no cover - ViennaRNA is a dependency
        raise ConfigError("ViennaRNA (import RNA) is not installed; install the ViennaRNA Python package or "
                          "use a model without the Vienna prior (--no-vienna)") from err
    fc = RNA.fold_compound(sequence, RNA.md())
    structure, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    upper = np.triu(np.array(fc.bpp(), dtype=np.float64)[1:, 1:], 1)
    return fc, structure, float(mfe), upper + upper.T


def vienna_prior(sequence: str) -> tuple[np.ndarray, np.ndarray]:
    """ViennaRNA base-pair probabilities and MFE pair indicator, both float32 L x L symmetric."""
    import RNA

    seq = sequence.upper().replace("T", "U")
    n = len(seq)
    _, structure, _, bpp = vienna_partition(seq)
    mfe_mat = np.zeros((n, n), dtype=np.float32)
    pt = np.array(RNA.ptable(structure), dtype=np.int64)[1:] - 1
    i = np.flatnonzero(pt >= 0)
    mfe_mat[i, pt[i]] = 1.0
    return bpp.astype(np.float32), mfe_mat
