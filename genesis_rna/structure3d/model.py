"""The in-memory 3D model: chains of residues, each a base letter, atom names, coordinates and a confidence.

Kept as plain NumPy so that building, checking and scoring need no structure library; :mod:`.pdbio` converts to
and from gemmi for files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BASES = "ACGU"


@dataclass
class Residue:
    """One nucleotide: ``name`` in ``ACGU``, ``atoms`` names, ``coords`` [n, 3] (A), ``confidence`` 0-100."""

    name: str
    atoms: tuple[str, ...]
    coords: np.ndarray = field(repr=False)
    confidence: float = 0.0
    number: int = 0

    def atom(self, name: str) -> np.ndarray | None:
        """Coordinates of one atom, or None when the residue lacks it (natives may miss atoms)."""
        try:
            return self.coords[self.atoms.index(name)]
        except ValueError:
            return None


@dataclass
class Chain:
    """A chain id (PDB label) and its residues, 5' to 3'."""

    id: str
    residues: list[Residue]

    @property
    def sequence(self) -> str:
        return "".join(r.name for r in self.residues)


@dataclass
class Model3D:
    """A whole model; ``structure`` is the dot-bracket it was built from (joined chains, '&' between), if any."""

    chains: list[Chain]
    structure: str | None = None
    notes: dict = field(default_factory=dict)

    @property
    def residues(self) -> list[Residue]:
        return [r for c in self.chains for r in c.residues]

    @property
    def sequence(self) -> str:
        """Chain sequences joined by '&' (ViennaRNA's multi-strand notation)."""
        return "&".join(c.sequence for c in self.chains)

    def trace(self, atom: str = "C4'") -> np.ndarray:
        """[L, 3] coordinates of ``atom`` for every residue of every chain, NaN rows where it is missing."""
        rows = [r.atom(atom) for r in self.residues]
        return np.array([np.full(3, np.nan) if x is None else x for x in rows], dtype=np.float64).reshape(-1, 3)

    def chain_breaks(self) -> np.ndarray:
        """Boolean [L]: True where residue k is the last of its chain (no backbone link to k + 1)."""
        out = []
        for c in self.chains:
            out += [False] * (len(c.residues) - 1) + [True]
        return np.array(out, dtype=bool)

    def confidence(self) -> np.ndarray:
        return np.array([r.confidence for r in self.residues], dtype=np.float64)
