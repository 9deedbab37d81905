"""Tests of ``genesis-rna embed`` run in-process through ``genesis_rna.cli.main``.

Independent references: the records and lengths of the input come from Biopython; every output format is read
back here with numpy/h5py directly (not with the package's own reader); per-nucleotide rows are compared with a
plain forward pass of the same randomly initialised model on ``[CLS] sequence [SEP]`` built from docs/architecture.md's
fixed token ids, and long sequences with forward passes on windows whose bounds were worked out by hand.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from Bio import SeqIO

from genesis_rna.cli import main
from genesis_rna.pretrained import random_model

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "well_known_rnas.fa"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# docs/architecture.md: [CLS]=2, [SEP]=3, A=4, C=5, G=6, U=7, N=8; the small preset has 4 layers of width 256.
TOKEN_IDS = {"A": 4, "C": 5, "G": 6, "U": 7, "N": 8}
CLS, SEP = 2, 3
SMALL_LAYERS, SMALL_WIDTH = 4, 256


def biopython_records(path: Path) -> dict[str, str]:
    """id -> sequence (upper case, T -> U) read by Biopython, independent of genesis_rna.io."""
    return {r.id: str(r.seq).upper().replace("T", "U") for r in SeqIO.parse(path, "fasta")}


def load_output(path: Path, fmt: str) -> dict[str, dict[str, np.ndarray]]:
    """Read an embed output with numpy/h5py directly, following the layout documented in the CLI help."""
    out: dict[str, dict[str, np.ndarray]] = {}
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                rid, name = key.rsplit("/", 1)
                out.setdefault(rid, {})[name] = z[key]
    elif fmt == "h5":
        with h5py.File(path, "r") as h5:
            for group in h5.values():
                out[str(group.attrs["id"])] = {name: ds[()] for name, ds in group.items()}
                assert int(group.attrs["length"]) == out[str(group.attrs["id"])]["per_tok_layer4"].shape[0]
    else:
        lines = (path / "ids.tsv").read_text().splitlines()
        assert lines[0] == "id\tlength\tprefix"
        for line in lines[1:]:
            rid, length, prefix = line.split("\t")
            arrays = {f[len(prefix) + 1:-4]: np.load(path / f) for f in os.listdir(path)
                      if f.startswith(prefix + ".") and f.endswith(".npy")}
            assert arrays["per_tok_layer4"].shape[0] == int(length)
            out[rid] = arrays
    return out


def direct_per_tok(model, seq: str, layers: list[int]) -> dict[int, np.ndarray]:
    """Representations of ``[CLS] seq [SEP]`` from one plain forward pass, specials dropped."""
    ids = torch.tensor([[CLS, *(TOKEN_IDS[c] for c in seq), SEP]])
    with torch.no_grad():
        out = model(ids, repr_layers=layers, return_logits=False)
    return {layer: out["representations"][layer][0, 1:-1].float().numpy() for layer in layers}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def small_model():
    model, _ = random_model("small", seed=0)
    return model.eval()


# ------------------------------------------------------------------------------------------------------------
# successful runs: shapes, means, values, all three formats
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target, fmt", [("emb.npz", "npz"), ("emb.h5", "h5"), ("emb_dir", "npy")])
def test_embed_writes_one_row_per_nucleotide(tmp_path, capsys, small_model, target, fmt):
    output = tmp_path / target
    rc = main(["embed", str(EXAMPLES), "--random-init", "small", "--output", str(output), "--include", "mean",
               "per_tok", "--repr-layers", "0", "-1", "--dtype", "fp32", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    assert out.count("\n") == 1 and "embedded 4 records" in out and f"({fmt})" in out

    expected = biopython_records(EXAMPLES)
    assert {rid: len(s) for rid, s in expected.items()} == {
        "tRNA-Phe_S.cerevisiae": 76, "5S_rRNA_E.coli": 120, "HIV-1_TAR": 57, "let-7a_H.sapiens": 22}  # headers
    got = load_output(output, fmt)
    assert set(got) == set(expected)
    for rid, seq in expected.items():
        arrays = got[rid]
        assert set(arrays) == {"mean_layer0", "mean_layer4", "per_tok_layer0", "per_tok_layer4"}
        for layer in (0, SMALL_LAYERS):
            per_tok = arrays[f"per_tok_layer{layer}"]
            assert per_tok.shape == (len(seq), SMALL_WIDTH) and per_tok.dtype == np.float32
            assert arrays[f"mean_layer{layer}"].shape == (SMALL_WIDTH,)
            np.testing.assert_allclose(arrays[f"mean_layer{layer}"], per_tok.astype(np.float64).mean(axis=0),
                                       rtol=1e-5, atol=1e-6)
        if fmt == "npz":  # values: the same as one plain forward pass per sequence (batching/padding invisible)
            reference = direct_per_tok(small_model, seq, [0, SMALL_LAYERS])
            for layer, rows in reference.items():
                np.testing.assert_allclose(arrays[f"per_tok_layer{layer}"], rows, rtol=1e-4, atol=1e-4)
    # nothing else next to the output (no temporary files), and the usual permissions (not tempfile's 0o600)
    assert [p for p in os.listdir(tmp_path) if p != target] == []
    (tmp_path / "plain").write_text("x")
    want = (tmp_path / "plain").stat().st_mode & 0o777
    if fmt == "npy":
        (tmp_path / "plain_dir").mkdir()
        assert output.stat().st_mode & 0o777 == (tmp_path / "plain_dir").stat().st_mode & 0o777
        assert {(output / f).stat().st_mode & 0o777 for f in os.listdir(output)} == {want}
    else:
        assert output.stat().st_mode & 0o777 == want


def test_embed_default_is_mean_of_last_layer(tmp_path, capsys):
    output = tmp_path / "m.npz"
    assert main(["embed", str(EXAMPLES), "--random-init", "small", "-o", str(output), "--quiet"]) == 0
    with np.load(output) as z:
        assert sorted(z.files) == sorted(f"{rid}/mean_layer4" for rid in biopython_records(EXAMPLES))
        assert all(z[k].shape == (SMALL_WIDTH,) for k in z.files)


def test_embed_gaps_warn_in_one_line(tmp_path, capsys):
    fasta = tmp_path / "aln.fa"
    fasta.write_text(">a\nAC-GU\n>b\nGG..CC\n")
    output = tmp_path / "out" / "aln.npz"
    assert main(["embed", str(fasta), "--random-init", "small", "-o", str(output), "--include", "per_tok"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"genesis-rna: warning: {fasta}: removed 3 alignment gap characters (- . ~) "
                                "from 2 record(s)"]
    with np.load(output) as z:
        assert z["a/per_tok_layer4"].shape == (4, SMALL_WIDTH) and z["b/per_tok_layer4"].shape == (4, SMALL_WIDTH)


@pytest.mark.parametrize("target, fmt", [("odd.npz", "npz"), ("odd.h5", "h5"), ("odd_dir", "npy")])
def test_embed_odd_ids_survive_every_format(tmp_path, capsys, target, fmt):
    """Ids that are awkward as HDF5 group or file names ('.' is HDF5's root group) come back unchanged."""
    ids = {".": "ACGU", "..": "ACG", "a/b": "ACGUU", "%41": "AC", "A": "GG", "x.npy": "GGA"}
    fasta = tmp_path / "odd.fa"
    fasta.write_text("".join(f">{rid}\n{seq}\n" for rid, seq in ids.items()))
    rc = main(["embed", str(fasta), "--random-init", "small", "-o", str(tmp_path / target), "--include",
               "per_tok"])
    assert rc == 0, capsys.readouterr().err
    got = load_output(tmp_path / target, fmt)
    assert {rid: arrays["per_tok_layer4"].shape for rid, arrays in got.items()} == {
        rid: (len(seq), SMALL_WIDTH) for rid, seq in ids.items()}


# ------------------------------------------------------------------------------------------------------------
# bad input: exit 2, exactly one line on stderr naming file (and record), nothing written
# ------------------------------------------------------------------------------------------------------------

BAD_INPUTS = {
    # name: (file content or None for a missing file, record named in the message or None, fragment)
    "empty": ("", None, "no FASTA records"),
    "whitespace-only": ("\n \n", None, "no FASTA records"),
    "protein": (">ok\nACGU\n>P69905 hemoglobin\nMVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHFDLSHGSAQVKGHGKKVADALTNAVAH\n",
                "P69905", "looks like a protein sequence"),
    "binary": (bytes(range(256)) * 8, None, "not a text FASTA file"),
    "gzip-garbage": (b"\x1f\x8b\x08\x00" + bytes(range(200)), None, "gzip"),
    "unknown-letters": (">a\nACGU\n>b\nACGUJ\n", "b", "position 5: invalid character 'J'"),
    "zero-length": (">a\n>b\nACGU\n", "a", "zero-length sequence"),
    "duplicate-ids": (">a\nACGU\n>a\nGG\n", "a", "duplicate record id"),
    "missing": (None, None, "No such file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_embed_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    content, record, fragment = BAD_INPUTS[case]
    fasta = tmp_path / "in" / "input.fa"
    fasta.parent.mkdir()
    if content is not None:
        fasta.write_bytes(content if isinstance(content, bytes) else content.encode())
    out_dir = tmp_path / "out"
    rc = main(["embed", str(fasta), "--random-init", "small", "-o", str(out_dir / "emb.npz")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("genesis-rna: error: ") and str(fasta) in line and fragment in line
    if record is not None:
        assert f"record '{record}'" in line
    assert "Traceback" not in err
    assert not out_dir.exists() or files_under(out_dir) == []
    assert files_under(tmp_path) == (["in", "in/input.fa"] if content is not None else ["in"])


def test_embed_output_equal_to_input_is_refused(tmp_path, capsys):
    fasta = tmp_path / "seqs.fa"
    original = EXAMPLES.read_bytes()
    fasta.write_bytes(original)
    link = tmp_path / "link.fa"
    link.symlink_to(fasta)
    for output in (fasta, tmp_path / "." / "seqs.fa", link):
        rc = main(["embed", str(fasta), "--random-init", "small", "-o", str(output)])
        out, err = capsys.readouterr()
        assert rc == 2 and out == ""
        assert len(err.splitlines()) == 1 and "would overwrite the input" in err and str(output) in err
        assert fasta.read_bytes() == original
        assert sorted(os.listdir(tmp_path)) == ["link.fa", "seqs.fa"]


@pytest.mark.parametrize(
    "output, extra, fragment",
    [
        ("afile/emb.npz", [], "cannot create output: File exists"),  # parent is a file
        ("adir.npz", [], "output is an existing directory"),
        ("afile", ["--format", "npy"], "output exists and is not a directory"),
    ],
)
def test_embed_unusable_output_path(tmp_path, capsys, output, extra, fragment):
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir.npz").mkdir()
    rc = main(["embed", str(EXAMPLES), "--random-init", "small", "-o", str(tmp_path / output), *extra])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and fragment in err and str(tmp_path / output) in err
    assert "Traceback" not in err
    assert files_under(tmp_path) == ["adir.npz", "afile"] and (tmp_path / "afile").read_text() == "keep"


@pytest.mark.parametrize("target", ["bad.npz", "bad.h5", "bad_dir"])
def test_embed_error_after_output_opened_leaves_nothing(tmp_path, capsys, target):
    """A bad option found only once the writer exists (layer 9 of a 4-layer model): no output, no temp."""
    out_dir = tmp_path / "out"
    rc = main(["embed", str(EXAMPLES), "--random-init", "small", "-o", str(out_dir / target), "--repr-layers", "9"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and "layer 9 out of range" in err
    assert not out_dir.exists() or files_under(out_dir) == []


# ------------------------------------------------------------------------------------------------------------
# real data: nRC test set, sequences longer than the model window
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_embed_nrc_test_set_with_windows(tmp_path, capsys, small_model):
    """All 2,600 nRC test sequences (39-1,182 nt) embedded with a random small model, mean and per-nucleotide,
    last layer, fp32 on CPU. One record is longer than the 1,022-nt window (the next longest has 666 nt).

    Measured on this 2-core machine while other jobs ran (load average about 5): the embed command took 121 s
    wall clock (about 85 s of CPU time), the whole test 127 s. The same command with the default dtype (bf16
    on this CPU) took 84 s wall clock under lighter load.

    Windows, by hand for the longest record (1,182 nt, RF00028_EU707925_1_1178-2359): window = max_len - 2
    = 1,022, default overlap = 1,022 // 4 = 255, stride 767, so two windows [0, 1022) and [160, 1182) (the last
    one aligned to the end). Position p takes the window where min(p - start, end - 1 - p) is larger, so
    positions 0..590 come from the first and 591..1181 from the second.
    """
    path = DATA / "classification/nrc/test.fa"
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    expected = biopython_records(path)
    expected = {rid: "".join("N" if c in "RYKMSWBDHV" else c for c in seq) for rid, seq in expected.items()}
    assert len(expected) == 2600
    output = tmp_path / "nrc.npz"
    start = time.perf_counter()
    rc = main(["embed", str(path), "--random-init", "small", "-o", str(output), "--include", "mean", "per_tok",
               "--dtype", "fp32", "--device", "cpu", "--quiet"])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert rc == 0 and err == "" and "embedded 2600 records" in out, (out, err)
    print(f"embed nrc test.fa: {elapsed:.1f} s")

    assert [rid for rid, s in expected.items() if len(s) > 1022] == ["RF00028_EU707925_1_1178-2359"]
    with np.load(output) as z:
        names = set(z.files)
        assert names == {f"{rid}/{kind}_layer4" for rid in expected for kind in ("mean", "per_tok")}
        for rid, seq in expected.items():
            per_tok = z[f"{rid}/per_tok_layer4"]
            assert per_tok.shape == (len(seq), SMALL_WIDTH), rid
            assert np.isfinite(per_tok).all(), rid
            np.testing.assert_allclose(z[f"{rid}/mean_layer4"], per_tok.astype(np.float64).mean(axis=0),
                                       rtol=1e-5, atol=1e-6)
        longest = max(expected, key=lambda rid: len(expected[rid]))
        seq = expected[longest]
        assert len(seq) == 1182
        rows = z[f"{longest}/per_tok_layer4"]
    first = direct_per_tok(small_model, seq[0:1022], [SMALL_LAYERS])[SMALL_LAYERS]
    second = direct_per_tok(small_model, seq[160:1182], [SMALL_LAYERS])[SMALL_LAYERS]
    np.testing.assert_allclose(rows[:591], first[:591], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rows[591:], second[591 - 160:], rtol=1e-4, atol=1e-4)
    # a short record is one window: the plain forward pass of the whole sequence
    shortest = min(expected, key=lambda rid: len(expected[rid]))
    with np.load(output) as z:
        np.testing.assert_allclose(z[f"{shortest}/per_tok_layer4"],
                                   direct_per_tok(small_model, expected[shortest], [SMALL_LAYERS])[SMALL_LAYERS],
                                   rtol=1e-4, atol=1e-4)
