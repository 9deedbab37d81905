"""``genesis-rna finetune --task pair``: structure readers, learning, the fold hand-over, one-line errors.

Independent references: the structures are written by hand here as 1-based pair lists and rendered into each
file format by small helpers of this file (not the package's writers); learning is measured against the same
model untrained; folding goes through the real ``genesis-rna fold`` command and its .ct output is read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genesis_rna import cli
from genesis_rna.errors import InputError
from genesis_rna.finetune.data import ColumnSpec
from genesis_rna.finetune.structure import load_pair_examples, load_pair_splits

# two structures, the second with a pseudoknot: (id, sequence as written, dot-bracket, 1-based pairs)
RECORDS = [
    ("hp1", "GGGGAAAACCCCAA", "((((....))))..", [(1, 12), (2, 11), (3, 10), (4, 9)]),
    ("pk2", "gggaaaCCCaaaaGGGTTTCCC", "(((..[[[)))....]]]....",
     [(1, 11), (2, 10), (3, 9), (6, 18), (7, 17), (8, 16)]),
    ("br3", "GGGAAAACCC", "[[[....]]]", [(1, 10), (2, 9), (3, 8)]),  # a dot-bracket that looks like a list
]


def _rna(seq: str) -> str:
    return seq.upper().replace("T", "U")


def _partner(length: int, pairs) -> list[int]:
    p = [-1] * length
    for i, j in pairs:
        p[i - 1], p[j - 1] = j - 1, i - 1
    return p


def _one_based(partner: np.ndarray, k: int) -> int:
    return int(partner[k]) + 1


def _ct_text(rid: str, seq: str, pairs) -> str:
    p = _partner(len(seq), pairs)
    lines = [f"{len(seq)}\t{rid}"]
    lines += [f"{k + 1} {c} {k} {k + 2 if k + 1 < len(seq) else 0} {p[k] + 1} {k + 1}" for k, c in enumerate(seq)]
    return "\n".join(lines) + "\n"


def _bpseq_text(rid: str, seq: str, pairs) -> str:
    p = _partner(len(seq), pairs)
    return f"# {rid}\n" + "".join(f"{k + 1} {c} {p[k] + 1}\n" for k, c in enumerate(seq))


def _dbn_text(records) -> str:
    return "".join(f">{rid}\n{seq}\n{db}\n" for rid, seq, db, *_ in records)


def _stockholm_text(records) -> str:
    """One alignment per record: a gap column after base 4 (unpaired in SS_cons), the pairs in WUSS with
    pseudoknot pairs as a letter (A...a) and nested pairs alternating between () and <>."""
    blocks = []
    for k, (rid, seq, _, pairs) in enumerate(records):
        ss = ["."] * len(seq)
        for n, (i, j) in enumerate(pairs):
            crossing = any(a < i < b < j for a, b in pairs)  # crosses a pair opened earlier: a knot
            left, right = ("A", "a") if crossing else ("(", ")") if n % 2 else ("<", ">")
            ss[i - 1], ss[j - 1] = left, right
        row, cons = seq[:4] + "-" + seq[4:], "".join(ss[:4]) + "." + "".join(ss[4:])
        blocks.append(f"# STOCKHOLM 1.0\n#=GF AC RF9999{k}\n{rid} {row}\n#=GC SS_cons {cons}\n//\n")
    return "".join(blocks)


def test_dbn_ct_bpseq_stockholm_and_tables_give_the_same_partner_arrays(tmp_path):
    (tmp_path / "s.dbn").write_text(_dbn_text(RECORDS))
    (tmp_path / "s.ct").write_text("".join(_ct_text(r, s, p) for r, s, _, p in RECORDS))
    (tmp_path / "s.sto").write_text(_stockholm_text(RECORDS))
    (tmp_path / "bp").mkdir()
    for rid, seq, _, pairs in RECORDS:
        (tmp_path / "bp" / f"{rid}.bpseq").write_text(_bpseq_text(rid, seq, pairs))
    (tmp_path / "one.ct").write_text(_ct_text(*[RECORDS[0][k] for k in (0, 1, 3)]))
    (tmp_path / "db.csv").write_text("id,sequence,structure\n" + "".join(f"{r},{s},{d}\n" for r, s, d, _ in RECORDS))
    (tmp_path / "bp.tsv").write_text("name\tseq\tbase_pairs\n" + "".join(
        f"{r}\t{s}\t{json.dumps([list(x) for x in p])}\n" for r, s, _, p in RECORDS))
    (tmp_path / "bp.jsonl").write_text("".join(json.dumps({"id": r, "sequence": s, "pairs": [list(x) for x in p]})
                                               + "\n" for r, s, _, p in RECORDS))
    sources = {
        "dbn": (tmp_path / "s.dbn", ColumnSpec()),
        "ct": (tmp_path / "s.ct", ColumnSpec()),
        "stockholm": (tmp_path / "s.sto", ColumnSpec()),
        "bpseq dir": (tmp_path / "bp", ColumnSpec()),
        "csv dot-bracket": (tmp_path / "db.csv", ColumnSpec()),
        "tsv base_pairs": (tmp_path / "bp.tsv", ColumnSpec(sequence_column="seq", id_column="name")),
        "jsonl pairs": (tmp_path / "bp.jsonl", ColumnSpec(label_columns=["pairs"])),
    }
    for what, (path, spec) in sources.items():
        got = {e.id: e for e in load_pair_examples(path, spec)}  # a directory is read in file-name order
        assert sorted(got) == sorted(r[0] for r in RECORDS), what
        for rid, seq, _, pairs in RECORDS:
            assert got[rid].sequence == _rna(seq), what
            assert got[rid].target.tolist() == _partner(len(seq), pairs), what
    # several training files at once (a single .ct and a directory), ids kept
    split = load_pair_splits([tmp_path / "one.ct", tmp_path / "bp"], ColumnSpec(), valid_path=tmp_path / "s.dbn")
    assert [e.id for e in split["train"]] == ["hp1", "br3", "hp1#3", "pk2"] and len(split["valid"]) == 3
    assert _one_based(split["train"][3].target, 5) == 18  # the pseudoknot pair (6, 18) survives every reader


def test_splits_from_a_column_and_the_mixed_format_directory(tmp_path):
    rows = [("a", "train"), ("b", "valid"), ("c", "test"), ("d", "train")]
    (tmp_path / "s.csv").write_text("id,sequence,structure,part\n" + "".join(
        f"{r},GGGGAAAACCCC,((((....)))),{s}\n" for r, s in rows))
    split = load_pair_splits([tmp_path / "s.csv"], ColumnSpec(split_column="part"))
    assert {k: [e.id for e in v] for k, v in split.items()} == {"train": ["a", "d"], "valid": ["b"], "test": ["c"]}
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "x.ct").write_text(_ct_text("x", "GGGGAAAACCCC", [(1, 12)]))
    (tmp_path / "mixed" / "x.bpseq").write_text(_bpseq_text("x", "GGGGAAAACCCC", [(1, 12)]))
    with pytest.raises(InputError, match=r"mixed: directory holds bpseq and ct files"):
        load_pair_examples(tmp_path / "mixed", ColumnSpec())


@pytest.mark.parametrize("name, text, spec, message", [
    ("len.csv", "id,sequence,structure\nr1,GGGGAAAACCCC,((((....))))\nr2,GGGAAACCC,(((...)))..\n", {},
     r"len\.csv line 3: record 'r2': dot-bracket has length 11 but the sequence has length 9"),
    ("range.csv", 'id,sequence,base_pairs\nr1,GGGAAACCC,"[[1, 9], [2, 12]]"\n', {},
     r"range\.csv line 2: record 'r1': pair \(2, 12\) is out of range 1\.\.9"),
    ("twice.jsonl", '{"id": "r1", "sequence": "GGGAAACCC", "base_pairs": [[1, 9], [1, 8]]}\n', {},
     r"twice\.jsonl line 1: record 'r1' position 1: paired with both 9 and 8"),
    ("empty.dbn", "", {}, r"empty\.dbn: no DBN records"),
    ("nocol.csv", "id,sequence,label2\nr1,GGGAAACCC,.........\n", {}, r"nocol\.csv: no structure column"),
    ("seqs.fa", ">r1\nGGGAAACCC\n", {}, r"seqs\.fa: pair tasks need structures"),
    ("novalid.dbn", ">r1\nGGGGAAAACCCC\n((((....))))\n>r2\nGGGGAAAACCCC\n((((....))))\n", {},
     r"novalid\.dbn: no validation structures \(--valid-fraction 0\.1 of 2 structures leaves none\)"),
    ("nocolvalid.csv", "id,sequence,structure,s\nr1,GGGAAACCC,(((...))),train\n", {"split_column": "s"},
     r"no validation structures \(split column 's' has no validation rows\)"),
])
def test_bad_structures_are_one_line_errors(tmp_path, name, text, spec, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=message) as err:
        load_pair_splits([tmp_path / name], ColumnSpec(**spec))
    assert "\n" not in str(err.value)


def test_cli_unbalanced_dotbracket_exits_2_with_one_line_and_no_output(tmp_path, capsys):
    (tmp_path / "train.dbn").write_text(">ok\nGGGGAAAACCCC\n((((....))))\n>bad_one\nGGGGAAAACCCC\n((((....))).\n")
    out = tmp_path / "runs" / "model"
    code = cli.main(["finetune", str(tmp_path / "train.dbn"), "--task", "pair", "--encoder", "none",
                     "--no-vienna", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("genesis-rna: error: ")
    assert "train.dbn" in err and "record 'bad_one'" in err and "unmatched opening bracket" in err
    assert not (tmp_path / "runs").exists()


def _hairpins(n: int, rng: np.random.Generator) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """A random 5-bp Watson-Crick stem around a random 4-nt loop between random flanks.

    Everything random: an untrained model decoded with the canonical-pair rule still finds many possible
    pairs, so only a model that learnt what a stem looks like scores well.
    """
    comp = {"A": "U", "U": "A", "G": "C", "C": "G"}
    out = []

    def rand(k: int) -> str:
        return "".join(rng.choice(list("ACGU"), k))

    for k in range(n):
        left = rand(5)
        f5, f3 = rand(int(rng.integers(2, 8))), rand(int(rng.integers(2, 8)))
        seq = f5 + left + rand(4) + "".join(comp[c] for c in reversed(left)) + f3
        s = len(f5)
        out.append((f"h{k}", seq, [(s + t + 1, s + 14 - t) for t in range(5)]))
    return out


def _db(seq: str, pairs) -> str:
    db = ["."] * len(seq)
    for i, j in pairs:
        db[i - 1], db[j - 1] = "(", ")"
    return "".join(db)


def test_learns_hairpins_and_fold_uses_the_trained_model(tmp_path, capsys):
    from genesis_rna.io import read_ct
    from genesis_rna.structure.model import build_structure_model
    from genesis_rna.structure.pairs import pair_metrics
    from genesis_rna.structure.train import PairExample, evaluate_f1

    rng = np.random.default_rng(0)
    train, valid, test = _hairpins(64, rng), _hairpins(16, rng), _hairpins(8, rng)
    (tmp_path / "train.dbn").write_text(_dbn_text([(r, s, _db(s, p)) for r, s, p in train]))
    (tmp_path / "valid.dbn").write_text(_dbn_text([(r, s, _db(s, p)) for r, s, p in valid]))
    (tmp_path / "test.csv").write_text("id,sequence,base_pairs\n" + "".join(
        f'{r},{s},"{json.dumps([list(x) for x in p])}"\n' for r, s, p in test))
    out = tmp_path / "model"
    code = cli.main(["finetune", str(tmp_path / "train.dbn"), "--task", "pair", "--valid", str(tmp_path / "valid.dbn"),
                     "--test", str(tmp_path / "test.csv"), "--encoder", "none", "--no-vienna", "--channels", "8",
                     "--epochs", "3", "--steps-per-epoch", "64", "--lr", "1e-2", "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "valid F1" in captured.out and f"--model {out}" in captured.out
    written = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "metrics.jsonl", "training_curves.png"} <= written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # no staging directory left

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert rows[0]["kind"] == "start" and rows[-1]["kind"] == "final" and 1 <= len(epochs) <= 3
    assert all({"train_loss", "valid_f1", "threshold", "elapsed_s"} <= set(r) for r in epochs)
    cfg = json.loads((out / "config.json").read_text())
    training = cfg["training"]
    assert cfg["model_type"] == "genesis-rna-fold" and cfg["encoder"] is None and cfg["use_vienna"] is False
    assert (training["n_train"], training["n_valid"], training["n_test"]) == (64, 16, 8)
    assert training["data"]["train"] == [str(tmp_path / "train.dbn")]
    assert training["best_valid_f1"] == max(r["valid_f1"] for r in epochs)

    torch.manual_seed(0)
    untrained = build_structure_model(None, channels=8)
    valid_ex = [PairExample(r, s, np.array(_partner(len(s), p))) for r, s, p in valid]
    before = max(evaluate_f1(untrained, valid_ex, (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)).values())
    assert training["best_valid_f1"] > before + 0.3 and training["best_valid_f1"] > 0.6
    assert rows[-1]["test"]["n"] == 8 and rows[-1]["test"]["f1"] > before + 0.3

    (tmp_path / "new.fa").write_text("".join(f">{r}\n{s}\n" for r, s, _ in test))
    code = cli.main(["fold", str(tmp_path / "new.fa"), "--model", str(out), "--no-vienna", "--format", "ct",
                     "--output", str(tmp_path / "folds"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    f1 = [pair_metrics(read_ct(tmp_path / "folds" / f"{r}.ct")[0].partner, _partner(len(s), p))["f1"]
          for r, s, p in test]
    assert np.mean(f1) == pytest.approx(rows[-1]["test"]["f1"])  # the test score is what fold produces

    code = cli.main(["predict", str(out), str(tmp_path / "new.fa"), "--output", str(tmp_path / "p.csv")])
    assert code == 2 and "genesis-rna fold" in capsys.readouterr().err


def test_output_directory_is_all_or_nothing(tmp_path, capsys):
    from genesis_rna._fileutil import atomic_dir

    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:  # a failure keeps the old directory as it was
        (Path(tmp) / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert [p.name for p in out.iterdir()] == ["old.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    with atomic_dir(out) as tmp:  # success replaces it whole
        (Path(tmp) / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    # the command refuses to replace a directory that is not a structure model, before training
    (tmp_path / "s.dbn").write_text(_dbn_text([(f"r{k}", "GGGGAAAACCCC", "((((....))))") for k in range(10)]))
    code = cli.main(["finetune", str(tmp_path / "s.dbn"), "--task", "pair", "--encoder", "none", "--no-vienna",
                     "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "not a structure model directory" in err and (out / "new.txt").is_file()
