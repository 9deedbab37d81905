"""Atomic file writing: outputs appear under their final name only once complete.

DESIGN.md: an interrupted or failed run leaves no half-written file. Every writer in genesis-rna writes to a
temporary file in the destination directory and renames it over the target (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


def default_file_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give a new file (0o666 less the umask).

    Temporary files from :mod:`tempfile` are created 0o600; renamed into place unchanged, outputs would be
    unreadable to the group and others, unlike every other file the user writes.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it to ``path`` on success, delete it on any error."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path for libraries that insist on opening files themselves (numpy, h5py, safetensors).

    ``suffix`` keeps the extension such libraries look at (``np.save`` appends ``.npy`` otherwise).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        if os.path.isfile(tmp):
            os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
