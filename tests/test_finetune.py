"""Fine-tuning: metrics vs sklearn/scipy, task-file parsing, splits, one-line errors, and learning a task that
needs context (checked against chance and against a context-free control)."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from genesis_rna import cli
from genesis_rna.errors import FormatError, GenesisRNAError, InputError
from genesis_rna.finetune.data import (
    ColumnSpec,
    assign_splits,
    class_names,
    encode_labels,
    header_label,
    load_examples,
    split_examples,
)
from genesis_rna.finetune.heads import OneHotConvEncoder
from genesis_rna.finetune.metrics import (
    _rank,
    auroc,
    average_precision,
    macro_f1,
    mcrmse,
    pearson,
    regression_metrics,
    rmse,
    spearman,
)
from genesis_rna.finetune.model_dir import load_finetuned
from genesis_rna.finetune.trainer import FinetuneConfig, build_encoder, finetune, load_task_data


# ------------------------------------------------------------------------------------------------ helpers
def _rand_seq(rng: random.Random, n: int, alphabet: str = "ACGU") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _dinucleotide_csv(path: Path, n: int = 400, seed: int = 0) -> None:
    """Class 1 = blocks of AU/GC, class 0 = blocks of UA/CG: equal base composition, different neighbours."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        fh.write("id,sequence,label\n")
        for i in range(n):
            label = i % 2
            blocks = ("AU", "GC") if label else ("UA", "CG")
            fh.write(f"s{i},{''.join(rng.choice(blocks) for _ in range(rng.randint(12, 30)))},{label}\n")


def _neighbour_jsonl(path: Path, n: int = 300, seed: int = 0) -> None:
    """Per-nucleotide label: 1 when the *next* nucleotide is G (the last position has no label)."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            s = _rand_seq(rng, rng.randint(20, 50))
            lab = [int(s[j + 1] == "G") for j in range(len(s) - 1)]
            fh.write(json.dumps({"id": f"t{i}", "sequence": s, "next_g": lab, "fold": i % 5}) + "\n")


def _motif_csv(path: Path, n: int = 400, seed: int = 0, motif: str = "UGUAAAUA") -> None:
    """Class 1 holds the motif at a random place, class 0 the same letters shuffled: equal composition."""
    rng = random.Random(seed)
    with open(path, "w") as fh:
        fh.write("id,sequence,label\n")
        for i in range(n):
            label = i % 2
            site = motif if label else "".join(rng.sample(motif, len(motif)))
            while not label and site == motif:
                site = "".join(rng.sample(motif, len(motif)))
            at = rng.randint(0, 40)
            fh.write(f"m{i},{_rand_seq(rng, at)}{site}{_rand_seq(rng, 40 - at)},{label}\n")


def _run(task, path, out, spec=None, **kw):
    spec = spec or ColumnSpec()
    split = load_task_data(str(path), task, spec, test_fraction=0.2)
    cfg = FinetuneConfig(task=task, output_dir=str(out), dtype="fp32", **kw)
    encoder, name = build_encoder(cfg, None, None)
    return finetune(cfg, split, spec, encoder, base_name=name), split


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_match_sklearn_and_scipy():
    sk = pytest.importorskip("sklearn.metrics")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties, which both must handle alike
    assert auroc(y, score) == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(sk.average_precision_score(y, score), abs=1e-12)
    yc, pc = rng.integers(0, 5, 300), rng.integers(0, 6, 300)
    assert macro_f1(yc, pc) == pytest.approx(sk.f1_score(yc, pc, average="macro"), abs=1e-12)
    a, b = rng.normal(size=100), np.round(rng.normal(size=100), 1)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-12)
    assert np.array_equal(_rank(b), stats.rankdata(b))


def test_rmse_and_mcrmse_by_hand():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    y = np.array([[1.0, np.nan], [2.0, 4.0], [3.0, 6.0]])
    p = np.array([[1.0, 9.0], [2.0, 5.0], [5.0, 6.0]])
    # column 0: errors 0,0,2 -> sqrt(4/3); column 1: NaN row skipped, errors 1,0 -> sqrt(1/2)
    assert mcrmse(y, p) == pytest.approx((math.sqrt(4 / 3) + math.sqrt(0.5)) / 2)
    m = regression_metrics(y, p, ["a", "b"])
    assert m["a/rmse"] == pytest.approx(math.sqrt(4 / 3)) and m["mcrmse"] == pytest.approx(mcrmse(y, p))


# ------------------------------------------------------------------------------------------------ parsing
def test_fasta_header_labels():
    assert header_label("5S_rRNA", None) == "5S_rRNA"  # nRC: '>ID CLASS'
    assert header_label("some text label=tRNA x=1", None) == "tRNA"
    assert header_label("class:1 chr1", r"class:(\d)") == "1"
    assert header_label("kind=(?P<x>)", r"kind=(?P<label>\w+)") is None


def test_fasta_csv_tsv_jsonl_gz_round_trip(tmp_path):
    rows = [("a", "ACGUT", "x"), ("b", "GGCCN", "y")]
    (tmp_path / "t.fa").write_text("".join(f">{i} {lab}\r\n{s}\r\n" for i, s, lab in rows))  # CRLF like nRC
    (tmp_path / "t.csv").write_text("id,sequence,label\n" + "".join(f"{i},{s},{lab}\n" for i, s, lab in rows))
    (tmp_path / "t.tsv").write_text("id\tsequence\tlabel\n" + "".join(f"{i}\t{s}\t{lab}\n" for i, s, lab in rows))
    with gzip.open(tmp_path / "t.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps({"id": i, "sequence": s, "label": lab}) + "\n" for i, s, lab in rows)
    for name in ("t.fa", "t.csv", "t.tsv", "t.jsonl.gz"):
        ex = load_examples(tmp_path / name, "classification", ColumnSpec())
        assert [(e.id, e.sequence, e.target) for e in ex] == [("a", "ACGUU", "x"), ("b", "GGCCN", "y")], name


def test_token_targets_lists_scored_length_and_strings(tmp_path):
    rows = [{"id": "r", "sequence": "ACGUA", "react": [0.5, 1.0, 2.0], "deg": "1,2,3,4", "n": 2,
             "loop": "S.HH"}]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = ColumnSpec(label_columns=["react", "deg"], scored_length_column="n")
    (ex,) = load_examples(tmp_path / "t.jsonl", "token-regression", spec)
    expect = np.array([[0.5, 1], [1, 2]] + [[np.nan, np.nan]] * 3, dtype=np.float32)
    np.testing.assert_array_equal(ex.target, expect)
    (ex,) = load_examples(tmp_path / "t.jsonl", "token-classification", ColumnSpec(label_columns=["loop"]))
    assert ex.target == ["S", ".", "H", "H", None]
    names = class_names([ex], "token-classification")
    assert names == [".", "H", "S"]
    assert encode_labels([ex], "token-classification", names)[0].tolist() == [2, 0, 1, 1, -100]


def test_splits_from_column_values_and_random(tmp_path):
    _neighbour_jsonl(tmp_path / "t.jsonl", n=50)
    spec = ColumnSpec(label_columns=["next_g"], split_column="fold")
    ex = load_examples(tmp_path / "t.jsonl", "token-classification", spec)
    assign_splits(ex, valid_values="0", test_values="1,2")
    got = split_examples(ex)
    assert [len(got[s]) for s in ("train", "valid", "test")] == [20, 10, 20]
    assert all(int(e.row["fold"]) == 0 for e in got["valid"])
    a = load_examples(tmp_path / "t.jsonl", "token-classification", ColumnSpec(label_columns=["next_g"]))
    b = load_examples(tmp_path / "t.jsonl", "token-classification", ColumnSpec(label_columns=["next_g"]))
    assign_splits(a, valid_fraction=0.2, test_fraction=0.1, seed=3)
    assign_splits(b, valid_fraction=0.2, test_fraction=0.1, seed=3)
    assert [e.split for e in a] == [e.split for e in b]
    assert sum(e.split == "valid" for e in a) == 10 and sum(e.split == "test" for e in a) == 5


# ------------------------------------------------------------------------------------------------ errors
def test_bad_inputs_are_one_line_errors(tmp_path):
    _dinucleotide_csv(tmp_path / "d.csv", n=20)
    with pytest.raises(InputError, match=r"d\.csv: no column 'target' \(columns: id, sequence, label\)"):
        load_examples(tmp_path / "d.csv", "classification", ColumnSpec(label_columns=["target"]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FormatError, match="empty.csv"):
        load_examples(tmp_path / "empty.csv", "classification", ColumnSpec())
    (tmp_path / "bad.csv").write_text("id,sequence,label\nq,ACGU,1\nr,ACXU,0\n")
    with pytest.raises(InputError, match=r"bad\.csv line 3: record 'r' position 3: invalid character 'X'"):
        load_examples(tmp_path / "bad.csv", "classification", ColumnSpec())
    (tmp_path / "test.csv").write_text("id,sequence,label\nz,ACGU,7\n")
    split = load_task_data(str(tmp_path / "d.csv"), "classification", ColumnSpec(),
                           test_path=str(tmp_path / "test.csv"))
    with pytest.raises(InputError, match=r"test\.csv: record 'z': label '7' is not one of the task's labels"):
        finetune(FinetuneConfig(task="classification", output_dir=str(tmp_path / "o"), encoder="onehot", epochs=1),
                 split, ColumnSpec(), OneHotConvEncoder(), data_path=str(tmp_path / "d.csv"))
    assert not (tmp_path / "o" / "task.json").exists()
    with pytest.raises(GenesisRNAError, match="structure model"):
        load_task_data(str(tmp_path / "d.csv"), "pair", ColumnSpec())


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    _dinucleotide_csv(tmp_path / "d.csv", n=20)
    out = tmp_path / "run"
    code = cli.main(["finetune", str(tmp_path / "d.csv"), "--task", "regression", "--label-column", "nope",
                     "--output-dir", str(out), "--encoder", "onehot"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no column 'nope'" in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ learning
def test_learns_a_sequence_task_that_needs_neighbours(tmp_path):
    """Equal composition per class: bare one-hot + mean pooling stays near chance, a 1-layer CNN does not."""
    _dinucleotide_csv(tmp_path / "d.csv", n=300)
    bare, _ = _run("classification", tmp_path / "d.csv", tmp_path / "bare", encoder="onehot", onehot_layers=0,
                   epochs=10, patience=10, monitor="accuracy")
    ctx, split = _run("classification", tmp_path / "d.csv", tmp_path / "ctx", encoder="onehot", onehot_layers=1,
                      onehot_width=32, onehot_kernel=3, epochs=10, patience=4, lr=3e-3, batch_size=16,
                      monitor="accuracy")
    labels = [e.target for e in split["test"]]
    chance = max(labels.count("0"), labels.count("1")) / len(labels)
    assert bare["test"]["accuracy"] < chance + 0.15
    assert ctx["test"]["accuracy"] > 0.9 > chance + 0.3


def test_conv_pooling_finds_a_motif_that_mean_pooling_misses(tmp_path):
    """A motif anywhere in 48 nt, negatives of equal composition: frozen one-hot rows + mean pooling cannot tell
    them apart; the same rows through ``--pooling conv`` (kernel 9 covers the 8-nt motif) can."""
    _motif_csv(tmp_path / "m.csv")
    kw = {"encoder": "onehot", "onehot_layers": 0, "epochs": 15, "patience": 15, "lr": 3e-3, "monitor": "accuracy"}
    mean, split = _run("classification", tmp_path / "m.csv", tmp_path / "mean", **kw)
    conv, _ = _run("classification", tmp_path / "m.csv", tmp_path / "conv", pooling="conv", **kw)
    labels = [e.target for e in split["test"]]
    chance = max(labels.count("0"), labels.count("1")) / len(labels)
    assert mean["test"]["accuracy"] < chance + 0.15
    assert conv["test"]["accuracy"] > 0.9


def test_learns_a_per_nucleotide_label_of_the_next_base(tmp_path):
    _neighbour_jsonl(tmp_path / "t.jsonl")
    spec = ColumnSpec(label_columns=["next_g"])
    bare, _ = _run("token-classification", tmp_path / "t.jsonl", tmp_path / "bare", spec, encoder="onehot",
                   onehot_layers=0, epochs=8)
    ctx, _ = _run("token-classification", tmp_path / "t.jsonl", tmp_path / "ctx", spec, encoder="onehot",
                  onehot_layers=1, onehot_width=32, onehot_kernel=3, epochs=8)
    assert bare["test"]["auroc"] < 0.6  # a position's own base says nothing about the next one
    assert ctx["test"]["auroc"] > 0.99 and ctx["test"]["accuracy"] > 0.9  # chance (all 'not G') ~ 0.75
    assert (tmp_path / "ctx" / "training_curves.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (tmp_path / "ctx" / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines][:2] == ["start", "epoch"] and lines[-1]["kind"] == "final"


def test_head_conv_layers_give_frozen_rows_context(tmp_path):
    """Bare one-hot rows cannot say what the next base is; ``--head-conv-layers 1`` on the same frozen rows can,
    and the saved model directory rebuilds the context layers."""
    _neighbour_jsonl(tmp_path / "t.jsonl")
    spec = ColumnSpec(label_columns=["next_g"])
    ctx, _ = _run("token-classification", tmp_path / "t.jsonl", tmp_path / "hc", spec, encoder="onehot",
                  onehot_layers=0, head_conv_layers=1, epochs=8)
    assert ctx["test"]["auroc"] > 0.99
    _, head, info = load_finetuned(tmp_path / "hc")
    assert info["head_conv_layers"] == 1 and len(head.context.convs) == 1
    with pytest.raises(InputError, match="--pooling conv"):
        _run("classification", tmp_path / "t.jsonl", tmp_path / "bad", ColumnSpec(label_columns=["fold"]),
             encoder="onehot", head_conv_layers=1)


def test_genesis_encoder_frozen_and_full_modes_run_and_save(tmp_path):
    """A tiny random genesis encoder: frozen caches features, full trains the encoder (crop below window)."""
    from genesis_rna import pretrained
    from genesis_rna.model.encoder import GenesisRNAModel

    _neighbour_jsonl(tmp_path / "t.jsonl", n=60)
    spec = ColumnSpec(label_columns=["next_g"])
    split = load_task_data(str(tmp_path / "t.jsonl"), "token-regression", spec, test_fraction=0.2)
    for mode in ("frozen", "full"):
        model, _ = pretrained.random_model("small", seed=0, d_model=32, n_layers=1, n_heads=2, dim_ff=64, max_len=34)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        cfg = FinetuneConfig(task="token-regression", output_dir=str(tmp_path / mode), mode=mode, epochs=2,
                             dtype="fp32", head_conv_layers=1)
        res = finetune(cfg, split, spec, model)
        assert {"mcrmse", "spearman"} <= set(res["test"])
        changed = any(not np.allclose(before[k], v) for k, v in model.state_dict().items())
        assert changed == (mode == "full")
        enc, head, info = load_finetuned(tmp_path / mode)
        assert isinstance(enc, GenesisRNAModel) and info["mode"] == mode
        assert (info["feature_norm"] is not None) == (mode == "frozen")


# ------------------------------------------------------------------------------------------------ nRC
NRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "classification" / "nrc"


def test_kmer_features_by_hand():
    from genesis_rna.evaluate.nrc import kmer_features

    x = kmer_features(["AACN", "GG"], ks=(1, 2))
    # k=1 columns A C G U; k=2 columns AA AC AG AU CA ... (16); frequencies over L-k+1 windows, N skipped
    np.testing.assert_allclose(x[0, :4], [2 / 4, 1 / 4, 0, 0])
    np.testing.assert_allclose(x[0, 4:6], [1 / 3, 1 / 3])
    assert x[0, 6:].sum() == 0
    np.testing.assert_allclose(x[1, :4], [0, 0, 1, 0])
    assert x[1, 4 + 10] == 1.0 and x[1].sum() == 2.0  # GG = index 2*4+2


def test_nrc_reader_labels_real_data():
    if not NRC.is_dir():
        pytest.skip("nRC data not available")
    from genesis_rna.evaluate.nrc import read_nrc

    ex = read_nrc(NRC / "test.fa")
    assert len(ex) == 2600 and len({e.target for e in ex}) == 13
    first = (NRC / "test.fa").read_text().splitlines()[0].split()
    assert (ex[0].id, ex[0].target) == (first[0][1:], first[1])
    assert set("".join(e.sequence for e in ex)) <= set("ACGUN")


@pytest.mark.integration
def test_nrc_kmer_probe_beats_chance_on_real_data():
    if not NRC.is_dir():
        pytest.skip("nRC data not available")
    pytest.importorskip("sklearn")
    from genesis_rna.evaluate.nrc import kmer_features, linear_probe, read_nrc

    train, test = read_nrc(NRC / "train.fa")[::5], read_nrc(NRC / "test.fa")[::5]
    res = linear_probe(kmer_features([e.sequence for e in train]), [e.target for e in train],
                       kmer_features([e.sequence for e in test]), [e.target for e in test], cs=(0.1, 1.0), folds=3)
    assert res["test_accuracy"] > 3 / 13  # chance is 1/13
