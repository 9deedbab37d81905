"""Exceptions raised by genesis-rna's public entry points.

Every problem with user input surfaces as a :class:`GenesisRNAError` subclass whose message is a single line
naming the file, the record and the problem, so the CLI can print ``str(err)`` and exit non-zero without a
traceback, and API users can catch one base class.
"""

from __future__ import annotations

import os


class GenesisRNAError(Exception):
    """Base class of every error genesis-rna raises on purpose."""


class InputError(GenesisRNAError, ValueError):
    """Bad input data: a file, a record or a value inside it.

    The message is built from the parts that are known, e.g.
    ``seqs.fa: record 'tRNA-Phe' position 12: invalid character 'X'``.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | os.PathLike | None = None,
        record: str | None = None,
        position: int | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.record = record
        self.position = position
        self.line = line
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = []
        if self.path is not None:
            where.append(f"{self.path}" + (f" line {self.line}" if self.line is not None else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.record is not None:
            rec = f"record '{self.record}'"
            if self.position is not None:
                rec += f" position {self.position}"
            where.append(rec)
        elif self.position is not None:
            where.append(f"position {self.position}")
        msg = " ".join(self.problem.splitlines()) if self.problem else "invalid input"
        return (": ".join(where) + ": " + msg) if where else msg

    def with_context(
        self, *, path: str | os.PathLike | None = None, record: str | None = None, line: int | None = None
    ) -> InputError:
        """Return a copy of this error with missing location fields filled in (readers add the file name)."""
        return type(self)(
            self.problem,
            path=self.path if self.path is not None else path,
            record=self.record if self.record is not None else record,
            position=self.position,
            line=self.line if self.line is not None else line,
        )


class SequenceError(InputError):
    """A sequence with letters outside the alphabet, zero length, or a protein where RNA was expected."""


class StructureError(InputError):
    """A structure that is malformed: unbalanced brackets, a position paired twice, wrong length."""


class FormatError(InputError):
    """A file that is not in the format it claims to be (binary garbage, empty file, broken header)."""


class ConfigError(GenesisRNAError, ValueError):
    """A configuration value that is out of range or inconsistent with another one."""


class CheckpointError(GenesisRNAError):
    """A model directory that is missing files, has unexpected or missing weights, or a bad config."""
