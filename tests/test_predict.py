"""``genesis-rna predict``: outputs match an independent forward pass, formats, and one-line errors."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_rna import cli
from genesis_rna.finetune.data import ColumnSpec
from genesis_rna.finetune.model_dir import load_finetuned
from genesis_rna.finetune.predict import predict_file
from genesis_rna.finetune.trainer import FinetuneConfig, build_encoder, finetune, load_task_data
from genesis_rna.tokenization import RNATokenizer


def _write_csv(path: Path, n: int = 120, seed: int = 0) -> None:
    """Sequence label: more G than C (a, b), plus a regression column (GC fraction)."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        fh.write("name,seq,cls,gc\n")
        for i in range(n):
            s = "".join(rng.choice("ACGU") for _ in range(rng.randint(15, 40)))
            fh.write(f"r{i},{s},{'a' if s.count('G') > s.count('C') else 'b'},"
                     f"{(s.count('G') + s.count('C')) / len(s):.4f}\n")


def _write_jsonl(path: Path, n: int = 80, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            s = "".join(rng.choice("ACGU") for _ in range(rng.randint(15, 40)))
            fh.write(json.dumps({"id": f"t{i}", "sequence": s, "y1": [float(c == "G") for c in s],
                                 "y2": [float(c == "A") for c in s[:10]]}) + "\n")


def _train(tmp_path: Path, task: str, data: Path, spec: ColumnSpec, out: str, **kw) -> Path:
    split = load_task_data(str(data), task, spec)
    cfg = FinetuneConfig(task=task, output_dir=str(tmp_path / out), epochs=3, dtype="fp32", **kw)
    encoder, name = build_encoder(cfg, None, None)
    finetune(cfg, split, spec, encoder, base_name=name)
    return tmp_path / out


def _reference(model_dir: Path, seq: str) -> np.ndarray:
    """Forward of the saved encoder + head on one sequence, written out by hand (no cached-feature path)."""
    encoder, head, info = load_finetuned(model_dir)
    ids = torch.tensor([RNATokenizer().encode(seq)])
    with torch.no_grad():
        hidden = encoder(ids, (ids != 0).long())[:, 1:-1]  # one-hot CNN: [1, L, d]
        if info["feature_norm"] is not None:
            mean, std = info["feature_norm"]
            per_row = info["task"].startswith("token") or info["pooling"] == "conv"
            pooled = (hidden - mean) / std if per_row else (hidden.mean(1, keepdim=True) - mean) / std
        else:
            pooled = hidden
        if info["task"].startswith("token"):
            out = head(pooled)[0]
        else:
            out = head(pooled if info["feature_norm"] is not None else hidden,
                       torch.ones(pooled.shape[:2], dtype=torch.bool))[0]
    if info["task"].endswith("classification"):
        return out.softmax(-1).numpy()
    return (out * torch.tensor(info["target_std"]) + torch.tensor(info["target_mean"])).numpy()


def test_classification_csv_matches_a_hand_forward(tmp_path):
    _write_csv(tmp_path / "d.csv")
    spec = ColumnSpec(sequence_column="seq", id_column="name", label_columns=["cls"])
    model_dir = _train(tmp_path, "classification", tmp_path / "d.csv", spec, "cls", encoder="onehot", onehot_layers=1,
                       onehot_width=16)
    done = predict_file(model_dir, tmp_path / "d.csv", tmp_path / "p.csv", dtype="fp32")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    src = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert done["n"] == len(rows) == 120 and [r["id"] for r in rows] == [r["name"] for r in src]
    assert list(rows[0]) == ["id", "prediction", "prob_a", "prob_b"]
    for r, s in list(zip(rows, src, strict=True))[:5]:
        ref = _reference(model_dir, s["seq"])
        got = np.array([float(r["prob_a"]), float(r["prob_b"])])
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
        assert r["prediction"] == ["a", "b"][int(ref.argmax())]


def test_frozen_regression_with_feature_norm(tmp_path):
    _write_csv(tmp_path / "d.csv")
    spec = ColumnSpec(sequence_column="seq", id_column="name", label_columns=["gc"])
    model_dir = _train(tmp_path, "regression", tmp_path / "d.csv", spec, "reg", encoder="onehot", onehot_layers=0)
    _, _, info = load_finetuned(model_dir)
    assert info["feature_norm"] is not None
    predict_file(model_dir, tmp_path / "d.csv", tmp_path / "p.csv", dtype="fp32")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    src = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert list(rows[0]) == ["id", "gc"]
    for r, s in list(zip(rows, src, strict=True))[:5]:
        assert float(r["gc"]) == pytest.approx(float(_reference(model_dir, s["seq"])[0]), rel=1e-4, abs=1e-5)


def test_frozen_conv_pooling_classifier_matches_a_hand_forward(tmp_path):
    """``--pooling conv`` in frozen mode caches per-nucleotide rows; predict must feed the head the same rows."""
    _write_csv(tmp_path / "d.csv")
    spec = ColumnSpec(sequence_column="seq", id_column="name", label_columns=["cls"])
    model_dir = _train(tmp_path, "classification", tmp_path / "d.csv", spec, "conv", encoder="onehot",
                       onehot_layers=0, pooling="conv")
    _, _, info = load_finetuned(model_dir)
    assert info["pooling"] == "conv" and info["feature_norm"] is not None
    predict_file(model_dir, tmp_path / "d.csv", tmp_path / "p.csv", dtype="fp32")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    src = list(csv.DictReader(open(tmp_path / "d.csv")))
    for r, s in list(zip(rows, src, strict=True))[:5]:
        np.testing.assert_allclose([float(r["prob_a"]), float(r["prob_b"])], _reference(model_dir, s["seq"]),
                                   rtol=1e-4, atol=1e-5)


def test_token_regression_jsonl_one_value_per_nucleotide(tmp_path):
    _write_jsonl(tmp_path / "t.jsonl")
    spec = ColumnSpec(label_columns=["y1", "y2"])
    model_dir = _train(tmp_path, "token-regression", tmp_path / "t.jsonl", spec, "tok", encoder="onehot",
                       onehot_layers=1, onehot_width=16)
    (tmp_path / "in.fa").write_text(">x\nACGUACGUAGGA\n>y\nGGGCCCAAAUUUGCA\n")
    predict_file(model_dir, tmp_path / "in.fa", tmp_path / "p.jsonl", dtype="fp32")
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["x", "y"]
    for r in rows:
        assert len(r["y1"]) == len(r["y2"]) == len(r["sequence"])
        ref = _reference(model_dir, r["sequence"])
        np.testing.assert_allclose(np.array([r["y1"], r["y2"]]).T, ref, rtol=1e-4, atol=1e-5)


def test_cli_finetune_then_predict_and_errors(tmp_path, capsys):
    _write_csv(tmp_path / "d.csv", n=60)
    out = tmp_path / "run"
    assert cli.main(["finetune", str(tmp_path / "d.csv"), "--task", "classification", "--sequence-column", "seq",
                     "--id-column", "name", "--label-column", "cls", "--encoder", "onehot", "--onehot-layers", "0",
                     "--epochs", "2", "--output-dir", str(out), "--dtype", "fp32"]) == 0
    assert "valid auroc" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "head.safetensors", "task.json", "metrics.jsonl",
                 "training_curves.png"):
        assert (out / name).is_file(), name
    assert cli.main(["predict", str(out), str(tmp_path / "d.csv"), "-o", str(tmp_path / "p.csv")]) == 0
    assert "predicted 60 records" in capsys.readouterr().out
    for argv, needle in ((["predict", str(out), str(tmp_path / "d.csv"), "-o", str(tmp_path / "p.jsonl")], ".csv"),
                         (["predict", str(tmp_path), str(tmp_path / "d.csv"), "-o", str(tmp_path / "q.csv")],
                          "task.json: missing"),
                         (["predict", str(out), str(tmp_path / "nope.csv"), "-o", str(tmp_path / "q.csv")],
                          "no such file")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "p.jsonl").exists()
    (out / "head.safetensors").write_bytes(b"garbage")
    assert cli.main(["predict", str(out), str(tmp_path / "d.csv"), "-o", str(tmp_path / "q.csv")]) == 2
    assert "head.safetensors: cannot read weights" in capsys.readouterr().err
