"""``genesis-rna serve``: a REST API and a web page over one loaded model.

Why a server: most biologists meet RNA language models through a web form (RNA-FM's server), and agents need a
typed API. One process loads the model once at startup and answers JSON requests; the page at ``/`` is plain
HTML/JS/CSS shipped inside the package (no build step, no network).

Robustness rules, so a bad request can never take the server down:

* every sequence goes through :func:`genesis_rna.tokenization.normalise` (protein, binary, empty -> 422);
* limits on sequence length, records per request and body size answer 413 with a one-line message;
* model and ViennaRNA work runs in a bounded thread pool, off the event loop; when the pool and its queue are
  full the request is answered 503 at once instead of piling up;
* every error body is ``{"detail": "<one line>"}``.

Needs the ``[serve]`` extra (FastAPI + uvicorn). Build the app with :func:`create_app` (tests pass a small random
model); :func:`serve` runs it with uvicorn.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenesisRNAError, InputError

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise GenesisRNAError(
        "genesis-rna serve needs the [serve] extra: pip install 'genesis-rna[serve]'"
    ) from exc

from .payloads import (
    _jsonable,
    fold_vienna,
    load_fold_predictor,
    pca_2d,
    predict_structure,
    structure_energy,
    structure_payload,
)
from .schemas import AttentionRequest, DesignRequest, EmbedRequest, FoldRequest, MutationRequest, SequenceIn
from .work import DEFAULT_HOST, DEFAULT_PORT, Limits, Overloaded, WorkQueue


# ------------------------------------------------------------------------------------------------ the service
class Service:
    """The loaded model and the computations behind each endpoint (synchronous; run in the work queue)."""

    def __init__(self, model, model_name: str, limits: Limits, device: str = "cpu", dtype: str = "fp32",
                 attention_cache: int = 8, fold_model: str | None = None) -> None:
        from ..model.device import resolve_device, resolve_dtype

        self.device = resolve_device(device)
        self.dtype_name = dtype
        self.cdtype = resolve_dtype(dtype, self.device)
        self.model = model.eval().to(self.device)
        self.model_name = model_name
        self.limits = limits
        self._attn: OrderedDict[str, np.ndarray] = OrderedDict()
        self._attn_size = attention_cache
        self._attn_lock = threading.Lock()
        self.fold_predictor, self.fold_note = load_fold_predictor(fold_model)

    # -- input checks
    def check_sequence(self, rec: SequenceIn, limit: int | None = None, what: str = "--max-length") -> str:
        from ..vocab import normalise

        seq = normalise(rec.sequence, record=rec.id)
        limit = limit or self.limits.max_length
        if len(seq) > limit:
            raise TooLarge(f"record '{rec.id}': {len(seq)} nt is longer than this server accepts ({limit} nt, "
                           f"{what})")
        return seq

    # -- embeddings
    def embed(self, req: EmbedRequest) -> dict[str, Any]:
        from ..model.embed import embed_sequences, normalise_layers

        if len(req.records) > self.limits.max_records:
            raise TooLarge(f"{len(req.records)} records; this server accepts at most {self.limits.max_records} "
                           "per request")
        ids = [r.id for r in req.records]
        dup = next((i for i in ids if ids.count(i) > 1), None)
        if dup is not None:
            raise InputError("duplicate record id (ids must be unique)", record=dup)
        seqs = [self.check_sequence(r) for r in req.records]
        total = sum(map(len, seqs))
        if req.per_token and total > self.limits.max_per_token_nt:
            raise TooLarge(f"per_token vectors for {total} nt; this server returns at most "
                           f"{self.limits.max_per_token_nt} nt of them per request (ask for means, or split)")
        layer = normalise_layers([req.layer], self.model.config.n_layers)[0]
        include = ("mean", "per_tok") if req.per_token else ("mean",)
        results = {res.id: res for res in embed_sequences(
            self.model, list(zip(ids, seqs, strict=True)), repr_layers=[layer], include=include,
            device=self.device, dtype=self.dtype_name)}
        out = {"model": self.model_name, "layer": layer, "dim": int(self.model.config.d_model), "records": []}
        for rid in ids:
            res = results[rid]
            item = {"id": rid, "length": res.length, "mean": res.mean[layer].tolist()}
            if req.per_token:
                item["per_token"] = res.per_tok[layer].tolist()
            out["records"].append(item)
        if req.pca and len(ids) >= 2:
            out["pca"] = pca_2d(np.stack([results[i].mean[layer] for i in ids]))
        return out

    def embed_npy(self, req: EmbedRequest) -> bytes:
        """``[N, d]`` mean embeddings in request order, or ``[L, d]`` per nucleotide for one record."""
        if req.per_token and len(req.records) != 1:
            raise InputError("per_token .npy download takes exactly one record (an [L, d] array)")
        data = self.embed(req.model_copy(update={"pca": False}))
        if req.per_token:
            array = np.asarray(data["records"][0]["per_token"], dtype=np.float32)
        else:
            array = np.asarray([r["mean"] for r in data["records"]], dtype=np.float32)
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()

    # -- attention
    def attention(self, req: AttentionRequest) -> dict[str, Any]:
        cfg = self.model.config
        limit = min(self.limits.max_attention_length, cfg.max_len - 2)
        seq = self.check_sequence(req, limit, "attention maps are limited to one model window")
        if not -cfg.n_layers <= req.layer <= cfg.n_layers or req.layer == 0:
            raise InputError(f"layer {req.layer} out of range: attention layers are 1..{cfg.n_layers} "
                             f"(or -1..-{cfg.n_layers})")
        if req.head is not None and req.head >= cfg.n_heads:
            raise InputError(f"head {req.head} out of range: this model has heads 0..{cfg.n_heads - 1}")
        maps = self._attention_maps(seq)
        layer = req.layer if req.layer > 0 else cfg.n_layers + 1 + req.layer
        per_layer = maps[layer - 1].astype(np.float32)
        matrix = per_layer.mean(axis=0) if req.head is None else per_layer[req.head]
        return {"id": req.id, "sequence": seq, "length": len(seq), "n_layers": cfg.n_layers,
                "n_heads": cfg.n_heads, "layer": layer, "head": req.head,
                "matrix": np.round(matrix, 5).tolist()}

    def _attention_maps(self, seq: str) -> np.ndarray:
        """``[n_layers, n_heads, L, L]`` over nucleotides ([CLS]/[SEP] rows and columns dropped); a small LRU
        cache so switching layer/head in the page does not rerun the model."""
        import torch

        from ..model.device import autocast_context
        from ..vocab import CLS_ID, NUCLEOTIDE_IDS, SEP_ID

        with self._attn_lock:
            if seq in self._attn:
                self._attn.move_to_end(seq)
                return self._attn[seq]
        ids = torch.tensor([[CLS_ID, *(NUCLEOTIDE_IDS[c] for c in seq), SEP_ID]], device=self.device)
        with torch.inference_mode(), autocast_context(self.device, self.cdtype):
            out = self.model(ids, need_attentions=True, return_logits=False)
        maps = out["attentions"][0, :, :, 1:-1, 1:-1].float().cpu().numpy().astype(np.float16)
        with self._attn_lock:
            self._attn[seq] = maps
            while len(self._attn) > self._attn_size:
                self._attn.popitem(last=False)
        return maps

    # -- structure
    def fold(self, req: FoldRequest) -> dict[str, Any]:
        seq = self.check_sequence(req)
        if req.method == "viennarna-mfe" or self.fold_predictor is None:
            partner, bpp, energy = fold_vienna(seq)
            method = "viennarna-mfe"
        else:
            partner, bpp = predict_structure(self.fold_predictor, req.id, seq)
            energy = structure_energy(seq, partner)
            method = self.fold_predictor.name
        return structure_payload(req.id, seq, partner, bpp, energy, method)

    # -- function tasks
    def score_mutations(self, req: MutationRequest) -> dict[str, Any]:
        seq = self.check_sequence(req)
        if req.variants is not None and len(req.variants) > self.limits.max_variants:
            raise TooLarge(f"{len(req.variants)} variants; this server accepts at most {self.limits.max_variants}")
        if req.variants is None and 3 * len(seq) > self.limits.max_variants:
            raise TooLarge(f"a saturation scan of {len(seq)} nt is {3 * len(seq)} variants; this server accepts "
                           f"at most {self.limits.max_variants}")
        from ..design.mutations import score_variants
        from ..design.variants import format_variant, parse_variant, saturation_variants

        if req.variants is None:
            variants = [(format_variant(v), v) for v in saturation_variants(seq)]
        else:
            variants = [(spec.strip(), parse_variant(spec, seq)) for spec in req.variants]
        scores = score_variants(self.model, seq, variants, device=self.device, dtype=self.dtype_name)
        return {"id": req.id, "model": self.model_name, "method": "masked-marginal", "scores": _jsonable(scores)}

    def design(self, req: DesignRequest) -> dict[str, Any]:
        structure = "".join(req.structure.split())
        if len(structure) > self.limits.max_length:
            raise TooLarge(f"target structure of {len(structure)} nt is longer than this server accepts "
                           f"({self.limits.max_length} nt)")
        if req.n > self.limits.max_designs:
            raise TooLarge(f"n={req.n}; this server designs at most {self.limits.max_designs} sequences per request")
        from ..design import inverse as mod

        mod.parse_target(structure)  # a malformed target is a 422 before any work
        designs = mod.design(structure, n=req.n, model=self.model, seed=req.seed, device=self.device,
                             dtype=self.dtype_name, time_limit=self.limits.design_time_limit_s)
        return {"structure": structure, "model": self.model_name, "designs": _jsonable(designs)}


class TooLarge(InputError):
    """A request over one of the :class:`Limits` (answered 413)."""


# ------------------------------------------------------------------------------------------------ the app
WEB_DIR = Path(str(resources.files("genesis_rna.serve") / "web"))


def _one_line_validation(err: RequestValidationError) -> str:
    errors = err.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg', ''))}".strip()
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return " ".join(f"{loc}: {first.get('msg', 'invalid value')}{more}".split())


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413, whether or not Content-Length is sent.

    The body (at most ``max_bytes``) is read here and replayed to the app: an exception raised while the app
    reads it would be turned into a generic 400 by FastAPI's body parser."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = JSONResponse({"detail": f"request body over {self.max_bytes} bytes (--max-body-bytes)"},
                                 status_code=413)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # client went away
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
            if size > self.max_bytes:
                return await too_large(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(model=None, *, model_name: str | None = None, limits: Limits | None = None, workers: int = 1,
               queue: int = 32, device: str = "cpu", dtype: str = "fp32", fold_model: str | None = None) -> FastAPI:
    """The FastAPI app. ``model`` defaults to the shipped model, loaded here, once; pass any
    :class:`~genesis_rna.model.encoder.GenesisRNAModel` (tests use a small random one)."""
    from .. import __version__, pretrained

    if model is None:
        model_name = model_name or pretrained.DEFAULT_MODEL
        model = pretrained.load(model_name)[0]
    limits = limits or Limits()
    service = Service(model, model_name or "custom", limits, device=device, dtype=dtype, fold_model=fold_model)
    work = WorkQueue(workers, queue)
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        work.shutdown()

    app = FastAPI(title="genesis-rna", version=__version__, lifespan=lifespan,
                  description="RNA language model: embeddings, attention maps, folding, mutation scores, design.")
    app.state.service = service
    app.state.work = work
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    _install_error_handlers(app)
    _install_routes(app, service, work)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    def body(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(detail).split())}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError):
        return body(422, _one_line_validation(err))

    @app.exception_handler(TooLarge)
    async def _too_large(_: Request, err: TooLarge):
        return body(413, str(err))

    @app.exception_handler(GenesisRNAError)
    async def _user_error(_: Request, err: GenesisRNAError):
        return body(422, str(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException):
        return JSONResponse({"detail": " ".join(str(err.detail).split())}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, __: Overloaded):
        return JSONResponse({"detail": "server busy: work queue full, retry shortly"}, status_code=503,
                            headers={"Retry-After": "1"})


_ERRORS = {413: {"description": "over a server limit"}, 422: {"description": "invalid input (one-line detail)"},
           503: {"description": "work queue full"}}


def _install_routes(app: FastAPI, service: Service, work: WorkQueue) -> None:
    @app.get("/health", operation_id="health", summary="Liveness and load")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "in_flight": work.in_flight,
                "capacity": work.capacity}

    @app.get("/models", operation_id="models", summary="The loaded model, shipped models and request limits")
    async def models() -> dict[str, Any]:
        from .. import pretrained

        cfg = service.model.config
        return {"loaded": {"name": service.model_name, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
                           "d_model": cfg.d_model, "max_len": cfg.max_len,
                           "parameters": int(service.model.num_parameters())},
                "available": pretrained.available_models(), "limits": asdict(service.limits),
                "fold": service.fold_note,
                "device": str(service.device)}

    @app.post("/embed", operation_id="embed", responses=_ERRORS,
              summary="Mean (and optionally per-nucleotide) embeddings of RNA sequences, with a 2-D PCA")
    async def embed(req: EmbedRequest) -> dict[str, Any]:
        return await work.run(service.embed, req)

    @app.post("/embed/npy", operation_id="embed_npy", responses=_ERRORS, response_class=Response,
              summary="Embeddings as a NumPy .npy download: [N, d] means, or [L, d] per nucleotide for one record")
    async def embed_npy(req: EmbedRequest) -> Response:
        data = await work.run(service.embed_npy, req)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="embeddings.npy"'})

    @app.post("/attention", operation_id="attention", responses=_ERRORS,
              summary="Attention map (L x L over nucleotides) of one layer and head, or the mean over heads")
    async def attention(req: AttentionRequest) -> dict[str, Any]:
        return await work.run(service.attention, req)

    @app.post("/fold", operation_id="fold", responses=_ERRORS,
              summary="Secondary structure (dot-bracket, partners, free energy), pair probabilities, 2-D layout, CT and "
                      "DBN text")
    async def fold(req: FoldRequest) -> dict[str, Any]:
        return await work.run(service.fold, req)

    @app.post("/score-mutations", operation_id="score_mutations", responses=_ERRORS,
              summary="Zero-shot mutation effect scores for variants of one sequence (null = saturation scan)")
    async def score_mutations(req: MutationRequest) -> dict[str, Any]:
        return await work.run(service.score_mutations, req)

    @app.post("/design", operation_id="design", responses=_ERRORS,
              summary="Sequences designed to fold into a target dot-bracket structure")
    async def design(req: DesignRequest) -> dict[str, Any]:
        return await work.run(service.design, req)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")


def serve(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_level: str = "info",
          announce: Callable[[str], None] | None = None) -> None:
    """Run ``app`` with uvicorn until interrupted; ``announce(url)`` is called once the port is bound (so
    ``port=0`` reports the port actually chosen)."""
    import uvicorn

    sock = _bind(host, port)
    try:
        if announce is not None:
            announce(f"http://{host}:{sock.getsockname()[1]}")
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5)).run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int):
    """A listening-ready TCP socket; a port in use or an unknown host is a one-line error, not a traceback."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread on a loopback port (``port=0``: a free one), for tests,
    benchmarks and notebooks. Use as a context manager; ``url`` is ``http://host:port``."""

    def __init__(self, app: FastAPI, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self._socket = _bind(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
