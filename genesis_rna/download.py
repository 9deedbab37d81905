"""Download public pretraining data (``genesis-rna download``): resumable, verified, atomic.

Large FTP/HTTP downloads (RNAcentral's active FASTA is several GB) get interrupted. This module uses only the
standard library (``urllib``) and:

* writes to ``DEST.part`` and resumes it with an HTTP ``Range: bytes=N-`` request (automatic retries with
  back-off inside one call, and across calls: a later run continues the ``.part`` file). A server that ignores
  the range (status 200) makes the download restart from zero rather than corrupt the file;
* verifies a SHA-256 or MD5 checksum, given directly or looked up in a checksum file (``md5sum``/``sha256sum``
  or BSD ``MD5 (name) = ...`` format) by the file's name;
* renames ``.part`` to the final name only after the checksum matches, so a file under its final name is
  always complete; a mismatching download is deleted, never kept under the final name;
* shows a byte progress bar on stderr (quiet when not a terminal or ``progress=False``);
* supports ``file://`` URLs (local mirrors, tests), with resume by seeking.

Nothing here runs unless the user asks (docs/architecture.md: nothing downloads at run time).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from . import __version__
from .errors import GenesisRNAError

__all__ = ["DownloadError", "ChecksumError", "Source", "SOURCES", "download", "download_source", "file_digest",
           "parse_checksum_file", "fetch_checksum"]

USER_AGENT = f"genesis-rna/{__version__} (+urllib)"
_HEX_ALGOS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_CHUNK = 1 << 20


class DownloadError(GenesisRNAError):
    """A download that failed: network, HTTP status, a bad URL, or an unusable checksum file."""


class ChecksumError(DownloadError):
    """A downloaded file whose checksum differs from the expected one (the file is deleted)."""


@dataclass(frozen=True)
class Source:
    """A public data set: where it is, and where its published checksums are (when there are any)."""

    name: str
    url: str
    description: str
    checksum_url: str | None = None

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlparse(self.url).path)


SOURCES: dict[str, Source] = {
    "rfam-seed": Source(
        "rfam-seed", "https://ftp.ebi.ac.uk/pub/databases/Rfam/CURRENT/Rfam.seed.gz",
        "Rfam seed alignments (Stockholm, all families; structure = SS_cons), CC0",
        # Rfam publishes md5sums of the release files next to them (an md5sum-format md5.txt).
        checksum_url="https://ftp.ebi.ac.uk/pub/databases/Rfam/CURRENT/md5.txt"),
    "rnacentral-active": Source(
        "rnacentral-active",
        "https://ftp.ebi.ac.uk/pub/databases/RNAcentral/current_release/sequences/rnacentral_active.fasta.gz",
        "RNAcentral active sequences (FASTA, all ncRNA, several GB), CC0"),
}


# -------------------------------------------------------------------------------------------------- checksums


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (constant memory for multi-GB files)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _algo_for(hexdigest: str, where: str) -> str:
    algo = _HEX_ALGOS.get(len(hexdigest))
    if algo is None or not re.fullmatch(r"[0-9a-fA-F]+", hexdigest):
        raise DownloadError(f"{where}: {hexdigest!r} is not an MD5/SHA-1/SHA-256/SHA-512 hex digest")
    return algo


def parse_checksum_file(text: str, filename: str, *, source: str = "checksum file") -> tuple[str, str]:
    """``(algorithm, hexdigest)`` for ``filename`` in a checksum listing.

    Accepts ``md5sum``/``sha256sum`` output (``HEX  name`` or ``HEX *name``), BSD style
    (``SHA256 (name) = HEX``) and a file holding a single digest. Paths in the listing match by base name.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for line in lines:
        bsd = re.fullmatch(r"(MD5|SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)", line)
        if bsd and os.path.basename(bsd.group(2)) == filename:
            return bsd.group(1).lower(), bsd.group(3).lower()
        gnu = re.fullmatch(r"([0-9a-fA-F]{32,128})\s+\*?(.+)", line)
        if gnu and os.path.basename(gnu.group(2).strip()) == filename:
            return _algo_for(gnu.group(1), source), gnu.group(1).lower()
    if len(lines) == 1 and re.fullmatch(r"[0-9a-fA-F]{32,128}", lines[0]):
        return _algo_for(lines[0], source), lines[0].lower()
    raise DownloadError(f"{source}: no checksum listed for {filename!r}")


def fetch_checksum(checksum_url: str, filename: str, *, timeout: float = 60.0) -> tuple[str, str]:
    """Download a (small) checksum file and return ``(algorithm, hexdigest)`` of ``filename`` in it."""
    try:
        with _open(checksum_url, 0, timeout) as resp:
            text = resp.read(1 << 24).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{checksum_url}: HTTP {exc.code} {exc.reason} (checksum file)") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise DownloadError(f"{checksum_url}: cannot fetch checksum file ({_reason(exc)})") from None
    return parse_checksum_file(text, filename, source=checksum_url)


def _expected(sha256: str | None, md5: str | None, checksum_url: str | None, filename: str, timeout: float
              ) -> tuple[str, str] | None:
    if sha256:
        return "sha256", _check_hex(sha256, 64, "sha256")
    if md5:
        return "md5", _check_hex(md5, 32, "md5")
    if checksum_url:
        return fetch_checksum(checksum_url, filename, timeout=timeout)
    return None


def _check_hex(value: str, length: int, name: str) -> str:
    value = value.strip().lower()
    if len(value) != length or not re.fullmatch(r"[0-9a-f]+", value):
        raise DownloadError(f"{name} must be {length} hex digits, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------- transfer


class _Retryable(Exception):
    """A transfer problem worth another attempt (the .part file keeps what arrived)."""


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__


def _local_path(url: str) -> Path | None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return None


class _LocalResponse:
    """``file://`` response with seeking, so local mirrors resume like HTTP ranges do."""

    def __init__(self, path: Path, offset: int) -> None:
        self.size = path.stat().st_size
        self._fh = open(path, "rb")  # closed in __exit__
        self._fh.seek(min(offset, self.size))
        self.status = 206 if offset else 200
        self.headers = {"Content-Length": str(self.size - min(offset, self.size)),
                        "Content-Range": f"bytes {offset}-{self.size - 1}/{self.size}" if offset else ""}

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def __enter__(self) -> _LocalResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def _open(url: str, offset: int, timeout: float):
    """Open ``url`` from byte ``offset`` (a Range request over HTTP, a seek for file://)."""
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{url}: no such file")
        return _LocalResponse(local, offset)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "ftp"):
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r} (use https://, http://, ftp:// or file://)")
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset and scheme != "ftp":
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _status(resp) -> int:
    return int(getattr(resp, "status", None) or getattr(resp, "code", None) or 200)


def _attempt(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One transfer into ``part`` (appending from its current size); raises _Retryable when cut short."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp_cm = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range starts at/after the end: the .part file is already complete
            return
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise _Retryable(_reason(exc)) from None
    with resp_cm as resp:
        offset, expected_total = _resume_point(resp, offset)
        mode = "ab" if offset else "wb"
        _stream(resp, part, mode, offset, expected_total, progress)


def _resume_point(resp, offset: int) -> tuple[int, int | None]:
    """Where the body starts and the full size; status 200 to a Range request means start again from 0."""
    length = resp.headers.get("Content-Length")
    length = int(length) if length and str(length).isdigit() else None
    if _status(resp) == 206:
        start, total = _content_range_start(resp.headers.get("Content-Range"))
        if start is not None and start != offset:
            raise _Retryable(f"server resumed at byte {start}, expected {offset}")
        return offset, total if total is not None else (offset + length if length is not None else None)
    return 0, length


def _stream(resp, part: Path, mode: str, offset: int, total: int | None, progress: bool) -> None:
    from tqdm.auto import tqdm

    received = offset
    with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                                       desc=part.name.removesuffix(".part"), file=sys.stderr,
                                       disable=None if progress else True, leave=False) as bar:
        try:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, HTTPException) as exc:  # reset, timeout, IncompleteRead: keep what arrived, resume
            raise _Retryable(f"connection lost after {received} bytes ({_reason(exc)})") from None
    if total is not None and received < total:
        raise _Retryable(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise _Retryable(f"received {received} bytes, more than the announced {total}; restarting")


def _transfer(url: str, part: Path, *, retries: int, backoff: float, timeout: float, progress: bool) -> None:
    """Run attempts until the transfer completes or ``retries`` further attempts have failed."""
    for attempt in range(retries + 1):
        try:
            _attempt(url, part, timeout, progress)
            return
        except _Retryable as exc:
            have = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                raise DownloadError(f"{url}: download interrupted ({exc}); {have} bytes kept in {part}, "
                                    "run the same command again to resume") from None
            print(f"{url}: {exc}; retrying from byte {have}", file=sys.stderr)
            time.sleep(backoff * (2 ** attempt))


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    checksum_url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 5,
    backoff: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` (a file path, or a directory to put the URL's file name in).

    Resumes ``dest.part`` if one is there, verifies the checksum (``sha256``, ``md5``, or the entry for the
    file's name in ``checksum_url``) and renames into place. An existing ``dest`` is kept when it matches the
    checksum (or when there is none to check) unless ``overwrite``. Raises :class:`DownloadError` /
    :class:`ChecksumError` with a one-line message.
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / (os.path.basename(urllib.parse.urlparse(url).path) or "download")
    expected = _expected(sha256, md5, checksum_url, dest.name, timeout)
    if dest.exists() and not overwrite:
        _check_existing(dest, expected)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _transfer(url, part, retries=max(0, retries), backoff=backoff, timeout=timeout, progress=progress)
    if expected is not None:
        _verify(part, expected, url)
    os.replace(part, dest)
    return dest


def _check_existing(dest: Path, expected: tuple[str, str] | None) -> None:
    if expected is None:
        return
    actual = file_digest(dest, expected[0])
    if actual != expected[1]:
        raise ChecksumError(f"{dest}: exists but its {expected[0]} is {actual}, expected {expected[1]}; "
                            "delete it or pass overwrite=True / --overwrite")


def _verify(part: Path, expected: tuple[str, str], url: str) -> None:
    algo, want = expected
    actual = file_digest(part, algo)
    if actual != want:
        part.unlink()
        raise ChecksumError(f"{url}: {algo} checksum mismatch (got {actual}, expected {want}); the download was "
                            "deleted, run again to fetch it afresh")


def download_source(name: str, output_dir: str | os.PathLike = ".", *, verify: bool = True,
                    **kwargs) -> Path:
    """Download a named public source (see :data:`SOURCES`) into ``output_dir``.

    With ``verify`` the source's published checksum file is used when it has one; a source without one is
    downloaded unverified (its size is still checked against Content-Length).
    """
    if name not in SOURCES:
        raise DownloadError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    src = SOURCES[name]
    checksum_url = src.checksum_url if verify and not (kwargs.get("sha256") or kwargs.get("md5")) else None
    return download(src.url, Path(output_dir) / src.filename, checksum_url=checksum_url, **kwargs)



if __name__ == "__main__":  # python -m genesis_rna.download: the options live with the other commands' in cli/
    from .cli.download import download_main

    sys.exit(download_main())

