"""``python -m genesis_rna.download``: fetch a named public source or a URL, resumable and checksum-verified."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..download import SOURCES, DownloadError, download, download_source
from ..errors import GenesisRNAError

DOWNLOAD_DESCRIPTION = "Download public pretraining data (``genesis-rna download``): resumable, verified, atomic."


def add_download_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``genesis-rna download`` options to ``parser`` (the CLI owns the subparser)."""
    parser.add_argument("source", help=f"a source name ({', '.join(SOURCES)}) or a URL (https://, file://)")
    parser.add_argument("-o", "--output", default=".", help="output directory or file name (default: .)")
    parser.add_argument("--sha256", help="expected SHA-256 of the file")
    parser.add_argument("--md5", help="expected MD5 of the file")
    parser.add_argument("--checksum-url", help="URL of an md5sum/sha256sum listing that names the file")
    parser.add_argument("--no-verify", action="store_true", help="do not fetch the source's checksum file")
    parser.add_argument("--retries", type=int, default=5, help="resume attempts after a dropped connection")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    parser.add_argument("--overwrite", action="store_true", help="download again even if the file exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_download_args(args: argparse.Namespace) -> Path:
    """Run :func:`download_source` or :func:`download` from parsed arguments; returns the file written."""
    common = {"sha256": args.sha256, "md5": args.md5, "progress": not args.quiet, "timeout": args.timeout,
              "retries": args.retries, "overwrite": args.overwrite}
    if args.source in SOURCES:
        if args.checksum_url:
            common["checksum_url"] = args.checksum_url
            return download(SOURCES[args.source].url, _dest(args.output, SOURCES[args.source].filename), **common)
        return download_source(args.source, args.output, verify=not args.no_verify, **common)
    if "://" not in args.source:
        raise DownloadError(f"{args.source!r} is neither a known source ({', '.join(SOURCES)}) nor a URL")
    return download(args.source, args.output, checksum_url=args.checksum_url, **common)


def _dest(output: str, filename: str) -> Path:
    out = Path(output)
    return out / filename if out.is_dir() or output.endswith(os.sep) else out


def download_main(argv: Sequence[str] | None = None) -> int:
    """``python -m genesis_rna.download``: the same options as ``genesis-rna download``."""
    parser = add_download_arguments(argparse.ArgumentParser(prog="python -m genesis_rna.download",
                                                   description=DOWNLOAD_DESCRIPTION))
    args = parser.parse_args(argv)
    try:
        path = run_download_args(args)
    except GenesisRNAError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{path}: {path.stat().st_size:,} bytes")
    return 0
