"""The web page in a real headless Chromium (Debian's ``chromium`` through Playwright's ``executable_path``).

Playwright never downloads a browser here: the test uses the system one and skips, saying why, only when no
chromium binary is installed (``.ci/run`` installs it with apt). What the page shows is checked against
ViennaRNA directly: one circle per nucleotide, one drawn pair per MFE base pair, a heatmap canvas of L x L
pixels whose upper-triangle darkness follows the pair probabilities.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from genesis_rna import pretrained  # noqa: E402
from genesis_rna.serve.app import BackgroundServer, create_app  # noqa: E402

SEQ = "GGGGCUAUAGCUCAGCUGGGAGAGCGCUUGCAUGGCAUGCAAGAGGUCAGCGGUUCGAUCCCGCUUAGCUCCACCA"  # tRNA-Phe, 76 nt
FASTA = f">tRNA-Phe yeast\n{SEQ[:40]}\n{SEQ[40:]}\n>hairpin\nGGGGAAAACCCC\n>other\nACGUACGUAGCUAGCUAGGAUCGA\n"


def chromium_path() -> str | None:
    """The system chromium: $CHROMIUM_PATH, else chromium / chromium-browser / google-chrome on PATH."""
    candidates = [os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"), shutil.which("chromium-browser"),
                  shutil.which("google-chrome")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def page_url():
    model = pretrained.random_model("small", seed=0, n_layers=2)[0]
    with BackgroundServer(create_app(model, model_name="random-browser-test")) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set CHROMIUM_PATH); Playwright's own "
                    "browser download is not used")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_paste_fasta_shows_structure_heatmap_attention_and_pca(browser, page_url, tmp_path):
    import RNA

    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_url + "/")
    page.wait_for_function("document.getElementById('attn-head').options.length > 0")  # /models answered
    page.fill("#fasta", FASTA)
    page.select_option("#fold-choice", "viennarna-mfe")
    page.click("#run")
    page.wait_for_function(f"document.querySelectorAll('#structure circle.nt').length === {len(SEQ)}")
    page.wait_for_function(f"document.getElementById('bpp').dataset.length === '{len(SEQ)}'")
    page.wait_for_function(f"document.getElementById('attention').dataset.length === '{len(SEQ)}'")
    page.wait_for_function("document.getElementById('pca').dataset.points === '3'")

    structure, _ = RNA.fold(SEQ)
    assert page.locator("#structure circle.nt").count() == len(SEQ)
    assert page.locator("#structure line.pair").count() == structure.count("(")
    letters = page.eval_on_selector_all("#structure circle.nt", "cs => cs.map(c => c.getAttribute('class'))")
    assert "".join(c.split("nt-")[1] for c in letters) == SEQ
    assert structure in page.inner_text("#dbn-text")

    # heatmap pixels: upper triangle darker where ViennaRNA's pair probability is higher
    size = page.eval_on_selector("#bpp", "c => [c.width, c.height]")
    assert size == [len(SEQ), len(SEQ)]
    red = np.array(page.eval_on_selector(
        "#bpp", "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"),
        dtype=float).reshape(len(SEQ), len(SEQ), 4)[..., 0]
    fc = RNA.fold_compound(SEQ)
    fc.pf()
    prob = np.array(fc.bpp())[1:, 1:]
    upper = np.triu_indices(len(SEQ), 1)
    np.testing.assert_allclose(255 - red[upper], np.round(np.clip(prob[upper], 0, 1) * 225), atol=1.01)

    # the server's own predictor (genesis_rna.structure.fold) draws a structure of the same length
    page.select_option("#fold-choice", "auto")
    page.wait_for_function("!document.getElementById('fold-method').textContent.startsWith('viennarna-mfe')")
    page.wait_for_function(f"document.querySelectorAll('#structure circle.nt').length === {len(SEQ)}")
    page.select_option("#fold-choice", "viennarna-mfe")
    page.wait_for_function("document.getElementById('fold-method').textContent === 'viennarna-mfe'")

    # switching the attention head redraws the map without errors
    page.select_option("#attn-head", "1")
    page.wait_for_timeout(300)
    page.wait_for_function(f"document.getElementById('attention').dataset.length === '{len(SEQ)}'")

    # choosing another record refolds it
    page.select_option("#record", "1")
    page.wait_for_function("document.querySelectorAll('#structure circle.nt').length === 12")
    page.select_option("#record", "0")
    page.wait_for_function(f"document.querySelectorAll('#structure circle.nt').length === {len(SEQ)}")

    # downloads: .dbn text matches the structure
    with page.expect_download() as info:
        page.click("#dl-dbn")
    dbn = tmp_path / "x.dbn"
    info.value.save_as(dbn)
    assert dbn.read_text().split("\n")[2] == structure

    shot = tmp_path / "genesis_rna_web.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("GENESIS_SCREENSHOT_DIR"):
        shutil.copy(shot, os.environ["GENESIS_SCREENSHOT_DIR"])
    assert errors == []
    assert not page.locator("#status.error").count(), page.inner_text("#status")
    page.close()


def test_bad_input_shows_the_servers_one_line_message(browser, page_url):
    page = browser.new_page()
    page.goto(page_url + "/")
    page.fill("#fasta", ">prot\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEV\n")
    page.click("#run")
    page.wait_for_selector("#status.error")
    text = page.inner_text("#status")
    assert text.startswith("422") and "protein" in text
    page.close()


def test_mutation_scan_from_the_page(browser, page_url):
    pytest.importorskip("genesis_rna.design.mutations")
    page = browser.new_page()
    page.goto(page_url + "/")
    page.fill("#fasta", ">hp\nGGGGAAAACCCC\n")
    page.click("#run")
    page.wait_for_function("document.querySelectorAll('#structure circle.nt').length === 12")
    page.click("#run-mutations")
    page.wait_for_function("document.querySelectorAll('#mutation-table tr').length > 1", timeout=60_000)
    assert "36 variants scored" in page.inner_text("#mutation-status")
    rows = page.locator("#mutation-table tr").count()
    assert rows == 31  # header + top 30
    assert page.eval_on_selector("#mutation-map", "c => [c.width, c.height, c.dataset.length]") == [12, 4, "12"]
    # the wild-type base of each column stays white: G at positions 1-4, A at 5-8, C at 9-12
    pixels = page.eval_on_selector(
        "#mutation-map", "c => Array.from(c.getContext('2d').getImageData(0, 0, 12, 4).data)")
    rgba = np.array(pixels).reshape(4, 12, 4)
    for pos, base in enumerate("GGGGAAAACCCC"):
        assert rgba["ACGU".index(base), pos, :3].tolist() == [255, 255, 255]
        assert (rgba[["ACGU".index(b) for b in "ACGU" if b != base], pos, :3] < 255).any()
    page.close()


def test_design_from_the_page(browser, page_url):
    import RNA

    pytest.importorskip("genesis_rna.design.inverse")
    page = browser.new_page()
    page.goto(page_url + "/")
    page.fill("#design-structure", "((((((....))))))")
    page.fill("#design-n", "1")
    page.click("#run-design")
    page.wait_for_function("document.querySelectorAll('#design-table tr').length === 2", timeout=60_000)
    header = page.eval_on_selector_all("#design-table th", "th => th.map(x => x.textContent)")
    cells = page.eval_on_selector_all("#design-table tr:nth-child(2) td", "td => td.map(x => x.textContent)")
    row = dict(zip(header, cells, strict=True))
    assert RNA.fold(row["sequence"])[0] == row["mfe_structure"]
    assert (row["solved"] == "true") == (row["mfe_structure"] == "((((((....))))))")
    page.close()
