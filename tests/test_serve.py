"""REST API: a real uvicorn server on loopback with a small random model; every endpoint, bad input, limits,
overload, the agent tool wrappers, the CLI, and an OpenAPI-driven fuzz (schemathesis).

References are independent of the server code: ViennaRNA called directly (structure, energy, pair
probabilities), the model's own forward pass (embeddings, attention maps, MLM log-probabilities computed here by
hand for mutation scores), sklearn's PCA, and the CT/DBN readers of genesis_rna.io.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
torch = pytest.importorskip("torch")

from genesis_rna import pretrained  # noqa: E402
from genesis_rna.serve.app import BackgroundServer, Limits, Overloaded, WorkQueue, create_app  # noqa: E402
from genesis_rna.tokenization import CLS_ID, MASK_ID, NUCLEOTIDE_IDS, SEP_ID  # noqa: E402

SEQ = "GGGGCUAUAGCUCAGCUGGGAGAGCGCUUGCAUGGCAUGCAAGAGGUCAGCGGUUCGAUCCCGCUUAGCUCCACCA"  # tRNA-Phe
LIMITS = Limits(max_length=300, max_attention_length=120, max_records=8, max_variants=400, max_designs=5,
                design_time_limit_s=5.0, max_per_token_nt=2000, max_body_bytes=50_000)


@pytest.fixture(scope="module")
def model():
    return pretrained.random_model("small", seed=0, n_layers=2)[0]


@pytest.fixture(scope="module")
def server(model):
    app = create_app(model, model_name="random-test", limits=LIMITS, workers=1, queue=16)
    with BackgroundServer(app) as srv:
        srv.client = httpx.Client(base_url=srv.url, timeout=60)
        yield srv
        srv.client.close()


def ids_of(seq: str) -> torch.Tensor:
    return torch.tensor([[CLS_ID, *(NUCLEOTIDE_IDS[c] for c in seq), SEP_ID]])


def assert_healthy(server) -> None:
    r = server.client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


# --------------------------------------------------------------------------------------------- endpoints
def test_health_and_models_describe_the_loaded_model(server, model):
    assert server.host == "127.0.0.1"
    assert_healthy(server)
    info = server.client.get("/models").json()
    cfg = model.config
    assert info["loaded"]["n_layers"] == cfg.n_layers == 2
    assert info["loaded"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["limits"]["max_length"] == LIMITS.max_length


def test_openapi_lists_every_endpoint(server):
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in ("/health", "/models", "/embed", "/embed/npy", "/attention", "/fold", "/score-mutations", "/design"):
        assert path in paths


def test_fold_matches_viennarna_and_round_trips_through_ct_dbn(server, tmp_path):
    import RNA

    from genesis_rna.io import read_ct, read_dbn
    from genesis_rna.structure.pairs import dotbracket_to_partners

    r = server.client.post("/fold", json={"id": "tRNA", "sequence": SEQ.replace("U", "T").lower(),
                                          "method": "viennarna-mfe"})
    assert r.status_code == 200, r.text
    data = r.json()
    structure, mfe = RNA.fold(SEQ)
    assert data["sequence"] == SEQ and data["length"] == len(SEQ)
    assert data["structure"] == structure
    assert math.isclose(data["energy"], mfe, abs_tol=1e-4)
    assert data["partners"] == dotbracket_to_partners(structure).tolist()
    # pair probabilities vs a fresh ViennaRNA partition function
    fc = RNA.fold_compound(SEQ)
    fc.pf()
    ref = np.array(fc.bpp())[1:, 1:]
    got = np.zeros_like(ref)
    for i, j, p in data["bpp"]:
        assert i < j
        got[i, j] = p
    ref[ref < data["bpp_min_prob"]] = 0
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # layout: one point per nucleotide, a uniform backbone step, no two nucleotides drawn on top of each other
    xy = np.array(data["layout"])
    assert xy.shape == (len(SEQ), 2)
    steps = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    assert steps.max() / steps.min() < 1.01
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(SEQ)) * 1e9
    assert dist.min() > 0.9 * steps.min()
    # paired nucleotides are drawn at about one backbone step from each other (helices are ladders)
    i = np.array([k for k, j in enumerate(data["partners"]) if j > k])
    pair_dist = np.linalg.norm(xy[i] - xy[np.array(data["partners"])[i]], axis=1)
    assert pair_dist.max() < 2 * steps.mean()
    (tmp_path / "x.ct").write_text(data["ct"])
    (tmp_path / "x.dbn").write_text(data["dbn"])
    for rec in (read_ct(tmp_path / "x.ct")[0], read_dbn(tmp_path / "x.dbn")[0]):
        assert rec.id == "tRNA" and rec.sequence == SEQ and rec.partner.tolist() == data["partners"]


def test_fold_auto_uses_the_library_predictor_and_gives_a_valid_structure(server):
    import RNA

    from genesis_rna.structure.pairs import partners_to_dotbracket, validate_partners

    fold = pytest.importorskip("genesis_rna.structure.decode")
    data = server.client.post("/fold", json={"sequence": SEQ}).json()
    info = server.client.get("/models").json()["fold"]
    assert data["method"] != "viennarna-mfe" and info
    partner = validate_partners(data["partners"], len(SEQ))
    for i, j in enumerate(partner):
        if j > i:
            assert j - i > fold.MIN_HAIRPIN and SEQ[i] + SEQ[j] in fold.CANONICAL_PAIRS
    db = partners_to_dotbracket(partner)
    assert math.isclose(data["energy"], RNA.fold_compound(SEQ).eval_structure(db), abs_tol=1e-4)
    if data["method"].startswith("ViennaRNA"):  # no structure model installed: ViennaRNA's pair probabilities
        fc = RNA.fold_compound(SEQ)
        fc.pf()
        ref = np.array(fc.bpp())[1:, 1:]
        for i, j, p in data["bpp"]:
            assert abs(p - ref[i, j]) < 1e-3


def test_embed_matches_plain_forward_and_pca_matches_sklearn(server, model):
    from sklearn.decomposition import PCA

    records = [{"id": "a", "sequence": SEQ}, {"id": "b", "sequence": SEQ[:40]}, {"id": "c", "sequence": "ACGU" * 9},
               {"id": "d", "sequence": SEQ[20:70]}]
    r = server.client.post("/embed", json={"records": records, "layer": -1, "per_token": True})
    assert r.status_code == 200, r.text
    data = r.json()
    assert [x["id"] for x in data["records"]] == ["a", "b", "c", "d"]
    means = []
    for rec, out in zip(records, data["records"], strict=True):
        with torch.no_grad():
            ref = model(ids_of(rec["sequence"]), return_logits=False)["last_hidden_state"][0, 1:-1].numpy()
        np.testing.assert_allclose(np.array(out["per_token"]), ref, atol=1e-4)
        np.testing.assert_allclose(np.array(out["mean"]), ref.mean(0), atol=1e-4)
        means.append(ref.mean(0))
    pca = PCA(n_components=2).fit(np.stack(means))
    ref_coords = pca.transform(np.stack(means))
    got = np.array(data["pca"]["coords"])
    for k in range(2):  # components are defined up to sign
        assert min(np.abs(got[:, k] - ref_coords[:, k]).max(), np.abs(got[:, k] + ref_coords[:, k]).max()) < 1e-3
    np.testing.assert_allclose(data["pca"]["explained_variance_ratio"], pca.explained_variance_ratio_, atol=1e-5)


def test_embed_npy_download(server, model):
    import io

    records = [{"id": "a", "sequence": SEQ}, {"id": "b", "sequence": "GGGAAACCC"}]
    means = np.load(io.BytesIO(server.client.post("/embed/npy", json={"records": records}).content))
    assert means.shape == (2, model.config.d_model) and means.dtype == np.float32
    with torch.no_grad():
        ref = model(ids_of("GGGAAACCC"), return_logits=False)["last_hidden_state"][0, 1:-1].numpy()
    np.testing.assert_allclose(means[1], ref.mean(0), atol=1e-4)
    r = server.client.post("/embed/npy", json={"records": records[1:], "per_token": True})
    np.testing.assert_allclose(np.load(io.BytesIO(r.content)), ref, atol=1e-4)
    assert "embeddings.npy" in r.headers["content-disposition"]
    assert server.client.post("/embed/npy", json={"records": records, "per_token": True}).status_code == 422


def test_attention_maps_match_the_model(server, model):
    seq = SEQ[:50]
    with torch.no_grad():
        full = model(ids_of(seq), need_attentions=True, return_logits=False)["attentions"][0]
    # rows of the full map (with [CLS]/[SEP]) are distributions: checks the reference itself
    torch.testing.assert_close(full.sum(-1), torch.ones(full.shape[:-1]), atol=1e-4, rtol=0)
    for layer, head in ((1, 0), (2, 3), (-1, None)):
        r = server.client.post("/attention", json={"sequence": seq, "layer": layer, "head": head})
        assert r.status_code == 200, r.text
        data = r.json()
        ref = full[layer - 1 if layer > 0 else model.config.n_layers - 1, :, 1:-1, 1:-1]
        ref = ref.mean(0) if head is None else ref[head]
        assert data["length"] == len(seq) and data["n_heads"] == model.config.n_heads
        np.testing.assert_allclose(np.array(data["matrix"]), ref.numpy(), atol=2e-3)  # stored as float16
    for bad in ({"layer": 0}, {"layer": 3}, {"head": model.config.n_heads}):
        r = server.client.post("/attention", json={"sequence": seq, **bad})
        assert r.status_code == 422 and "out of range" in r.json()["detail"]
    r = server.client.post("/attention", json={"sequence": "A" * (LIMITS.max_attention_length + 1)})
    assert r.status_code == 413


def test_score_mutations_is_the_masked_marginal_computed_by_hand(server, model):
    pytest.importorskip("genesis_rna.design.mutations")
    seq = SEQ[:30]
    r = server.client.post("/score-mutations", json={"sequence": seq, "variants": ["G1A", "C5U:A7G"]})
    assert r.status_code == 200, r.text
    scores = {s["variant"]: s["score"] for s in r.json()["scores"]}

    def logp(pos: int) -> torch.Tensor:
        ids = ids_of(seq)
        ids[0, pos + 1] = MASK_ID
        with torch.no_grad():
            return torch.log_softmax(model(ids)["mlm_logits"][0, pos + 1].double(), -1)

    def delta(pos: int, wt: str, mut: str) -> float:
        lp = logp(pos)
        return float(lp[NUCLEOTIDE_IDS[mut]] - lp[NUCLEOTIDE_IDS[wt]])

    assert math.isclose(scores["G1A"], delta(0, "G", "A"), abs_tol=1e-4)
    assert math.isclose(scores["C5U:A7G"], delta(4, "C", "U") + delta(6, "A", "G"), abs_tol=1e-4)
    scan = server.client.post("/score-mutations", json={"sequence": seq[:12]}).json()["scores"]
    assert len(scan) == 3 * 12
    r = server.client.post("/score-mutations", json={"sequence": seq, "variants": ["C1A"]})
    assert r.status_code == 422 and "C1A" in r.json()["detail"]
    r = server.client.post("/score-mutations", json={"sequence": "A" * 200})  # 600 variants > 400
    assert r.status_code == 413


def test_design_answers_or_says_it_is_not_available(server):
    import RNA

    target = "((((((....))))))"
    r = server.client.post("/design", json={"structure": target, "n": 2, "seed": 1})
    if r.status_code == 501:
        assert "genesis_rna.design.inverse" in r.json()["detail"]
        return
    assert r.status_code == 200, r.text
    designs = r.json()["designs"]
    assert len(designs) == 2
    for d in designs:
        assert len(d["sequence"]) == len(target) and set(d["sequence"]) <= set("ACGU")
        mfe_structure = RNA.fold(d["sequence"])[0]
        assert d["mfe_structure"] == mfe_structure and d["solved"] == (mfe_structure == target)
    assert server.client.post("/design", json={"structure": "((((....)))"}).status_code == 422
    assert server.client.post("/design", json={"structure": target, "n": 6}).status_code == 413


# --------------------------------------------------------------------------------------------- bad input
BAD_BODIES = {
    "empty": b"",
    "malformed JSON": b'{"sequence": "ACGU",',
    "binary": bytes(range(256)) * 4,
    "protein": json.dumps({"sequence": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"}).encode(),
    "empty sequence": json.dumps({"sequence": ""}).encode(),
    "whitespace sequence": json.dumps({"sequence": "  \n "}).encode(),
    "invalid letter": json.dumps({"sequence": "ACGU#ACGU"}).encode(),
    "too long": json.dumps({"sequence": "A" * (LIMITS.max_length + 1)}).encode(),
    "body too big": json.dumps({"sequence": "A" * 60_000}).encode(),
    "wrong type": json.dumps({"sequence": 12345}).encode(),
    "a list": b"[1, 2, 3]",
    "unknown field": json.dumps({"sequence": "ACGU", "temperature": 37}).encode(),
    "bad id": json.dumps({"id": "two words", "sequence": "ACGU"}).encode(),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
@pytest.mark.parametrize("path", ["/fold", "/attention", "/score-mutations"])
def test_bad_input_is_a_one_line_4xx_and_the_server_stays_up(server, path, name):
    if path == "/score-mutations":
        pytest.importorskip("genesis_rna.design.mutations")
    r = server.client.post(path, content=BAD_BODIES[name], headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and len(detail) < 400
    if name in ("too long", "body too big"):
        assert r.status_code == 413
    if name == "protein":
        assert "protein" in detail
    assert_healthy(server)


def test_embed_limits_and_duplicates(server):
    rec = {"id": "a", "sequence": "ACGU"}
    many = [{"id": f"r{k}", "sequence": "ACGU"} for k in range(LIMITS.max_records + 1)]
    r = server.client.post("/embed", json={"records": many})
    assert r.status_code == 413 and str(LIMITS.max_records) in r.json()["detail"]
    r = server.client.post("/embed", json={"records": [rec, rec]})
    assert r.status_code == 422 and "duplicate" in r.json()["detail"]
    assert server.client.post("/embed", json={"records": []}).status_code == 422
    long = [{"id": f"r{k}", "sequence": "ACGU" * 75} for k in range(LIMITS.max_records)]  # 2400 nt
    r = server.client.post("/embed", json={"records": long, "per_token": True})
    assert r.status_code == 413 and "per_token" in r.json()["detail"]
    r = server.client.post("/embed", json={"records": [rec], "layer": 7})
    assert r.status_code == 422 and "layer" in r.json()["detail"]
    # a body over the limit sent in chunks (no Content-Length) is refused too
    chunks = iter([b'{"records": [{"id": "a", "sequence": "'] + [b"A" * 10_000] * 6 + [b'"}]}'])
    r = server.client.post("/embed", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert_healthy(server)


# --------------------------------------------------------------------------------------------- overload
def test_work_queue_refuses_beyond_capacity():
    import asyncio

    release = threading.Event()

    async def scenario():
        queue = WorkQueue(workers=1, queue=1)
        first = asyncio.ensure_future(queue.run(release.wait, 10))
        second = asyncio.ensure_future(queue.run(lambda: 2))
        await asyncio.sleep(0.05)
        assert queue.in_flight == 2
        with pytest.raises(Overloaded):
            await queue.run(lambda: 3)
        release.set()
        assert await first is True and await second == 2
        assert queue.in_flight == 0
        assert await queue.run(lambda: 4) == 4
        queue.shutdown()

    asyncio.run(scenario())


def test_overloaded_server_answers_503_and_recovers(model):
    app = create_app(model, model_name="tiny-queue", limits=LIMITS, workers=1, queue=0)
    release = threading.Event()
    service = app.state.service
    real_fold = service.fold
    service.fold = lambda req: (release.wait(30), real_fold(req))[1]
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        slow = threading.Thread(target=lambda: client.post("/fold", json={"sequence": "GGGAAACCC"}))
        slow.start()
        deadline = time.monotonic() + 10
        while client.get("/health").json()["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        r = client.post("/fold", json={"sequence": "GGGAAACCC"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["detail"]
        assert client.get("/health").status_code == 200  # the event loop is free while the worker is busy
        release.set()
        slow.join()
        assert client.post("/fold", json={"sequence": "GGGAAACCC"}).status_code == 200


# --------------------------------------------------------------------------------------------- web page, agents
def test_web_page_and_assets_are_served(server):
    page = server.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert server.client.get(asset).status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in server.client.get("/static/app.js").text


def test_agent_tools_follow_the_openapi_schema(server):
    from genesis_rna.serve.agent_tools import APITools

    tools = APITools(server.url)
    specs = {t["name"]: t for t in tools.tools()}
    assert {"fold", "embed", "attention", "score_mutations", "design", "health", "models"} <= set(specs)
    fold = specs["fold"]["parameters"]
    assert fold["type"] == "object" and "sequence" in fold["required"] and "$ref" not in json.dumps(fold)
    embed = specs["embed"]["parameters"]
    assert embed["properties"]["records"]["items"]["properties"]["sequence"]["type"] == "string"
    result = tools.call("fold", {"sequence": "GGGGAAAACCCC"})
    assert result["structure"] == __import__("RNA").fold("GGGGAAAACCCC")[0]
    bad = tools.call("fold", {"sequence": "MKTAYIAKQRQISFVKSHFSRQ"})
    assert bad["error"]["status"] == 422 and "protein" in bad["error"]["detail"]
    with pytest.raises(KeyError):
        tools.call("no_such_tool", {})


def test_cli_serve_starts_and_answers():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genesis_rna", "serve", "--random-init", "small", "--port", "0",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving random small"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" on ")[1].split("/ ")[0]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/health", timeout=30).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_cli_serve_bad_options_are_one_line_errors(capsys, tmp_path):
    from genesis_rna.cli import main

    for argv, words in ((["--max-length", "0"], "--max-length"), (["--queue", "-1"], "--queue"),
                        (["--model", str(tmp_path / "missing")], "missing")):
        assert main(["serve", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err


# --------------------------------------------------------------------------------------------- fuzzing
def fuzz_api(url: str, max_examples: int) -> list[str]:
    """Every operation of the served OpenAPI schema with schemathesis-generated bodies (valid and invalid);
    returns the requests that got a 5xx other than the documented 501/503."""
    import hypothesis
    import schemathesis

    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    failures: list[str] = []
    def checker(operation, mode):
        @hypothesis.settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call(base_url=url, timeout=60)
            if response.status_code >= 500 and response.status_code not in (501, 503):
                failures.append(f"{operation.method.upper()} {operation.path} -> {response.status_code}: "
                                f"{response.text[:200]} body={str(case.body)[:200]}")
        return check

    for result in schema.get_all_operations():
        operation = result.ok()
        modes = list(schemathesis.GenerationMode) if operation.method.upper() == "POST" else \
            [schemathesis.GenerationMode.POSITIVE]  # nothing invalid can be made of a GET without parameters
        for mode in modes:
            checker(operation, mode)()
    return failures


def test_schemathesis_fuzz_finds_no_server_errors(server):
    pytest.importorskip("schemathesis")
    failures = fuzz_api(server.url, max_examples=8)
    assert failures == [], failures
    assert_healthy(server)


@pytest.mark.integration
def test_schemathesis_fuzz_long(server):
    pytest.importorskip("schemathesis")
    failures = fuzz_api(server.url, max_examples=150)
    assert failures == [], failures
    assert_healthy(server)


def test_shipped_web_files_exist_in_the_package():
    web = Path(__import__("genesis_rna").__file__).parent / "serve" / "web"
    assert {p.name for p in web.iterdir()} >= {"index.html", "app.js", "style.css"}
