"""``genesis-rna serve``."""

from __future__ import annotations

import argparse

from ..errors import GenesisRNAError
from ._common import add_model_args, load_model

# ------------------------------------------------------------------------------------------------ serve
SERVE_EXAMPLES = """examples:
  genesis-rna serve                                  # shipped model, http://127.0.0.1:8000/
  genesis-rna serve --model runs/quickstart/final --port 8080 --workers 2
  genesis-rna serve --random-init small --max-length 500   # smoke test without trained weights

The web page is at /, the OpenAPI schema at /openapi.json and interactive API docs at /docs. The server
binds to 127.0.0.1 unless --host says otherwise; it has no authentication, so expose it only behind a proxy.
"""


def add_serve(sub) -> None:
    # the defaults live in genesis_rna.serve.work.Limits (FastAPI-free); the help texts repeat them
    p = sub.add_parser("serve", help="REST API and web page over one loaded model (needs the [serve] extra)",
                       epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--workers", type=int, default=1, help="threads running model/folding work (default 1)")
    p.add_argument("--queue", type=int, default=32,
                   help="requests that may wait for a worker; beyond workers+queue the answer is 503 (default 32)")
    p.add_argument("--max-length", type=int, default=None, help="nucleotides per sequence (default 1000)")
    p.add_argument("--max-attention-length", type=int, default=None, help="nucleotides for /attention (default 400)")
    p.add_argument("--max-records", type=int, default=None, help="records per /embed request (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=None, help="request body size limit (default 1000000)")
    p.add_argument("--fold-model", default=None,
                   help="structure model for /fold (default: the shipped one; without it, ViennaRNA pair "
                        "probabilities with MEA decoding; 'vienna' forces that)")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..serve.app import Limits, create_app, serve

    given = {k: getattr(args, k) for k in ("max_length", "max_attention_length", "max_records", "max_body_bytes")
             if getattr(args, k) is not None}
    for name, value in {**given, "workers": args.workers}.items():
        if value < 1:
            raise GenesisRNAError(f"--{name.replace('_', '-')} must be at least 1")
    if args.queue < 0 or not 0 <= args.port <= 65535:
        raise GenesisRNAError("--queue must be >= 0 and --port in 0..65535")
    limits = replace(Limits(), **given)
    model, name = load_model(args)
    app = create_app(model, model_name=name, limits=limits, workers=args.workers, queue=args.queue,
                     device=args.device, dtype=args.dtype, fold_model=args.fold_model)
    serve(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
          announce=lambda url: print(f"serving {name} on {url}/ (API docs at {url}/docs; Ctrl-C to stop)", flush=True))
    return 0
