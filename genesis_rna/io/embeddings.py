"""Writers (and a reader) for per-record embeddings: one ``.npz``, one ``.h5``, or a directory of ``.npy``.

Layout, the same in every format, keyed by record id so records can be written in any order:

* ``.npz``: arrays named ``{id}/mean_layer{L}``, ``{id}/per_tok_layer{L}`` ([L, d]) and ``{id}/bos_layer{L}``;
  the id is everything before the last ``/`` (Rfam ids contain ``/``).
* ``.h5``: one group per record (the id percent-encoded where it contains ``/``; the original id in the group's
  ``id`` attribute, the sequence length in ``length``), datasets ``mean_layer{L}`` etc.
* directory: ``{quoted_id}.{kind}_layer{L}.npy`` per record, plus ``ids.tsv`` (id, length, file prefix).

Every format is written to a temporary name and renamed when complete, so an interrupted run leaves nothing
half-written under the requested name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
import zipfile
from typing import Protocol

import numpy as np

from ..errors import InputError
from ._text import default_file_mode, os_reason

FORMATS = ("npz", "h5", "npy")


class _Result(Protocol):
    id: str
    length: int
    per_tok: dict[int, np.ndarray]
    mean: dict[int, np.ndarray]
    bos: dict[int, np.ndarray]


def infer_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``npz``/``h5`` from the extension, ``npy`` for a directory (existing or ending in ``/``), unless given."""
    path = os.fspath(path)
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"unknown embedding format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    lower = path.lower()
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith((".h5", ".hdf5")):
        return "h5"
    if os.path.isdir(path) or path.endswith(os.sep) or not os.path.splitext(path)[1]:
        return "npy"
    raise InputError(f"cannot tell the output format from {path!r}: use .npz, .h5 or a directory (or --format)")


def _arrays(result: _Result) -> list[tuple[str, np.ndarray]]:
    items = []
    for kind in ("mean", "per_tok", "bos"):
        for layer, arr in sorted(getattr(result, kind).items()):
            items.append((f"{kind}_layer{layer}", np.ascontiguousarray(arr, dtype=np.float32)))
    return items


def _quote(record_id: str) -> str:
    """Percent-encoded id for an HDF5 group or file name; a leading '.' too, since HDF5 reads the group name
    '.' as the file's root group (and '.'-files would be hidden in a directory)."""
    quoted = urllib.parse.quote(record_id, safe="")
    return "%2E" + quoted[1:] if quoted.startswith(".") else quoted


class EmbeddingWriter:
    """Streams :class:`~genesis_rna.model.embed.EmbeddingResult` objects into one output; use as a context manager.

    On an exception inside the ``with`` block the temporary output is deleted and the target is untouched.
    """

    def __init__(self, path: str | os.PathLike, fmt: str | None = None) -> None:
        self.path = os.fspath(path).rstrip(os.sep) or os.fspath(path)
        self.format = infer_format(path, fmt)
        self.count = 0
        self._seen: set[str] = set()
        parent = os.path.dirname(os.path.abspath(self.path))
        # refuse now what would only fail at the final rename, after all the computing
        if self.format != "npy" and os.path.isdir(self.path):
            raise InputError("output is an existing directory; give a file name (or --format npy)", path=self.path)
        if self.format == "npy" and os.path.exists(self.path) and not os.path.isdir(self.path):
            raise InputError("output exists and is not a directory (npy output is a directory)", path=self.path)
        # tempfile creates 0o700 directories and 0o600 files; give the output the permissions a plain
        # mkdir/open would (umask), since the temporary becomes the output by renaming.
        mode = default_file_mode()
        try:
            os.makedirs(parent, exist_ok=True)
            if self.format == "npy":
                self._tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=parent)
                os.chmod(self._tmp, mode | ((mode & 0o444) >> 2))  # r -> x on directories, as mkdir gives
            else:
                fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp",
                                                 dir=parent)
                os.fchmod(fd, mode)
                os.close(fd)
        except OSError as err:  # parent is a file, no permission, ...
            raise InputError(f"cannot create output: {os_reason(err)}", path=self.path) from err
        if self.format == "npy":
            self._index = []
        else:
            if self.format == "npz":
                self._zip = zipfile.ZipFile(self._tmp, "w", allowZip64=True)
            else:
                import h5py

                self._h5 = h5py.File(self._tmp, "w")

    def add(self, result: _Result) -> None:
        if result.id in self._seen:
            raise InputError("duplicate record id; embeddings are keyed by id", record=result.id)
        self._seen.add(result.id)
        arrays = _arrays(result)
        if self.format == "npz":
            for name, arr in arrays:
                with self._zip.open(f"{result.id}/{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, arr, allow_pickle=False)
        elif self.format == "h5":
            group = self._h5.create_group(_quote(result.id))
            group.attrs["id"] = result.id
            group.attrs["length"] = result.length
            for name, arr in arrays:
                group.create_dataset(name, data=arr)
        else:
            prefix = _quote(result.id)
            for name, arr in arrays:
                np.save(os.path.join(self._tmp, f"{prefix}.{name}.npy"), arr, allow_pickle=False)
            self._index.append((result.id, result.length, prefix))
        self.count += 1

    def _finish(self) -> None:
        if self.format == "npz":
            self._zip.close()
            os.replace(self._tmp, self.path)
        elif self.format == "h5":
            self._h5.close()
            os.replace(self._tmp, self.path)
        else:
            with open(os.path.join(self._tmp, "ids.tsv"), "w") as fh:
                fh.write("id\tlength\tprefix\n")
                for rid, length, prefix in self._index:
                    fh.write(f"{rid}\t{length}\t{prefix}\n")
            self._move_directory()

    def _move_directory(self) -> None:
        """Rename the finished temp directory into place; merge into an existing directory file by file."""
        if not os.path.exists(self.path):
            os.replace(self._tmp, self.path)
            return
        if not os.path.isdir(self.path):
            raise InputError(f"{self.path} exists and is not a directory")
        for name in os.listdir(self._tmp):
            os.replace(os.path.join(self._tmp, name), os.path.join(self.path, name))
        os.rmdir(self._tmp)

    def _abort(self) -> None:
        if self.format == "npz":
            with contextlib.suppress(Exception):
                self._zip.close()
        elif self.format == "h5":
            with contextlib.suppress(Exception):
                self._h5.close()
        if os.path.isdir(self._tmp):
            shutil.rmtree(self._tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._finish()
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()


def read_embeddings(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Load an output of :class:`EmbeddingWriter` as ``{id: {"mean_layer4": array, ...}}`` (for tests/users)."""
    path = os.fspath(path)
    fmt = infer_format(path)
    out: dict[str, dict[str, np.ndarray]] = {}
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                rid, name = key.rsplit("/", 1)
                out.setdefault(rid, {})[name] = z[key]
    elif fmt == "h5":
        import h5py

        with h5py.File(path, "r") as h5:
            for group in h5.values():
                out[str(group.attrs["id"])] = {name: ds[()] for name, ds in group.items()}
    else:
        by_prefix: dict[str, dict[str, np.ndarray]] = {}
        for fname in os.listdir(path):
            if fname.endswith(".npy"):
                prefix, name = fname[:-4].rsplit(".", 1)
                by_prefix.setdefault(prefix, {})[name] = np.load(os.path.join(path, fname))
        with open(os.path.join(path, "ids.tsv")) as fh:
            next(fh)
            for line in fh:
                rid, _, prefix = line.rstrip("\n").split("\t")
                out[rid] = by_prefix.get(prefix, {})
    return out
