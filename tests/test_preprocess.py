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

from genesis_rna.data.format import SPLITS
from genesis_rna.data.preprocess import preprocess
from genesis_rna.data.sources import iter_trnascan_ss
from genesis_rna.data.splits import DigestSet, assign_family_splits, assign_record_splits
from genesis_rna.data.store import ShardStore
from genesis_rna.errors import InputError

RNA = pytest.importorskip("RNA")

RFAM_SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain" / "rfam14.2_seed" / "Rfam.seed.gz"
if not RFAM_SEED.exists():
    RFAM_SEED = Path("/work/shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz")
TRNA = RFAM_SEED.parents[1] / "trna_gtrnadb" / "eukaryotic-tRNAs.fa.gz"
TRNA_SS = TRNA.parent / "araTha1-tRNAs-detailed.ss"

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
    assert manifest["structure_source"] == {"input": 0, "vienna_mfe": 3, "none": 0, "vienna_bpp": 0}
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


def test_split_helpers_keep_a_giant_family_out_of_small_splits():
    # one family holding a third of all records (GtRNAdb tRNAs given RF00005): it must land in train for
    # every seed, and the other splits still reach their shares
    sizes = np.r_[np.random.default_rng(1).integers(1, 60, 2000), 30_000]
    for seed in range(20):
        fam = assign_family_splits(sizes, (0.9, 0.05, 0.05), seed=seed)
        assert fam[-1] == 0, seed
        share = np.array([sizes[fam == k].sum() for k in range(3)]) / sizes.sum()
        assert np.allclose(share, [0.9, 0.05, 0.05], atol=0.01), (seed, share)


def test_digest_set_matches_python_set():
    rng = np.random.default_rng(0)
    values = [int(x) for x in rng.integers(0, 2**63, 3000, dtype=np.int64)] + [2**64 - 1, 0, 2**63 + 5]
    values += values[:500]  # repeats
    ds, ref = DigestSet(buffer_size=64), set()  # small buffer: many merges into the sorted array
    for v in values:
        assert ds.add(v) == (v not in ref)
        ref.add(v)
    assert len(ds) == len(ref)
    assert all(v in ds for v in ref) and (2**64 - 2) not in ds and 12345 not in ds
    assert ds.nbytes < 20 * len(ref)


def test_worker_module_does_not_import_torch():
    # workers are spawned and import this module: PyTorch there would cost ~200 MB per worker
    import subprocess
    import sys

    code = "import sys, genesis_rna.data.preprocess as p; p.process_chunk([('GGGAAACCC', None, True)]); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from genesis_rna.tokenization import NUCLEOTIDE_IDS as TOKENIZER_IDS
    from genesis_rna.vocab import NUCLEOTIDE_IDS

    assert NUCLEOTIDE_IDS == TOKENIZER_IDS


TRNASCAN_SS = """chrX.trna1 (100-172)\tLength: 13 bp
Type: Val\tAnticodon: TAC at 34-36 (133-135)\tScore: 74.4
HMM Sc=44.00\tSec struct Sc=30.40
         *    |    *
Seq: GGGtAAAACCCtA
Str: >>>.......<<<

chrX.trna2 (300-200)\tLength: 12 bp
Type: Phe\tAnticodon: GAA at 34-36 (267-265)\tScore: 78.3
Possible intron: 5-6 (296-295)
Seq: GCGCaaUUGCGC
Str: >>>>....<<<<

chrX.trna3 (500-511)\tLength: 12 bp
Seq: GCGCAAUUGCGC
Str: >>>>....<<<.

chrX.trna4 (600-611)\tLength: 12 bp
Seq: GCGCAAUUGCAA
Str: >>>.....<<<.
"""


def test_trnascan_ss_reader_and_store(tmp_path):
    ss = write(tmp_path / "x-detailed.ss", TRNASCAN_SS)
    recs = list(iter_trnascan_ss(ss))
    assert [r.id for r in recs] == ["chrX.trna1", "chrX.trna2", "chrX.trna3", "chrX.trna4"]
    assert recs[0].sequence == "GGGtAAAACCCtA" and recs[0].partner.tolist() == db_partners("(((.......)))")
    assert recs[2].partner is None and "chrX.trna3" in str(recs[2].error)  # unbalanced: record-level error
    report = run([ss], tmp_path / "store", min_len=5)
    assert (report.n_read, report.n_records, report.n_invalid) == (4, 3, 1)
    store = ShardStore(tmp_path / "store")
    got = {store[i].id: store[i] for i in range(len(store))}
    assert decode(got["chrX.trna2"].tokens) == "GCGCAAUUGCGC"  # lower case (intron) upper-cased, kept
    assert got["chrX.trna2"].partner.tolist() == db_partners("((((....))))")
    assert all(s.structure_source == "input" for s in got.values())
    with pytest.raises(InputError, match="chrX.trna3"):
        run([ss], tmp_path / "raise", min_len=5, on_error="raise")
    bad = write(tmp_path / "bad.ss", "chrX.trna1 (1-5)\tLength: 5 bp\nSeq: GGGAA\nStr: >>.<\n")
    with pytest.raises(InputError, match=r"bad\.ss.*'Seq:' has 5 letters but 'Str:' 4"):
        run([bad], tmp_path / "raise2", on_error="raise")


def test_input_families_put_a_file_into_one_split(tmp_path):
    (tmp_path / "fam").mkdir()
    fam_fa = write(tmp_path / "fam" / "a.fa",
                   "".join(f">t{i}\nGGGAAACCC{'ACGU'[i % 4] * (i % 9 + 2)}UUGC{i % 7 * 'A'}\n" for i in range(60)))
    free_fa = write(tmp_path / "free.fa", "".join(f">f{i}\nCCCUUUGGG{'UGCA'[i % 4] * (i % 11 + 3)}A{i % 5 * 'G'}\n"
                                                  for i in range(60)))
    report = run([fam_fa, free_fa], tmp_path / "store", fold_missing=False, split=(0.5, 0.25, 0.25),
                 input_families={tmp_path / "fam": "RF00005"})
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["splits"]["method"] == "family+record" and report.n_families == 1
    assert [s["family"] for s in manifest["sources"]] == ["RF00005", None]
    store = ShardStore(tmp_path / "store")
    fam_splits = {split for split in SPLITS for i in range(len(ShardStore(tmp_path / "store", split=split)))
                  if ShardStore(tmp_path / "store", split=split)[i].id.startswith("t")}
    assert len(fam_splits) == 1  # every record of the family file in one split
    assert sum(store[i].family == 0 for i in range(len(store))) == sum(1 for i in range(len(store))
                                                                       if store[i].id.startswith("t"))
    with pytest.raises(InputError, match="none of the inputs"):
        run([free_fa], tmp_path / "other", input_families={tmp_path / "fam": "RF00005"})


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

    from genesis_rna.cli.training import add_preprocess_arguments as add_arguments
    from genesis_rna.cli.training import run_preprocess_args as run_from_args

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


def wuss_column_pairs(ss: str) -> dict[int, int]:
    """Independent WUSS parser for the reference projection: <> () [] {} and Aa..Zz pseudoknot letters."""
    openers = {"<": ">", "(": ")", "[": "]", "{": "}"}
    closers = {v: k for k, v in openers.items()}
    stacks: dict[str, list[int]] = {}
    pairs: dict[int, int] = {}
    for i, c in enumerate(ss):
        if c in openers or (c.isalpha() and c.isupper()):
            stacks.setdefault(c, []).append(i)
        elif c in closers or (c.isalpha() and c.islower()):
            j = stacks[closers.get(c, c.upper())].pop()
            pairs[i], pairs[j] = j, i
    return pairs


def projected_rfam_records(text: str):
    """(name, sequence, partner, family) of every row of Stockholm ``text``, by plain string handling: gap
    columns removed, a consensus pair kept only when both of its columns hold a residue."""
    fam, rows, ss = None, [], ""
    for line in text.splitlines():
        if line.startswith("#=GF AC"):
            fam = line.split()[2]
        elif line.startswith("#=GC SS_cons "):  # not "#=GC SS_cons2" (an extra layer in 5 families)
            ss = line.split()[2]
        elif line.startswith("//"):
            pairs = wuss_column_pairs(ss)
            for name, aligned in rows:
                cols = [i for i, c in enumerate(aligned) if c not in "-.~"]
                new = {c: k for k, c in enumerate(cols)}
                seq = "".join(aligned[i] for i in cols).upper().replace("T", "U")
                seq = "".join("N" if c in "RYKMSWBDHV" else c for c in seq)
                yield name, seq, [new.get(pairs.get(c, -1), -1) for c in cols], fam
            fam, rows, ss = None, [], ""
        elif line.strip() and not line.startswith("#"):
            rows.append(tuple(line.split()))


@pytest.mark.integration
@pytest.mark.skipif(not (RFAM_SEED.exists() and TRNA.exists() and TRNA_SS.exists()), reason="data not available")
def test_real_slice_rfam_and_trnas(tmp_path):
    """The first 200 Rfam families (streamed from Rfam.seed.gz), the first 400 GtRNAdb tRNAs (folded) and the
    Arabidopsis tRNAscan-SE structures, with the tRNAs given Rfam's tRNA family: checked against references
    computed here (plain-text projection of SS_cons, Biopython's Stockholm and FASTA parsers, RNA.fold)."""
    import itertools
    import shutil

    from Bio import AlignIO, SeqIO

    text, _ = _first_families(200)
    sto = tmp_path / "rfam200.sto"
    sto.write_text(text, encoding="latin-1")
    trna_dir = tmp_path / "trna"
    trna_dir.mkdir()
    with gzip.open(TRNA, "rt") as fh:
        trna_fa = [(r.description, str(r.seq)) for r in itertools.islice(SeqIO.parse(fh, "fasta"), 400)]
    write(trna_dir / "euk400.fa", "".join(f">{d}\n{s}\n" for d, s in trna_fa))
    shutil.copy(TRNA_SS, trna_dir / TRNA_SS.name)
    out = tmp_path / "store"
    report = preprocess([sto, trna_dir], out, workers=2, progress=False, split=(0.8, 0.1, 0.1), seed=5,
                        input_families={trna_dir: "RF00005"})
    manifest = json.loads((out / "manifest.json").read_text())

    # reference records, in input order (Stockholm, then the directory sorted: .ss before .fa), first copy kept
    ss_recs = [(r.id, r.sequence.upper().replace("T", "U"), r.partner.tolist(), "RF00005")
               for r in iter_trnascan_ss(TRNA_SS)]
    fa_recs = [(d.split()[0], s.upper().replace("T", "U"), None, "RF00005") for d, s in trna_fa]
    expected, seen = [], set()
    for rec in itertools.chain(projected_rfam_records(text), ss_recs, fa_recs):
        if len(rec[1]) >= 10 and rec[1] not in seen:
            seen.add(rec[1])
            expected.append(rec)
    assert report.n_read == sum(1 for _ in projected_rfam_records(text)) + len(ss_recs) + len(fa_recs)
    assert report.n_records == len(expected) and report.n_invalid == 0

    # read the arrays directly (not through ShardStore) for the split check
    fam_col = np.concatenate([np.load(out / f"{s['name']}.family.npy") for s in manifest["shards"]])
    fam_ids = [f["id"] for f in manifest["families"]]
    split_fams = {}
    for split in SPLITS:
        idx = np.load(out / f"split-{split}.npy")
        split_fams[split] = {fam_ids[k] for k in set(fam_col[idx].tolist())}
        assert split_fams[split], f"{split} is empty"
    assert sum(len(np.load(out / f"split-{s}.npy")) for s in SPLITS) == report.n_records
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not split_fams[a] & split_fams[b], (a, b)
    assert len(set(fam_ids)) == 200 and (fam_col >= 0).all()

    store = ShardStore(out)
    n_pairs = n_canonical = 0
    canonical = {"GC", "CG", "AU", "UA", "GU", "UG"}
    for i, (name, seq, partner, fam) in enumerate(expected):
        sample = store[i]
        assert sample.id.split()[0] == name and decode(sample.tokens) == seq, i
        assert store.family_ids[sample.family] == fam
        got = sample.partner
        if partner is not None:  # Rfam projection and tRNAscan-SE structures: exactly the reference
            assert got.tolist() == partner, name
            assert sample.structure_source == "input"
        else:
            assert sample.structure_source == "vienna_mfe"
        paired = np.flatnonzero(got >= 0)
        assert (got[got[paired]] == paired).all() and (got[paired] != paired).all()  # symmetric, no self pair
        assert ((sample.struct == 1) == (got >= 0)).all()
        n_pairs += len(paired) // 2
        n_canonical += sum(seq[a] + seq[b] in canonical for a, b in zip(paired, got[paired], strict=True)
                           if a < b)
    assert n_canonical / n_pairs > 0.9  # projected consensus pairs are mostly Watson-Crick/GU

    # Biopython's parsers give the same sequences for a spread of records (a name may occur in two families)
    stored: dict[str, list] = {}
    for i in range(len(store)):
        stored.setdefault(store[i].id.split()[0], []).append(store[i])
    with open(sto, encoding="latin-1") as fh:
        rows = [row for aln in AlignIO.parse(fh, "stockholm") for row in aln]
    assert len(rows) == sum(1 for _ in projected_rfam_records(text))
    for row in rows[::37]:
        seq = "".join("N" if c in "RYKMSWBDHV" else c
                      for c in str(row.seq).replace("-", "").replace(".", "").upper().replace("T", "U"))
        if row.id in stored:
            assert seq in {decode(x.tokens) for x in stored[row.id]}, row.id
        else:
            assert seq in seen  # dropped as a duplicate of an earlier record
    for rec in list(SeqIO.parse(trna_dir / "euk400.fa", "fasta"))[::23]:
        seq = str(rec.seq).upper().replace("T", "U")
        for sample in stored.get(rec.id, []):
            assert decode(sample.tokens) == seq
            if sample.structure_source == "vienna_mfe":
                assert sample.partner.tolist() == db_partners(RNA.fold(seq)[0])
    # provenance: given structures for Rfam and tRNAscan-SE records, MFE for the FASTA tRNAs only
    n_fa = sum(1 for r in expected if r[2] is None)
    assert manifest["structure_source"] == {"input": len(expected) - n_fa, "vienna_mfe": n_fa, "none": 0, "vienna_bpp": 0}
    rf5 = fam_ids.index("RF00005")
    trna_split = [s for s in SPLITS if "RF00005" in split_fams[s]]
    assert len(trna_split) == 1 and (fam_col == rf5).sum() > 400
