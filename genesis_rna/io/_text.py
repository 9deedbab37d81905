"""Shared plumbing of the readers and writers: text input with line numbers, gzip, atomic output.

Kept private so every format reports the same problems the same way: a missing file, a gzip file that is
corrupt, binary garbage (NUL bytes or bytes that do not decode) all become one-line :class:`InputError`s
naming the file and, where it helps, the line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .._fileutil import atomic_write, default_file_mode
from ..errors import FormatError, InputError, SequenceError

PathLike = str | os.PathLike

_GZIP_MAGIC = b"\x1f\x8b"


def strip_gz(path: PathLike) -> str:
    """File name without a trailing ``.gz`` (for extension checks and default record ids)."""
    name = os.fspath(path)
    return name[:-3] if name.lower().endswith(".gz") else name


def file_stem(path: PathLike) -> str:
    """Base name without ``.gz`` and without the format extension: the default id of a one-record file."""
    return Path(strip_gz(path)).stem


@contextlib.contextmanager
def open_binary(path: PathLike) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading bytes, decompressing gzip (recognised by its magic bytes, not by the name)."""
    try:
        raw = open(path, "rb")  # closed in the finally below
    except OSError as err:
        raise InputError(f"cannot open file: {err.strerror or err}", path=path) from err
    try:
        head = raw.read(2)
        raw.seek(0)
        yield gzip.GzipFile(fileobj=raw, mode="rb") if head == _GZIP_MAGIC else raw
    finally:
        raw.close()


@contextlib.contextmanager
def open_text(path: PathLike, *, encoding: str = "utf-8-sig") -> Iterator[IO[str]]:
    """Open ``path`` for reading text; gzip is recognised by its magic bytes, not by the file name.

    Universal newlines, so CRLF files read like LF files; ``utf-8-sig`` drops the byte-order mark that some
    Windows editors put at the start of UTF-8 files.
    """
    with open_binary(path) as binary, io.TextIOWrapper(binary, encoding=encoding, newline=None) as text:
        yield text


def numbered_lines(path: PathLike, kind: str, *, encoding: str = "utf-8-sig") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, newline removed) and turn unreadable input into FormatError.

    ``kind`` names the format in messages ("not a text FASTA file"). Streaming: one line in memory at a time.
    """
    lineno = 0
    with open_text(path, encoding=encoding) as fh:
        try:
            for line in fh:
                lineno += 1
                if "\x00" in line:
                    raise FormatError(f"not a text {kind} file (NUL byte)", path=path, line=lineno)
                yield lineno, line.rstrip("\n")
        except UnicodeDecodeError as err:
            raise FormatError(f"not a text {kind} file (bytes that are not UTF-8 text)", path=path,
                              line=lineno + 1) from err
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise FormatError(f"corrupt gzip file ({err})", path=path, line=lineno + 1) from err


def os_reason(err: OSError) -> str:
    """``strerror`` plus the path it concerns, e.g. ``File exists: out`` when a parent directory is a file."""
    reason = err.strerror or str(err)
    return f"{reason}: {err.filename}" if err.filename else reason


@contextlib.contextmanager
def open_output(path: PathLike) -> Iterator[IO[str]]:
    """Text output written atomically (temporary name, then rename); gzip when ``path`` ends in ``.gz``.

    A writer that raises half way leaves neither a partial file nor the temporary one behind. The finished
    file has the usual permissions (umask), not the temporary file's 0o600.
    """
    gz = os.fspath(path).lower().endswith(".gz")
    with contextlib.ExitStack() as stack:
        try:  # only creating the output is guarded here: errors of the caller's block pass through unchanged
            if gz:
                handle = stack.enter_context(atomic_write(path, "wb"))
            else:
                handle = stack.enter_context(atomic_write(path, "w", encoding="utf-8", newline="\n"))
            os.fchmod(handle.fileno(), default_file_mode())
        except OSError as err:  # parent is a file, no permission, disk full, ...
            raise InputError(f"cannot write file: {os_reason(err)}", path=path) from err
        if gz:
            zipped = stack.enter_context(gzip.GzipFile(fileobj=handle, mode="wb", filename="", mtime=0))
            handle = stack.enter_context(io.TextIOWrapper(zipped, encoding="utf-8", newline="\n"))
        yield handle


def locate(err: InputError, *, path: PathLike, record: str | None = None, line: int | None = None
           ) -> InputError:
    """Copy of ``err`` with the file (and record, line) filled in where the raiser did not know them."""
    return err.with_context(path=path, record=record, line=line)


def check_record_id(rec_id: str, kind: str) -> None:
    """Ids are written as the first token of a header, so they must be non-empty and free of whitespace."""
    if not isinstance(rec_id, str) or not rec_id or any(c.isspace() for c in rec_id):
        raise SequenceError(f"record id {rec_id!r} cannot be written to {kind}: it must be non-empty and "
                            "contain no whitespace")


def check_sequence_text(seq: str, rec_id: str, kind: str) -> None:
    """A sequence written to a text format must be non-empty printable characters without whitespace."""
    if not isinstance(seq, str) or not seq:
        raise SequenceError(f"cannot write an empty sequence to {kind}", record=rec_id)
    bad = next((k for k, c in enumerate(seq) if c.isspace() or not c.isprintable() or c == ">"), None)
    if bad is not None:
        raise SequenceError(f"character {seq[bad]!r} cannot be written to {kind}", record=rec_id,
                            position=bad + 1)
