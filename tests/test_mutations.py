"""Tests of zero-shot mutation scoring (genesis_rna.design.mutations) and ``genesis-rna score-mutations``.

Independent references: variants applied to the wild type by hand (strings written out here); masked-marginal
scores recomputed from direct forwards of the model on ``[CLS] ... [MASK] ... [SEP]`` built from docs/architecture.md's fixed
token ids and ``torch.log_softmax``; the CSV output read back with the csv module.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_rna.cli import main
from genesis_rna.design.mutations import masked_log_probs, scan, score_variants
from genesis_rna.design.variants import (
    Substitution,
    apply_variant,
    parse_variant,
    read_variants,
    saturation_variants,
    substitutions_between,
)
from genesis_rna.errors import InputError
from genesis_rna.pretrained import random_model

TOKEN_IDS = {"A": 4, "C": 5, "G": 6, "U": 7, "N": 8}
CLS, SEP, MASK = 2, 3, 1
WT = "GGACUCCAGUAACGUUAGCAUCCGA"  # 25 nt


@pytest.fixture(scope="module")
def model():
    return random_model("small", seed=3)[0]


def hand_logp(model, seq: str, masked: int) -> np.ndarray:
    """log-softmax over the vocabulary at ``masked`` (0-based) with that position masked; [A, C, G, U] columns."""
    ids = [CLS] + [TOKEN_IDS[c] for c in seq] + [SEP]
    ids[masked + 1] = MASK
    with torch.no_grad():
        logits = model(torch.tensor([ids]))["mlm_logits"][0, masked + 1]
    return torch.log_softmax(logits.double(), dim=-1)[[4, 5, 6, 7]].numpy()


def test_variant_applied_by_hand():
    subs = parse_variant("A3G:C4U", WT)
    assert subs == (Substitution(2, "A", "G"), Substitution(3, "C", "U"))
    assert apply_variant(WT, subs) == "GGGUUCCAGUAACGUUAGCAUCCGA"
    # comma separator, lower case, T for U and any order give the same substitutions
    assert parse_variant("c4t,a3g", WT) == subs
    assert substitutions_between(WT, "GGGUUCCAGUAACGUUAGCAUCCGA") == subs


@pytest.mark.parametrize("spec, words", [
    ("U3G", "has A at position 3"),          # wrong wild-type base
    ("A0G", "outside the wild type"),        # out of range, low
    ("A26G", "outside the wild type"),       # out of range, high (L = 25)
    ("E3K", "not a nucleotide"),             # protein letters
    ("A3A", "equals the wild-type base"),
    ("A3G:A3C", "mutated twice"),
    ("3G", "cannot read"),
])
def test_bad_variants_name_the_variant(spec, words):
    with pytest.raises(InputError) as err:
        parse_variant(spec, WT)
    assert spec in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


def test_masked_marginal_equals_hand_log_softmax(model):
    variants = [("v1", parse_variant("A3G", WT)), ("v2", parse_variant("A3G:U15C", WT))]
    scores = score_variants(model, WT, variants)
    a3 = hand_logp(model, WT, 2)
    u15 = hand_logp(model, WT, 14)
    expect1 = a3[2] - a3[0]                       # log p(G) - log p(A) at position 3
    expect2 = expect1 + (u15[1] - u15[3])         # + log p(C) - log p(U) at position 15
    assert scores[0].score == pytest.approx(expect1, abs=1e-5)
    assert scores[1].score == pytest.approx(expect2, abs=1e-5)
    assert scores[1].sequence == WT[:2] + "G" + WT[3:14] + "C" + WT[15:]
    assert scores[1].variant == "A3G:U15C" and scores[1].n_mutations == 2


def test_wt_marginal_is_one_unmasked_forward(model):
    ids = torch.tensor([[CLS] + [TOKEN_IDS[c] for c in WT] + [SEP]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)["mlm_logits"][0, 1:-1].double(), dim=-1)
    score = score_variants(model, WT, [("v", parse_variant("C4A", WT))], method="wt-marginal")[0].score
    assert score == pytest.approx(float(logp[3, 4] - logp[3, 5]), abs=1e-5)


def test_scan_needs_one_masked_forward_per_position(model):
    rows = []
    handle = model.register_forward_pre_hook(lambda mod, args: rows.append(args[0].shape[0]))
    try:
        results = scan(model, WT)
    finally:
        handle.remove()
    assert len(results) == 3 * len(WT) == len(saturation_variants(WT))
    assert sum(rows) == len(WT)  # L masked sequences in all, not 3L
    # the three singles of position 9 (G) agree with the hand-computed table
    g9 = hand_logp(model, WT, 8)
    assert [r.variant for r in results[24:27]] == ["G9A", "G9C", "G9U"]
    for r in results[24:27]:
        assert r.score == pytest.approx(g9["ACGU".index(r.variant[-1])] - g9[2], abs=1e-5)


def test_long_sequence_uses_a_window_around_the_site():
    small = random_model("small", seed=1, max_len=34)[0]  # window of 32 nt
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGU"), 80))
    got = masked_log_probs(small, [(seq, [60])])[0][0]
    # window centred on position 60: start min(max(0, 60 - 16), 80 - 32) = 44
    expect = hand_logp(small, seq[44:76], 60 - 44)
    np.testing.assert_allclose(got, expect, atol=1e-5)


def test_read_variants_formats(tmp_path: Path):
    (tmp_path / "v.txt").write_text("# comment\nA3G\nA3G:U15C\n\n")
    (tmp_path / "v.csv").write_text("id,mutant,fitness\nx,A3G,0.5\ny,\"A3G,U15C\",0.1\n")
    (tmp_path / "s.csv").write_text("sequence\nGGGCUCCAGUAACGUUAGCAUCCGA\n")
    (tmp_path / "m.fa").write_text(">mut1\nGGGCUCCAGUAACGUUAGCAUCCGA\n")
    two = parse_variant("A3G:U15C", WT)
    assert read_variants(tmp_path / "v.txt", WT) == [("A3G", two[:1]), ("A3G:U15C", two)]
    assert read_variants(tmp_path / "v.csv", WT) == [("x", two[:1]), ("y", two)]
    assert read_variants(tmp_path / "s.csv", WT) == [("A3G", two[:1])]
    assert read_variants(tmp_path / "m.fa", WT) == [("mut1", two[:1])]
    (tmp_path / "bad.txt").write_text("A3G\nC3U\n")
    with pytest.raises(InputError, match=r"bad.txt line 2: variant 'C3U'"):
        read_variants(tmp_path / "bad.txt", WT)
    (tmp_path / "short.fa").write_text(">mut1\nGGGC\n")
    with pytest.raises(InputError, match="differs from the wild type"):
        read_variants(tmp_path / "short.fa", WT)


def test_cli_scan_and_errors(tmp_path: Path, capsys):
    wt = tmp_path / "wt.fa"
    wt.write_text(f">wt\n{WT}\n")
    out = tmp_path / "scan.csv"
    assert main(["score-mutations", str(wt), "--scan", "--random-init", "small", "--dtype", "fp32",
                 "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 75 and rows[0]["variant"] == "G1A" and rows[0]["sequence"] == "A" + WT[1:]
    bad = tmp_path / "bad.csv"
    assert main(["score-mutations", str(wt), "A3G C3U", "--random-init", "small", "--output", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "C3U" in err and "has A at position 3" in err
    assert not bad.exists()
    assert main(["score-mutations", str(wt), str(tmp_path / "missing.txt"), "--random-init", "small"]) == 2
    assert "no such variant file" in capsys.readouterr().err
