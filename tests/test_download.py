"""Downloader tests against a local HTTP server (127.0.0.1, in a thread) and file:// URLs; no internet."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import pytest

from genesis_rna.download import (
    SOURCES,
    ChecksumError,
    DownloadError,
    download,
    download_source,
    parse_checksum_file,
)

PAYLOAD = os.urandom(300_000) + b"end of payload"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files of ``server.root`` with Range support (http.server's own handler has none).

    ``server.cut_after``: on the first ``server.cut_requests`` GETs, close the connection after that many
    body bytes, as a dropped connection does. ``server.ignore_range`` answers 200 to Range requests.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        path = Path(srv.root) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        srv.n_get += 1
        if srv.cut_after is not None and srv.n_get <= srv.cut_requests:
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def _http_server(tmp_path_factory):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(_http_server, tmp_path):
    """The module's server, reset: a fresh root with ``data.bin`` and no faults configured."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(PAYLOAD)
    srv = _http_server
    srv.root, srv.requests, srv.n_get = root, [], 0
    srv.cut_after, srv.cut_requests, srv.ignore_range = None, 0, False
    return srv


SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_plain_download_verifies_sha256(server, tmp_path):
    out = download(f"{server.url}/data.bin", tmp_path / "out.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "out.bin.part").exists()


def test_dropped_connection_resumes_with_range_in_the_same_call(server, tmp_path):
    server.cut_after, server.cut_requests = 100_000, 2
    out = download(f"{server.url}/data.bin", tmp_path / "out.bin", md5=MD5, progress=False, backoff=0)
    assert out.read_bytes() == PAYLOAD
    ranges = [r for _, r in server.requests]
    assert ranges == [None, "bytes=100000-", "bytes=200000-"]


def test_interrupted_download_keeps_part_and_a_later_call_resumes(server, tmp_path):
    server.cut_after, server.cut_requests = 123_456, 1
    dest = tmp_path / "out.bin"
    with pytest.raises(DownloadError, match="interrupted") as err:
        download(f"{server.url}/data.bin", dest, sha256=SHA, progress=False, retries=0)
    assert "\n" not in str(err.value)
    part = tmp_path / "out.bin.part"
    assert part.stat().st_size == 123_456 and not dest.exists()
    download(f"{server.url}/data.bin", dest, sha256=SHA, progress=False, retries=0)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1][1] == "bytes=123456-"


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(b"garbage that must not be kept")
    server.ignore_range = True
    out = download(f"{server.url}/data.bin", tmp_path / "out.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_after_416(server, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(PAYLOAD)
    out = download(f"{server.url}/data.bin", tmp_path / "out.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_download_and_raises(server, tmp_path):
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        download(f"{server.url}/data.bin", tmp_path / "out.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "out.bin").exists() and not (tmp_path / "out.bin.part").exists()


def test_checksum_from_checksum_file(server, tmp_path):
    (server.root / "md5.txt").write_text(f"{'1' * 32}  other.gz\n{MD5}  data.bin\n")
    out = download(f"{server.url}/data.bin", tmp_path, checksum_url=f"{server.url}/md5.txt", progress=False)
    assert out == tmp_path / "data.bin" and out.read_bytes() == PAYLOAD


def test_checksum_file_without_entry_is_an_error(server, tmp_path):
    (server.root / "md5.txt").write_text(f"{MD5}  something_else.bin\n")
    with pytest.raises(DownloadError, match="no checksum listed"):
        download(f"{server.url}/data.bin", tmp_path, checksum_url=f"{server.url}/md5.txt", progress=False)
    assert list(tmp_path.iterdir()) == [server.root]


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.gz", tmp_path / "x.gz", progress=False, retries=0)
    assert not (tmp_path / "x.gz").exists()


def test_existing_file_kept_when_checksum_matches(server, tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(PAYLOAD)
    download(f"{server.url}/data.bin", dest, sha256=SHA, progress=False)
    assert server.requests == []
    dest.write_bytes(b"not it")
    with pytest.raises(ChecksumError, match="exists"):
        download(f"{server.url}/data.bin", dest, sha256=SHA, progress=False)


def test_file_url_download_and_resume(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "dest.bin"
    (tmp_path / "dest.bin.part").write_bytes(PAYLOAD[:5000])
    out = download(src.as_uri(), dest, sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_file_url_missing_and_bad_scheme(tmp_path):
    with pytest.raises(DownloadError, match="no such file"):
        download((tmp_path / "nope.gz").as_uri(), tmp_path / "x", progress=False)
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        download("gopher://example.org/x", tmp_path / "x", progress=False)


def test_parse_checksum_formats():
    assert parse_checksum_file(f"{SHA} *dir/data.bin\n", "data.bin") == ("sha256", SHA)
    assert parse_checksum_file(f"MD5 (data.bin) = {MD5}\n", "data.bin") == ("md5", MD5)
    assert parse_checksum_file(f"{MD5}\n", "anything") == ("md5", MD5)
    with pytest.raises(DownloadError):
        parse_checksum_file("nothing here\n", "data.bin")


def test_named_sources_and_unknown_source(tmp_path):
    assert SOURCES["rfam-seed"].url == "https://ftp.ebi.ac.uk/pub/databases/Rfam/CURRENT/Rfam.seed.gz"
    assert SOURCES["rnacentral-active"].filename == "rnacentral_active.fasta.gz"
    with pytest.raises(DownloadError, match="unknown source"):
        download_source("nope", tmp_path)
