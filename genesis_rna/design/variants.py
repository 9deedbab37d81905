"""Variants of a wild-type RNA: ``A23G`` / ``A23G:C40U`` notation (1-based, checked against the wild type),
full-length mutant sequences turned into substitutions, saturation scans, variant files. No model here."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError, SequenceError

BASES = "ACGU"

__all__ = ["BASES", "METHODS", "Substitution", "parse_variant", "format_variant", "apply_variant",
           "substitutions_between", "saturation_variants", "read_variants"]

METHODS = ("masked-marginal", "wt-marginal")
_SUBSTITUTION = re.compile(r"^([A-Za-z*])(\d+)([A-Za-z*])$")


@dataclass(frozen=True)
class Substitution:
    """One point substitution: 0-based ``position``, wild-type base ``wt``, mutant base ``mut`` (ACGU)."""

    position: int
    wt: str
    mut: str

    def __str__(self) -> str:
        return f"{self.wt}{self.position + 1}{self.mut}"


# --------------------------------------------------------------------------------------------- parsing
def _base(letter: str, spec: str, what: str) -> str:
    """``letter`` as an RNA base (T -> U); anything else is an error naming the variant."""
    b = letter.upper().replace("T", "U")
    if b not in BASES:
        raise InputError(f"variant {spec!r}: {what} {letter!r} is not a nucleotide (A C G U/T)")
    return b


def parse_variant(spec: str, wild_type: str) -> tuple[Substitution, ...]:
    """``"A23G"`` or ``"A23G:C40U"`` (also ``,``-separated) -> substitutions, checked against ``wild_type``.

    Errors (one line, naming the variant): malformed text, a letter that is not a nucleotide, a position outside
    1..L, a wild-type base that differs from the wild type's, a mutant base equal to the wild type's, and the same
    position twice.
    """
    text = spec.strip()
    if not text:
        raise InputError("empty variant")
    subs: list[Substitution] = []
    for part in re.split(r"[:,]", text):
        match = _SUBSTITUTION.match(part.strip())
        if not match:
            raise InputError(f"variant {spec!r}: cannot read {part.strip()!r}; write substitutions as A23G "
                             "(wild-type base, 1-based position, mutant base), joined by ':'")
        wt = _base(match.group(1), spec, "wild-type letter")
        mut = _base(match.group(3), spec, "mutant letter")
        pos = int(match.group(2))
        if not 1 <= pos <= len(wild_type):
            raise InputError(f"variant {spec!r}: position {pos} outside the wild type (1..{len(wild_type)})")
        if wild_type[pos - 1] != wt:
            raise InputError(f"variant {spec!r}: the wild type has {wild_type[pos - 1]} at position {pos}, not {wt}")
        if mut == wt:
            raise InputError(f"variant {spec!r}: mutant base equals the wild-type base at position {pos}")
        if any(s.position == pos - 1 for s in subs):
            raise InputError(f"variant {spec!r}: position {pos} is mutated twice")
        subs.append(Substitution(pos - 1, wt, mut))
    return tuple(sorted(subs, key=lambda s: s.position))


def format_variant(subs: Iterable[Substitution]) -> str:
    """``A23G:C40U`` (sorted by position); the wild type itself is written ``WT``."""
    text = ":".join(str(s) for s in sorted(subs, key=lambda s: s.position))
    return text or "WT"


def apply_variant(wild_type: str, subs: Iterable[Substitution]) -> str:
    """The mutant sequence: ``wild_type`` with every substitution applied (checked against the wild type)."""
    seq = list(wild_type)
    for s in subs:
        if seq[s.position] != s.wt:
            raise InputError(f"substitution {s}: the wild type has {wild_type[s.position]} at {s.position + 1}")
        seq[s.position] = s.mut
    return "".join(seq)


def substitutions_between(wild_type: str, sequence: str, record: str | None = None) -> tuple[Substitution, ...]:
    """The substitutions that turn ``wild_type`` into ``sequence`` (same length; N in the mutant is refused)."""
    if len(sequence) != len(wild_type):
        raise SequenceError(f"length {len(sequence)} differs from the wild type's {len(wild_type)}; only "
                            "substitutions can be scored (no insertions or deletions)", record=record)
    subs = []
    for i, (a, b) in enumerate(zip(wild_type, sequence, strict=True)):
        if a != b:
            if b not in BASES or a not in BASES:
                raise SequenceError(f"position {i + 1}: {a}->{b}; only A C G U substitutions can be scored",
                                    record=record)
            subs.append(Substitution(i, a, b))
    return tuple(subs)


def saturation_variants(wild_type: str) -> list[tuple[Substitution, ...]]:
    """Every single substitution of ``wild_type`` (3 per A/C/G/U position), position by position, ACGU order."""
    return [(Substitution(i, w, b),) for i, w in enumerate(wild_type) if w in BASES for b in BASES if b != w]


def read_variants(path: str | os.PathLike, wild_type: str) -> list[tuple[str, tuple[Substitution, ...]]]:
    """``(id, substitutions)`` from a variant file: FASTA of full sequences, CSV, or one variant per line.

    CSV (first line a header with ``,``): a ``mutant``/``variant``/``mutations`` column of ``A23G:C40U`` strings, or
    a ``sequence`` column of full mutant sequences; an ``id`` column names rows (default: the variant). Plain text:
    one variant per line, ``#`` comments and blank lines skipped. Errors name the file and the line.
    """
    from ..io import read_fasta
    from ..io._text import numbered_lines
    from ..vocab import normalise

    lines = list(numbered_lines(path, "variant"))
    first = next((ln for _, ln in lines if ln.strip() and not ln.startswith("#")), "")
    if first.lstrip().startswith(">"):
        return [(r.id, substitutions_between(wild_type, r.sequence, r.id)) for r in read_fasta(path)]
    out: list[tuple[str, tuple[Substitution, ...]]] = []
    header = {c.strip().strip('"').lower() for c in first.split(",")}
    if header & {"mutant", "variant", "mutations", "mutation", "sequence", "seq"}:
        rows = csv.DictReader(ln for _, ln in lines if ln.strip())
        cols = {c.strip().lower(): c for c in rows.fieldnames or []}
        var_col = next((cols[c] for c in ("mutant", "variant", "mutations", "mutation") if c in cols), None)
        seq_col = cols.get("sequence") or cols.get("seq")
        if var_col is None and seq_col is None:
            raise InputError("CSV needs a 'mutant' (A23G:C40U) or a 'sequence' column", path=path, line=1)
        for k, row in enumerate(rows):
            line = k + 2
            try:
                if var_col is not None:
                    subs = parse_variant(row[var_col] or "", wild_type)
                else:
                    seq = normalise(row[seq_col] or "", record=f"row {k + 1}")
                    subs = substitutions_between(wild_type, seq)
            except InputError as err:
                raise err.with_context(path=path, line=line) from None
            rid = (row.get(cols["id"]) if "id" in cols else None) or format_variant(subs)
            out.append((rid, subs))
        return out
    for lineno, line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            subs = parse_variant(text, wild_type)
        except InputError as err:
            raise err.with_context(path=path, line=lineno) from None
        out.append((format_variant(subs), subs))
    if not out:
        raise InputError("no variants in file", path=path)
    return out
