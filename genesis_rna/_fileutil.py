"""Atomic file writing: outputs appear under their final name only once complete.

docs/architecture.md: an interrupted or failed run leaves no half-written file. Every writer in genesis-rna writes to a
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
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask (reading it means setting it, so it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield an empty temporary directory next to ``path`` that becomes ``path`` once the block succeeds.

    A model directory is several files that only make sense together; building them in a sibling directory and
    renaming it means a failed or interrupted run leaves nothing under ``path`` (nor parent directories it had
    to create). An existing ``path`` is replaced only at the end: it is renamed aside, the new directory takes
    its name, then the old one is deleted. The caller decides beforehand whether replacing it is acceptable.
    """
    import shutil

    target = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(target)
    created = []
    probe = parent
    while not os.path.isdir(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0o700; a plain mkdir would not
        if not os.path.isdir(target):
            os.replace(tmp, target)
            return
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=parent)
        os.replace(target, old)  # an empty directory is replaced by rename
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise


def safe_filename(name: str) -> str:
    """``name`` with every character outside ``A-Za-z0-9._-`` replaced by ``_`` (record ids as file names)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
