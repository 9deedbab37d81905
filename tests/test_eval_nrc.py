"""`genesis-rna evaluate nrc`: a synthetic nRC-format data set (three classes that differ by composition and a motif),
k-mers against chance, a tiny fine-tune whose two-seed ensemble is recomputed independently from the members'
predictions, resumability (a rerun trains nothing), refusal to mix settings, and one-line CLI errors."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest

from genesis_rna import cli
from genesis_rna.errors import GenesisRNAError, InputError

pytest.importorskip("sklearn")

from genesis_rna.cli.evaluate import add_nrc_arguments  # noqa: E402
from genesis_rna.evaluate import nrc as eval_nrc  # noqa: E402

MOTIF = "UGUAAAUA"


def _record(rng: random.Random, cls: str) -> str:
    n = rng.randint(30, 50)
    if cls == "au_rich":
        return "".join(rng.choices("ACGU", weights=(4, 1, 1, 4), k=n))
    if cls == "gc_rich":
        return "".join(rng.choices("ACGU", weights=(1, 4, 4, 1), k=n))
    s = "".join(rng.choices("ACGU", k=n - 2 * len(MOTIF)))  # uniform composition + the motif twice
    i, j = sorted(rng.sample(range(len(s) + 1), 2))
    return s[:i] + MOTIF + s[i:j] + MOTIF + s[j:]


def _write_nrc(directory: Path, n_train: int = 90, n_test: int = 45, seed: int = 0) -> Path:
    """``train.fa`` / ``test.fa`` with ``>ID CLASS`` headers, classes grouped as in the real files."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.fa", n_train), ("test.fa", n_test)):
        with open(directory / name, "w") as fh:
            for k, cls in enumerate(c for c in ("au_rich", "gc_rich", "motif") for _ in range(n // 3)):
                fh.write(f">{name[:-3]}{k} {cls}\n{_record(rng, cls)}\n")
    return directory


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    from genesis_rna import pretrained

    model, _ = pretrained.random_model("small", seed=0, d_model=32, n_layers=1, n_heads=2, dim_ff=64, max_len=66)
    path = tmp_path_factory.mktemp("enc") / "tiny"
    model.save_pretrained(path)
    return path


def _args(output: Path, data: Path, **kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_nrc_arguments(p)
    argv = ["--output", str(output), "--data", str(data), "--dtype", "fp32"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", *(map(str, v) if isinstance(v, list | tuple) else [str(v)])]
    return p.parse_args(argv)


def test_defaults_match_the_brief():
    p = argparse.ArgumentParser()
    add_nrc_arguments(p)
    a = p.parse_args(["-o", "x", "--data", "nrc"])
    assert (a.methods, a.seeds, a.epochs, a.encoder_lr, a.encoder, a.limit, a.dtype) == (
        ["kmer", "probe"], [0], 10, 1e-4, "genesis-rna-small", 0, "auto")
    with pytest.raises(SystemExit):  # the library knows no data path of its own (issue 24): --data is required
        p.parse_args(["-o", "x"])
    with pytest.raises(SystemExit):
        p.parse_args(["-o", "x", "--methods", "svm"])


def test_subsample_and_valid_split(tmp_path):
    data = _write_nrc(tmp_path / "nrc", n_train=90, n_test=45)
    train, test = eval_nrc.load_nrc(data)
    assert (len(train), len(test)) == (90, 45) and {e.target for e in train} == {"au_rich", "gc_rich", "motif"}
    small_train, small_test = eval_nrc.load_nrc(data, limit=30)
    assert small_train == train[::3] and small_test == test[::3]  # every k-th: each class keeps its share
    a, b = eval_nrc.with_valid_split(train), eval_nrc.with_valid_split(train)
    assert [e.split for e in a] == [e.split for e in b] and sum(e.split == "valid" for e in a) == 9
    assert all(e.split is None for e in train)  # copies: the caller's examples are untouched


def test_kmer_separates_synthetic_classes_and_writes_tables(tmp_path):
    data = _write_nrc(tmp_path / "nrc")
    res = eval_nrc.run_nrc(_args(tmp_path / "out", data, methods=["kmer"]))
    (row,) = res["rows"]
    assert row["name"] == "kmer" and row["test_accuracy"] >= 0.85  # chance is 1/3
    assert row["cpu_seconds"] > 0 and row["wall_seconds"] > 0 and "torch threads" in row["machine"]
    assert res["n_train"] == 90 and res["n_test"] == 45 and res["limit"] == 0
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["rows"][0]["test_accuracy"] == row["test_accuracy"]
    assert (tmp_path / "out" / "methods" / "kmer.json").is_file()
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| kmer |" in md and "96.81%" in md and "88.62%" in md
    assert res["goal"]["text"] == ("met" if row["test_accuracy"] >= 0.95 else
                                   f"missed by {100 * (0.95 - row['test_accuracy']):.2f} points")
    assert f"**{res['goal']['text']}**" in md
    assert "genesis-rna evaluate nrc --output" in md and "--methods kmer" in res["commands"][0]
    line = eval_nrc.summary_line(res)
    assert line.startswith(f"nRC test accuracy: kmer {row['test_accuracy']:.3f}") and "\n" not in line


def test_finetune_two_seeds_ensemble_and_resume(tmp_path, tiny_encoder, monkeypatch):
    """Probe, conv head and a 1-epoch full fine-tune with seeds 0 and 1: the ensemble row equals the mean of the
    members' `predict_sequences` probabilities; a rerun retrains nothing; other settings are refused, not mixed."""
    from genesis_rna.finetune import trainer as train_finetune
    from genesis_rna.finetune.predict import predict_sequences

    data = _write_nrc(tmp_path / "nrc", n_train=60, n_test=30)
    out = tmp_path / "out"
    args = _args(out, data, methods=["probe", "conv", "finetune"], encoder=tiny_encoder, seeds=[0, 1],
                 epochs=1)
    res = eval_nrc.run_nrc(args)
    names = [r["name"] for r in res["rows"]]
    assert names == ["probe", "conv-seed0", "conv-seed1", "finetune-seed0", "finetune-seed1",
                     "finetune-ensemble-seeds0-1"]
    rows = {r["name"]: r for r in res["rows"]}

    _, test = eval_nrc.load_nrc(data)
    seqs, truth = [e.sequence for e in test], [e.target for e in test]
    probs = []
    for seed in (0, 1):
        p, info = predict_sequences(out / "models" / f"finetune-seed{seed}", seqs, dtype="fp32")
        p = np.stack(p)
        probs.append(p)
        member_acc = np.mean([info["outputs"][k] == t for k, t in zip(p.argmax(1), truth, strict=True)])
        assert rows[f"finetune-seed{seed}"]["test_accuracy"] == pytest.approx(member_acc)
    assert not np.allclose(probs[0], probs[1])  # the seeds really differ
    mean = (probs[0] + probs[1]) / 2
    ens_acc = np.mean([info["outputs"][k] == t for k, t in zip(mean.argmax(1), truth, strict=True)])
    assert rows["finetune-ensemble-seeds0-1"]["test_accuracy"] == pytest.approx(ens_acc)
    assert (out / "cache" / "embeddings").is_dir() and (out / "models" / "conv-seed1" / "task.json").is_file()
    assert json.loads((out / "models" / "conv-seed1" / "task.json").read_text())["mode"] == "frozen"
    first = (out / "results.json").read_text()

    def boom(*a, **k):
        raise AssertionError("a finished method was run again")

    monkeypatch.setattr(train_finetune, "finetune", boom)
    monkeypatch.setattr(eval_nrc, "linear_probe", boom)
    monkeypatch.setattr(eval_nrc, "ensemble_run", boom)
    again = eval_nrc.run_nrc(args)
    assert [r["test_accuracy"] for r in again["rows"]] == [r["test_accuracy"] for r in res["rows"]]
    assert json.loads(first)["rows"] == json.loads((out / "results.json").read_text())["rows"]

    with pytest.raises(InputError, match=r"finetune-seed0\.json: was run with .*\"epochs\": 1"):
        eval_nrc.run_nrc(_args(out, data, methods=["finetune"], encoder=tiny_encoder, seeds=[0], epochs=2))
    with pytest.raises(InputError, match=r"--limit 30.*use another --output"):
        eval_nrc.run_nrc(_args(out, data, methods=["kmer"], limit=30))


@pytest.mark.parametrize("case", ["no_dir", "no_test"])
def test_cli_missing_data_is_one_line(tmp_path, capsys, case):
    data = tmp_path / "nrc"
    if case == "no_test":
        _write_nrc(data)
        (data / "test.fa").unlink()
    code = cli.main(["evaluate", "nrc", "--data", str(data), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("genesis-rna: error: ")
    assert str(data / "test.fa" if case == "no_test" else data) in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_unknown_encoder_and_missing_sklearn_are_one_line(tmp_path, capsys, monkeypatch):
    data = _write_nrc(tmp_path / "nrc")
    code = cli.main(["evaluate", "nrc", "--data", str(data), "--output", str(tmp_path / "out"), "--methods", "probe",
                     "--encoder", "no-such-model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no-such-model" in err[0]
    monkeypatch.setitem(__import__("sys").modules, "sklearn.linear_model", None)  # import fails
    with pytest.raises(GenesisRNAError, match="scikit-learn"):
        eval_nrc.run_nrc(_args(tmp_path / "out2", data, methods=["kmer"]))
    assert not (tmp_path / "out2" / "methods").exists()
