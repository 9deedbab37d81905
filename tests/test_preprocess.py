"""preprocess(): raw files -> shard store, checked against independent references.

References: sequences are normalised by hand here (upper case, T->U), structures are parsed from the
dot-bracket strings written by the test or computed by calling ViennaRNA's ``RNA.fold`` directly, and the
Rfam slice's family membership is read from the Stockholm text with plain string handling.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from genesis_rna.data import ShardStore
from genesis_rna.errors import InputError
from genesis_rna.preprocess import (
    SPLITS,
    assign_family_splits,
    assign_record_splits,
    preprocess,
)

RNA = pytest.importorskip("RNA")

RFAM_SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain" / "rfam14.2_seed" / "Rfam.seed.gz"
if not RFAM_SEED.exists():
    RFAM_SEED = Path("/work/shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz")
TRNA = RFAM_SEED.parents[1] / "trna_gtrnadb" / "eukaryotic-tRNAs.fa.gz"

ID_OF = {"A": 4, "C": 5, "G": 6, "U": 7, "N": 8}


def decode(tokens: np.ndarray) -> str:
    inv = {v: k for k, v in ID_OF.items()}
    return "".join(inv[int(t)] for t in tokens)


def db_partners(db: str) -> list[int]:
    """Independent dot-bracket parser (one bracket type) for reference partners."""
    stack, out = [], [-1] * len(db)
    for i, c in enumerate(db):
        if c == "(":
            stack.append(i)
        elif c == ")":
            j = stack.pop()
            out[i], out[j] = j, i
    return out


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run(inputs, out, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return preprocess([os.fspath(p) for p in inputs], out, **kw)


FASTA = """>s1 first
acgtacgtggccaauugg
>s2 duplicate of s1 after normalisation
ACGUACGUGGCCAAUUGG
>s3
GGGGAAACCCCAUAUAUAGGGGAAACCCC
>short
ACGU
>s4 iupac
GGGRYAAACCCAUAUAUUUU
>s5 duplicate of s3
GGGGAAACCCCAUAUAUAGGGGAAACCCC
>bad has a digit
ACGU1ACGUACGU
"""


def test_fasta_round_trip_dedup_and_vienna_fold(tmp_path):
    fa = write(tmp_path / "in.fa", FASTA)
    report = run([fa], tmp_path / "store", min_len=10)
    # by hand: s2 and s5 are duplicates, 'short' is too short, 'bad' has an invalid letter
    assert (report.n_read, report.n_duplicates, report.n_too_short, report.n_invalid) == (7, 2, 1, 1)
    store = ShardStore(tmp_path / "store")
    expected = {"s1": "ACGUACGUGGCCAAUUGG", "s3": "GGGGAAACCCCAUAUAUAGGGGAAACCCC", "s4": "GGGNNAAACCCAUAUAUUUU"}
    assert [store[i].id for i in range(len(store))] == list(expected)
    for i, (rid, seq) in enumerate(expected.items()):
        sample = store[i]
        assert decode(sample.tokens) == seq
        db, _ = RNA.fold(seq)
        assert sample.partner.tolist() == db_partners(db), rid
        assert sample.structure_source == "vienna_mfe" and sample.family == -1
        assert ((sample.struct == 1) == (sample.partner >= 0)).all()  # STEM exactly at paired positions
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["structure_source"] == {"input": 0, "vienna_mfe": 3, "none": 0}
    assert manifest["counts"]["n_duplicates"] == 2 and manifest["splits"]["method"] == "record"
    assert "bad" in " ".join(manifest["skipped_messages"])
    assert store.lengths.tolist() == [len(s) for s in expected.values()]


def test_no_fold_stores_unknown_structure(tmp_path):
    fa = write(tmp_path / "in.fa", FASTA)
    run([fa], tmp_path / "store", fold_missing=False)
    sample = ShardStore(tmp_path / "store")[0]
    assert (sample.partner == -2).all() and (sample.struct == -100).all()
    assert sample.structure_source == "none"


def test_given_structures_dbn_and_ct(tmp_path):
    dbn = write(tmp_path / "x.dbn", ">hp1\nGGGGAAACCCCA\n((((...)))).\n>hp2\nGCGCUUUUGCGCAA\n((((....))))..\n")
    ct_lines = ["8 ctrec", *(f"{i} {b} {i - 1} {i + 1} {p} {i}" for i, (b, p) in
                             enumerate(zip("GGAAAUCC", [8, 7, 0, 0, 0, 0, 2, 1], strict=True), start=1))]
    ct = write(tmp_path / "y.ct", "\n".join(ct_lines) + "\n")
    run([dbn, ct], tmp_path / "store", min_len=5)
    store = ShardStore(tmp_path / "store")
    got = {store[i].id: store[i] for i in range(len(store))}
    assert got["hp1"].partner.tolist() == db_partners("((((...)))).")
    assert got["hp2"].partner.tolist() == db_partners("((((....))))..")
    assert got["ctrec"].partner.tolist() == [7, 6, -1, -1, -1, -1, 1, 0]
    assert all(s.structure_source == "input" for s in got.values())
    assert "".join("NSLBH"[x] for x in got["hp1"].struct) == "SSSSHHHSSSSN"


def _first_families(n_families: int) -> tuple[str, dict[str, set[str]]]:
    """The first ``n_families`` Stockholm blocks of Rfam.seed.gz, and each family's sequence names."""
    lines, members, acc, n = [], {}, None, 0
    with gzip.open(RFAM_SEED, "rt", encoding="latin-1") as fh:
        for line in fh:
            lines.append(line)
            if line.startswith("#=GF AC"):
                acc = line.split()[2]
                members[acc] = set()
            elif line.strip() and not line.startswith(("#", "//")):
                members[acc].add(line.split()[0])
            if line.startswith("//"):
                n += 1
                if n == n_families:
                    break
    return "".join(lines), members


@pytest.mark.skipif(not RFAM_SEED.exists(), reason="Rfam.seed.gz not available")
def test_rfam_slice_family_disjoint_splits(tmp_path):
    text, members = _first_families(30)
    sto = tmp_path / "slice.sto"
    sto.write_text(text, encoding="latin-1")
    report = run([sto], tmp_path / "store", split=(0.8, 0.1, 0.1), seed=3)
    assert report.n_families == 30 and report.structure_source["vienna_mfe"] == 0
    family_of = {name: acc for acc, names in members.items() for name in names}
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        store = ShardStore(tmp_path / "store", split=split)
        fams = {family_of[store[i].id] for i in range(len(store))}
        assert fams == set(store.split_families(split)), split
        assert all(store.family_ids[store[i].family] == family_of[store[i].id] for i in range(0, len(store), 7))
        seen[split] = fams
        assert fams, f"{split} is empty"
    assert not (seen["train"] & seen["validation"] or seen["train"] & seen["test"]
                or seen["validation"] & seen["test"])
    total = sum(len(ShardStore(tmp_path / "store", split=s)) for s in SPLITS)
    assert total == report.n_records
    assert ShardStore(tmp_path / "store", split="train").__len__() > 0.6 * total


@pytest.mark.skipif(not RFAM_SEED.exists(), reason="Rfam.seed.gz not available")
def test_rfam_slice_sequences_match_ungapped_alignment(tmp_path):
    text, _ = _first_families(2)
    sto = tmp_path / "slice.sto"
    sto.write_text(text, encoding="latin-1")
    run([sto], tmp_path / "store")
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith(("#", "//"))]
    expected = {}
    for name, aligned in rows:
        seq = "".join("N" if c in "RYKMSWBDHV" else c for c in aligned.upper() if c not in "-.~").replace("T", "U")
        expected.setdefault(seq, name)  # the first of identical sequences is kept
    store = ShardStore(tmp_path / "store")
    got = {decode(store[i].tokens): store[i].id for i in range(len(store))}
    assert got == {s: n for s, n in expected.items() if len(s) >= 10}


def test_workers_give_identical_output(tmp_path):
    fa = write(tmp_path / "in.fa", "".join(f">r{i}\n{'ACGU'[i % 4] * 3}GGGAAACCC{'AUGC' * (i % 7 + 1)}\n"
                                           for i in range(150)))
    run([fa], tmp_path / "a", workers=0)
    run([fa], tmp_path / "b", workers=2, shard_size=500)
    a, b = ShardStore(tmp_path / "a"), ShardStore(tmp_path / "b")
    assert len(b.manifest["shards"]) > 1
    assert len(a) == len(b)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.id == y.id and (x.tokens == y.tokens).all() and (x.partner == y.partner).all()


def test_split_helpers_reach_fractions():
    codes = assign_record_splits(1000, (0.9, 0.05, 0.05), seed=1)
    assert np.bincount(codes, minlength=3).tolist() == [900, 50, 50]
    sizes = np.random.default_rng(0).integers(1, 40, 300)
    fam = assign_family_splits(sizes, (0.8, 0.1, 0.1), seed=0)
    share = np.array([sizes[fam == k].sum() for k in range(3)]) / sizes.sum()
    assert np.allclose(share, [0.8, 0.1, 0.1], atol=0.02)
    assert (assign_family_splits(sizes, (0.8, 0.1, 0.1), seed=0) == fam).all()


# ------------------------------------------------------------------------------------------ bad inputs


BAD_INPUTS = {
    "protein.fa": b">p1\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQ\n",
    "garbage.fa": bytes(range(256)) * 4,
    "empty.fa": b"",
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raise_leaves_no_output(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(BAD_INPUTS[name])
    out = tmp_path / "store"
    with pytest.raises(InputError) as err:
        run([bad], out, on_error="raise")
    msg = str(err.value)
    assert "\n" not in msg and name in msg
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary directory left either


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_skipped_and_counted(tmp_path, name):
    bad = tmp_path / name
    bad.write_bytes(BAD_INPUTS[name])
    good = write(tmp_path / "good.fa", ">g1\nGGGGAAACCCCAAAAA\n")
    report = run([bad, good], tmp_path / "store", on_error="skip")
    assert report.n_records == 1
    assert report.n_invalid + report.n_files_skipped == 1
    assert any(name in m for m in report.skipped_messages)


def test_only_bad_input_is_an_error_even_when_skipping(tmp_path):
    bad = tmp_path / "protein.fa"
    bad.write_bytes(BAD_INPUTS["protein.fa"])
    with pytest.raises(InputError, match="no usable records"):
        run([bad], tmp_path / "store", on_error="skip")
    assert not (tmp_path / "store").exists()


def test_existing_output_and_bad_options(tmp_path):
    fa = write(tmp_path / "in.fa", FASTA)
    (tmp_path / "store").mkdir()
    with pytest.raises(InputError, match="already exists"):
        run([fa], tmp_path / "store")
    run([fa], tmp_path / "store", overwrite=True)
    assert ShardStore(tmp_path / "store").n_total == 3
    with pytest.raises(InputError, match="split"):
        run([fa], tmp_path / "other", split=(0.5, 0.2, 0.2))
    with pytest.raises(InputError, match="no such file"):
        run([tmp_path / "missing.fa"], tmp_path / "other")


def test_cli_argument_helpers(tmp_path):
    import argparse

    from genesis_rna.preprocess import add_arguments, run_from_args

    fa = write(tmp_path / "in.fa", FASTA)
    parser = add_arguments(argparse.ArgumentParser())
    argv = [os.fspath(fa), "-o", os.fspath(tmp_path / "store"), "--workers", "0", "--quiet", "--split",
            "0.8,0.1,0.1", "--no-fold"]
    report = run_from_args(parser.parse_args(argv), ["preprocess", *argv])
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["command"].startswith("genesis-rna preprocess ")
    assert report.structure_source["none"] == 3 and "records" in report.summary()


@pytest.mark.integration
@pytest.mark.skipif(not RFAM_SEED.exists(), reason="Rfam.seed.gz not available")
def test_full_rfam_seed(tmp_path):
    report = preprocess([RFAM_SEED], tmp_path / "rfam", workers=2, progress=False)
    # 72,262 seed sequences in 3,026 families (data README); duplicates across families are dropped
    assert report.n_read == 72_262
    assert report.n_records + report.n_duplicates + report.n_too_short + report.n_invalid == 72_262
    assert report.n_families > 2900 and report.structure_source["vienna_mfe"] == 0
    stores = [ShardStore(tmp_path / "rfam", split=s) for s in SPLITS]
    fams = [set(st.split_families(st.split)) for st in stores]
    assert not (fams[0] & fams[1] or fams[0] & fams[2] or fams[1] & fams[2])
