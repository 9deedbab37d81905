"""The structure model: symmetry, the ViennaRNA prior against RNAfold, save/load without pickle, learning.

Independent references: ViennaRNA's MFE dot-bracket (parsed by hand) and probability laws (a base is paired
with probability <= 1); exact symmetry by construction; reloaded models reproduce outputs bit for bit; a one-hot
model learns a synthetic pairing rule that needs the partner's identity (complementarity) from data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_rna.errors import CheckpointError
from genesis_rna.structure.model import (
    build_structure_model,
    load_structure_model,
    predict_proba,
    save_structure_model,
)
from genesis_rna.structure.pairs import dotbracket_to_partners, pair_metrics
from genesis_rna.structure.train import PairExample, train_structure_model
from genesis_rna.structure.vienna import vienna_prior

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEQ = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from genesis_rna.pretrained import random_model

    model, tok = random_model("small", seed=0, n_layers=2, d_model=64, n_heads=2, dim_ff=128, max_len=130)
    path = tmp_path_factory.mktemp("enc")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_vienna_prior_matches_rnafold():
    RNA = pytest.importorskip("RNA")
    bpp, mfe = vienna_prior(SEQ)
    n = len(SEQ)
    assert bpp.shape == mfe.shape == (n, n) and bpp.dtype == np.float32
    assert np.array_equal(bpp, bpp.T) and np.array_equal(mfe, mfe.T)
    assert (bpp >= 0).all() and (bpp.sum(axis=1) <= 1 + 1e-5).all()  # P(i paired) <= 1
    ref = dotbracket_to_partners(RNA.fold(SEQ)[0])
    i = np.flatnonzero(ref >= 0)
    expected = np.zeros((n, n), dtype=np.float32)
    expected[i, ref[i]] = 1
    assert np.array_equal(mfe, expected)


@pytest.mark.parametrize("vienna", [False, True])
def test_logits_are_exactly_symmetric(encoder_dir, vienna):
    model = build_structure_model(encoder_dir, use_vienna=vienna)
    z = model(SEQ[:50])
    assert z.shape == (50, 50)
    assert torch.equal(z, z.T)
    p = predict_proba(model, SEQ[:50])
    assert np.array_equal(p, p.T) and (p >= 0).all() and (p <= 1).all() and (np.diag(p) == 0).all()


def test_untrained_hybrid_is_exactly_vienna(encoder_dir):
    pytest.importorskip("RNA")
    model = build_structure_model(encoder_dir, use_vienna=True)
    bpp, _ = vienna_prior(SEQ)
    p = predict_proba(model, SEQ)
    # the hybrid starts as ViennaRNA: sigmoid(logit(bpp)) with bpp clamped to [1e-4, 1 - 1e-4]
    expected = np.clip(bpp, 1e-4, 1 - 1e-4)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(p, expected, atol=2e-5)


@pytest.mark.parametrize("finetune", [False, True])
def test_save_load_roundtrip_without_pickle(encoder_dir, tmp_path, finetune):
    model = build_structure_model(encoder_dir, finetune=finetune)
    with torch.no_grad():
        for name, prm in model.named_parameters():  # a frozen encoder stays as referenced
            if finetune or not name.startswith("encoder."):
                prm.add_(0.01 * torch.randn_like(prm))
    model.config.threshold = 0.37
    out = tmp_path / "fold"
    save_structure_model(model, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors"] + (["encoder_config.json"] if finetune else []))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "genesis-rna-fold" and cfg["encoder_included"] is finetune
    loaded = load_structure_model(out)
    assert loaded.config.threshold == 0.37
    np.testing.assert_array_equal(predict_proba(model, SEQ[:40]), predict_proba(loaded, SEQ[:40]))
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        has_encoder = any(k.startswith("encoder.") for k in fh.keys())
    assert has_encoder is finetune  # a frozen model references its encoder instead of copying it


def test_changed_encoder_is_detected(encoder_dir, tmp_path):
    import shutil

    enc = tmp_path / "enc"
    shutil.copytree(encoder_dir, enc)
    model = build_structure_model(enc)
    save_structure_model(model, tmp_path / "fold")
    from genesis_rna.pretrained import random_model

    random_model("small", seed=1, n_layers=2, d_model=64, n_heads=2, dim_ff=128, max_len=130)[0].save_pretrained(enc)
    with pytest.raises(CheckpointError, match="different weights"):
        load_structure_model(tmp_path / "fold")
    shutil.rmtree(enc)
    with pytest.raises(CheckpointError, match="not available"):
        load_structure_model(tmp_path / "fold")


def _hairpins(n: int, rng: np.random.Generator) -> list[PairExample]:
    """Random stem (5 bp, Watson-Crick) + 4-nt loop between random flanks: pairing needs complementarity."""
    comp = {"A": "U", "U": "A", "G": "C", "C": "G"}
    out = []
    for k in range(n):
        left = "".join(rng.choice(list("ACGU"), 5))
        flank5 = "".join(rng.choice(list("A"), int(rng.integers(2, 8))))
        flank3 = "".join(rng.choice(list("A"), int(rng.integers(2, 8))))
        seq = flank5 + left + "AAAA" + "".join(comp[c] for c in reversed(left)) + flank3
        part = np.full(len(seq), -1)
        s = len(flank5)
        for t in range(5):
            i, j = s + t, s + 13 - t
            part[i], part[j] = j, i
        out.append(PairExample(f"h{k}", seq, part))
    return out


def test_onehot_head_learns_synthetic_stems():
    rng = np.random.default_rng(0)
    train, valid = _hairpins(64, rng), _hairpins(16, rng)
    torch.manual_seed(0)
    model = build_structure_model(None, channels=8, dilations=(1, 2, 4))
    before = np.mean([pair_metrics(np.full(len(e.sequence), -1), e.partner)["f1"] for e in valid])
    info = train_structure_model(model, train, valid, epochs=4, steps_per_epoch=64, lr=1e-2, patience=4)
    assert info["best_valid_f1"] > 0.8 > before
    assert len(info["history"]) >= 1 and info["threshold"] in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@pytest.mark.skipif(not (DATA / "structure/archiveII_csv/ArchiveII.csv").is_file(), reason="ArchiveII absent")
def test_archiveii_loader_agrees_with_dotbracket_column():
    import csv

    from genesis_rna.evaluate.archiveii import load_archiveii, load_split

    ex = load_archiveii(DATA / "structure/archiveII_csv")
    assert len(ex) == 3864
    with open(DATA / "structure/archiveII_csv/ArchiveII.csv", newline="") as fh:
        for k, row in enumerate(csv.DictReader(fh)):
            if k % 97 == 0 and all(c in "()." for c in row["structure"]):
                assert np.array_equal(ex[row["id"]].partner, dotbracket_to_partners(row["structure"]))
    folds = load_split(DATA / "structure/archiveII_csv", "famfold")
    assert len(folds) == 9
    for parts in folds.values():  # the held-out family is absent from train and valid
        fam = {ex[i].family for i in parts["test"]}
        assert len(fam) == 1
        assert not fam & {ex[i].family for i in parts["train"] + parts["valid"]}


def _tiny_archiveii(root: Path, rng: np.random.Generator, families: tuple = ("tRNA", "5s")) -> None:
    """An ArchiveII-format folder (CSV with 1-based pairs + a famfold split) of synthetic hairpins."""
    import csv

    rows, split = [], []
    for fam, n in ((f, 6) for f in families):
        for k, ex in enumerate(_hairpins(n, rng)):
            pairs = [[i + 1, int(j) + 1] for i, j in enumerate(ex.partner) if j > i]
            rid = f"{fam}_synthetic-{k}"
            rows.append({"id": rid, "sequence": ex.sequence, "len": len(ex.sequence), "structure": "",
                         "base_pairs": json.dumps(pairs)})
            for held_out in families:
                part = "test" if fam == held_out else ("valid" if k < 2 else "train")
                split.append({"fold_name": held_out, "fold_number": 0, "partition": part, "id": rid})
    for name, table in (("ArchiveII.csv", rows), ("split_famfold.csv", split)):
        with open(root / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)


def test_heads_without_the_prior_never_fold_with_vienna(tmp_path, monkeypatch):
    """``onehot`` needs no ViennaRNA: the benchmark must run it without filling the cache (about 11 CPU minutes for
    all of ArchiveII), and score it on the held-out family; a Vienna method still fills the cache."""
    import argparse

    from genesis_rna.cli.evaluate import add_evaluate_arguments
    from genesis_rna.evaluate import archiveii as eb
    from genesis_rna.structure import vienna as sm

    _tiny_archiveii(tmp_path, np.random.default_rng(1))

    def no_vienna(*_a, **_k):
        raise AssertionError("ViennaRNA was called for a method that does not use it")

    monkeypatch.setattr(sm, "vienna_partition", no_vienna)
    p = argparse.ArgumentParser()
    add_evaluate_arguments(p)
    args = p.parse_args(["archiveii", "--data", str(tmp_path), "--output", str(tmp_path / "out"), "--methods",
                         "onehot", "--epochs", "1", "--steps-per-epoch", "4", "--max-train-len", "40",
                         "--channels", "4"])
    assert eb.needs_vienna("vienna_mea") and eb.needs_vienna("genesis_hybrid")
    assert not eb.needs_vienna("onehot") and not eb.needs_vienna("genesis_frozen")
    eb.run_archiveii(args)
    done = sorted(f.name for f in (tmp_path / "out" / "folds").iterdir())
    assert done == ["famfold_5s_onehot.json", "famfold_tRNA_onehot.json"]
    rec = json.loads((tmp_path / "out" / "folds" / "famfold_tRNA_onehot.json").read_text())
    assert rec["n_test"] == 6 and 0.0 <= rec["scores"]["overall"]["f1"] <= 1.0
    assert not (tmp_path / "out" / "cache" / "vienna").exists()
    args.methods = ["vienna_mfe"]
    with pytest.raises(AssertionError, match="ViennaRNA was called"):
        eb.run_archiveii(args)


@pytest.mark.skipif(not (DATA / "structure/archiveII_csv/ArchiveII.csv").is_file(), reason="ArchiveII absent")
def test_family_holdout_plan_never_validates_on_a_trained_family():
    """Each member of the inner leave-one-family-out plan validates on one whole family it did not train on,
    members hold out different families (largest first), the fold's test family is in no member, caps hold."""
    from genesis_rna.evaluate.archiveii import family_holdout_plan, family_of, load_split

    folds = load_split(DATA / "structure/archiveII_csv", "famfold")
    for name, parts in folds.items():
        pool = parts["train"] + parts["valid"]
        sizes = {}
        for rid in pool:
            sizes[family_of(rid)] = sizes.get(family_of(rid), 0) + 1
        plan = family_holdout_plan(pool, 3, 200, 20, seed=0)
        held = [m["valid_family"] for m in plan]
        assert len(set(held)) == 3 and held == sorted(sizes, key=lambda f: -sizes[f])[:3]
        for m in plan:
            assert {family_of(r) for r in m["valid"]} == {m["valid_family"]}
            assert m["valid_family"] not in {family_of(r) for r in m["train"]}
            assert name not in {family_of(r) for r in m["train"] + m["valid"]}
            assert len(m["train"]) == 200 and len(m["valid"]) == min(20, sizes[m["valid_family"]])
        assert len(family_holdout_plan(pool, 99, None, None, seed=0)) == 8  # at most every training family


def test_family_ensemble_runs_end_to_end_and_refuses_what_it_cannot_do(tmp_path):
    import argparse

    from genesis_rna.cli.evaluate import add_evaluate_arguments
    from genesis_rna.errors import InputError
    from genesis_rna.evaluate import archiveii as eb

    _tiny_archiveii(tmp_path, np.random.default_rng(2), families=("tRNA", "5s", "srp"))
    p = argparse.ArgumentParser()
    add_evaluate_arguments(p)
    base = ["archiveii", "--data", str(tmp_path), "--methods", "vienna_head", "--epochs", "1",
            "--steps-per-epoch", "3", "--max-train-len", "40", "--channels", "4", "--valid-from", "family",
            "--members", "2", "--folds", "tRNA"]
    eb.run_archiveii(p.parse_args(base + ["--output", str(tmp_path / "out")]))
    rec = json.loads((tmp_path / "out" / "folds" / "famfold_tRNA_vienna_head.json").read_text())
    assert [m["valid_family"] for m in rec["info"]["members"]] == ["5s", "srp"]
    assert rec["n_test"] == 6 and rec["options"]["valid_from"] == "family"
    assert rec["info"]["threshold"] in eb.THRESHOLDS
    with pytest.raises(InputError, match="famfold"):
        eb._run_family_ensemble("vienna_head", {"train": [], "valid": []}, {}, tmp_path, [],
                                argparse.Namespace(split="kfold"))
    with pytest.raises(InputError, match="at least 2 families"):
        eb.family_holdout_plan(["tRNA_a", "tRNA_b"], 2, None, None, seed=0)
