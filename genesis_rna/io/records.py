"""Record types returned by the readers and accepted by the writers.

Plain dataclasses rather than Biopython ``SeqRecord``: the model only needs an id, a normalised string and (for
structures) a partner array, and a structure record checks at construction that its partner array fits its
sequence, so no reader or writer can hand on a structure of the wrong length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import StructureError
from ..structure.pairs import partners_to_dotbracket, partners_to_pairs, validate_partners

__all__ = ["SequenceRecord", "StructureRecord"]


@dataclass
class SequenceRecord:
    """One sequence: ``id`` (first header token), ``sequence`` (normalised by readers), ``description``."""

    id: str
    sequence: str
    description: str = ""

    def __len__(self) -> int:
        return len(self.sequence)


@dataclass(eq=False)
class StructureRecord:
    """A sequence with its secondary structure as a partner array (0-based partner, -1 unpaired).

    ``partner`` is validated (symmetric, in range, length == ``len(sequence)``) and stored as a new int64
    array, so later changes to the caller's array cannot break the record.
    """

    id: str
    sequence: str
    partner: np.ndarray = field(repr=False)
    description: str = ""

    def __post_init__(self) -> None:
        try:
            self.partner = np.array(validate_partners(self.partner, length=len(self.sequence)), dtype=np.int64)
        except StructureError as err:
            raise err.with_context(record=self.id) from None

    def __len__(self) -> int:
        return len(self.sequence)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructureRecord):
            return NotImplemented
        return (self.id, self.sequence, self.description) == (other.id, other.sequence, other.description) \
            and np.array_equal(self.partner, other.partner)

    __hash__ = None  # mutable, like other dataclasses with eq

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """0-based pairs ``(i, j)``, ``i < j``, sorted."""
        return partners_to_pairs(self.partner)

    @property
    def dotbracket(self) -> str:
        """Dot-bracket string (pseudoknots on ``[]``, ``{}``, ... pages)."""
        return partners_to_dotbracket(self.partner)

    def __repr__(self) -> str:
        try:
            shown = f"dotbracket={self.dotbracket!r}"
        except StructureError:  # more pseudoknot pages than brackets
            shown = f"n_pairs={len(self.pairs)}"
        return (f"StructureRecord(id={self.id!r}, sequence={self.sequence!r}, {shown}, "
                f"description={self.description!r})")
