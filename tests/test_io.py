"""Tests of genesis_rna.io: FASTA, CT, BPSEQ, DBN and Stockholm, read and write.

Expected values come from outside the code under test: small hand-made files whose answers were worked out by
hand (written next to each file), Biopython's FASTA and Stockholm parsers, a few-line reference parser of
column formats and bracket strings written here, and real data (ArchiveII CT files against the sincFold CSV,
the Rfam seed against its own ``#=GF SQ`` counts, nRC/GtRNAdb FASTA against Biopython). Round trips use
``hypothesis``; the written text is also checked with the independent parsers, so a writer and reader that
agree on a wrong format would still fail.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import string
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from Bio import AlignIO, SeqIO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genesis_rna.errors import FormatError, InputError, SequenceError
from genesis_rna.io import (
    SequenceRecord,
    StructureRecord,
    iter_fasta,
    read_bpseq,
    read_ct,
    read_dbn,
    read_fasta,
    read_stockholm,
    read_structures,
    write_bpseq,
    write_ct,
    write_dbn,
    write_fasta,
    write_stockholm,
    write_structures,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (expected ../shared/data beside the clone)")
    return path


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    return message


# ------------------------------------------------------------------------------------------------------------
# independent references
# ------------------------------------------------------------------------------------------------------------

_IUPAC = set("RYKMSWBDHV")


def ref_normalise(raw: str) -> str:
    """docs/architecture.md's normalisation, written out per character: upper case, T->U, IUPAC->N, gaps dropped."""
    out = []
    for c in raw.upper():
        if c in "-.~" or c.isspace():
            continue
        out.append("U" if c == "T" else "N" if c in _IUPAC else c)
    return "".join(out)


def ref_bracket_pairs(text: str, pages: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """0-based sorted pairs of a bracket string, one stack per bracket kind (enough for what writers write)."""
    stacks: dict[str, list[int]] = {o: [] for o, _ in pages}
    closer_of = {c: o for o, c in pages}
    pairs = []
    for k, ch in enumerate(text):
        if ch in stacks:
            stacks[ch].append(k)
        elif ch in closer_of:
            pairs.append((stacks[closer_of[ch]].pop(), k))
        else:
            assert ch == ".", ch
    assert not any(stacks.values())
    return sorted(pairs)


DOTBRACKET_PAGES = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">")] + list(
    zip(string.ascii_uppercase, string.ascii_lowercase, strict=True))
WUSS_WRITTEN_PAGES = [("<", ">")] + list(zip(string.ascii_uppercase, string.ascii_lowercase, strict=True))


def ref_column_pairs(path: Path, partner_col: int) -> tuple[str, list[tuple[int, int]]]:
    """Bases and 0-based pairs from a one-structure CT/BPSEQ file: lines of integers with the base second."""
    bases, pairs = [], set()
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) <= partner_col or not fields[0].isdigit() or not fields[partner_col].isdigit():
            continue
        i, j = int(fields[0]), int(fields[partner_col])
        bases.append(fields[1])
        if j:
            pairs.add((min(i, j) - 1, max(i, j) - 1))
    return "".join(bases), sorted(pairs)


def pairs_of(partner) -> list[tuple[int, int]]:
    return sorted((i, int(j)) for i, j in enumerate(partner) if j > i)


# ------------------------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------------------------

IDS = st.text(alphabet=string.ascii_letters + string.digits + "_.-|/:", min_size=1, max_size=20)
DESCRIPTIONS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30
).map(str.strip).filter(lambda d: not d.startswith("="))  # "id = x" after an id "dG" would read as a CT energy


@st.composite
def structure_records(draw, max_len: int = 40) -> StructureRecord:
    """Any valid structure: random disjoint pairs, so nested stems and pseudoknots of any depth occur."""
    n = draw(st.integers(1, max_len))
    order = draw(st.permutations(range(n)))
    k = draw(st.integers(0, n // 2))
    partner = np.full(n, -1, dtype=np.int64)
    for a, b in zip(order[0:2 * k:2], order[1:2 * k:2], strict=True):
        partner[a], partner[b] = b, a
    seq = draw(st.text(alphabet="ACGUN", min_size=n, max_size=n))
    return StructureRecord(draw(IDS), seq, partner, draw(DESCRIPTIONS))


def unique_ids(records: list) -> list:
    seen, out = set(), []
    for rec in records:
        if rec.id not in seen:
            seen.add(rec.id)
            out.append(rec)
    return out


def assert_same_structures(got: list[StructureRecord], want: list[StructureRecord]) -> None:
    assert [(r.id, r.sequence, r.description) for r in got] == [(r.id, r.sequence, r.description) for r in want]
    for g, w in zip(got, want, strict=True):
        assert pairs_of(g.partner) == pairs_of(w.partner)


# ============================================================================================================
# FASTA
# ============================================================================================================

# Multi-line records, blank lines, CRLF, lower case, descriptions with several words. Known answer by hand.
MESSY_FASTA = (
    ">tRNA-Phe yeast phenylalanine tRNA\r\n"
    "GCGGAUUUAG\r\nCUCAGUUGGGA\r\n"
    "\r\n"
    ">dna_hairpin  a DNA   hairpin \r\n"
    "gggaaattcc\r\n"
    "cc\r\n"
    ">single\r\n"
    "ACGU\r\n"
)
MESSY_EXPECTED = [
    ("tRNA-Phe", "GCGGAUUUAGCUCAGUUGGGA", "yeast phenylalanine tRNA"),
    ("dna_hairpin", "GGGAAAUUCCCC", "a DNA   hairpin"),
    ("single", "ACGU", ""),
]


def test_fasta_multiline_crlf_known_answer(tmp_path):
    path = write(tmp_path / "messy.fa", MESSY_FASTA)
    got = [(r.id, r.sequence, r.description) for r in read_fasta(path)]
    assert got == MESSY_EXPECTED
    assert [(r.id, r.sequence) for r in iter_fasta(path)] == [(i, s) for i, s, _ in MESSY_EXPECTED]


def test_fasta_agrees_with_biopython_on_hand_made_file(tmp_path):
    path = write(tmp_path / "messy.fa", MESSY_FASTA)
    ours = read_fasta(path)
    theirs = list(SeqIO.parse(path, "fasta"))
    assert [r.id for r in ours] == [r.id for r in theirs]
    assert [r.sequence for r in ours] == [ref_normalise(str(r.seq)) for r in theirs]


def test_fasta_gzip_by_magic_bytes(tmp_path):
    plain = read_fasta(write(tmp_path / "messy.fa", MESSY_FASTA))
    gz = tmp_path / "messy.fa.gz"
    gz.write_bytes(gzip.compress(MESSY_FASTA.encode()))
    assert read_fasta(gz) == plain
    hidden = tmp_path / "no_extension.fa"  # gzip recognised by content, not name
    hidden.write_bytes(gzip.compress(MESSY_FASTA.encode()))
    assert read_fasta(hidden) == plain


def test_fasta_corrupt_gzip_is_a_one_line_error(tmp_path):
    data = gzip.compress((MESSY_FASTA * 50).encode())
    path = write(tmp_path / "cut.fa.gz", data[: len(data) // 2])
    with pytest.raises(FormatError) as err:
        read_fasta(path)
    assert str(path) in one_line(err)


def test_fasta_duplicate_ids_are_refused_naming_id_and_lines(tmp_path):
    path = write(tmp_path / "dup.fa", ">a first\nACGU\n>b\nGG\n>a second\nCC\n")
    with pytest.raises(FormatError) as err:
        read_fasta(path)
    message = one_line(err)
    assert str(path) in message and "record 'a'" in message and "duplicate" in message
    assert "line 5" in message and "line 1" in message
    both = read_fasta(path, allow_duplicates=True)
    assert [(r.id, r.sequence) for r in both] == [("a", "ACGU"), ("b", "GG"), ("a", "CC")]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("acgt", "ACGU"),  # upper case, T -> U
        ("TTtt", "UUUU"),
        ("RYKMSWBDHVN", "N" * 11),  # IUPAC ambiguity codes -> N
        ("ryk", "NNN"),
        ("ACGU\nAC GU", "ACGUACGU"),  # whitespace inside and between lines
    ],
)
def test_fasta_normalisation(tmp_path, raw, expected):
    path = write(tmp_path / "n.fa", f">r\n{raw}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about here
        assert read_fasta(path)[0].sequence == expected


def test_fasta_gaps_removed_with_one_warning_counting_them(tmp_path):
    path = write(tmp_path / "aln.fa", ">a\nAC-GU..\n>b\nA~~C\n>c\nACGU\n")
    with pytest.warns(UserWarning) as caught:
        records = read_fasta(path)
    assert [r.sequence for r in records] == ["ACGU", "AC", "ACGU"]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "5 alignment gap" in message and "2 record" in message


@pytest.mark.parametrize(
    "content, line, record, position, shown",
    [
        # hand-counted: positions are 1-based over the record's letters as written (gaps counted),
        # the line is the file line holding the bad character
        (">a\nACGUX\n", 2, "a", 5, "'X'"),
        (">a\nACGU\n>b desc\nAC-G\nUU1A\n", 5, "b", 7, "'1'"),
        (">a\nAC*G\n", 2, "a", 3, "'*'"),
        (">a\nACGU\nACGU\nACEU\n", 4, "a", 11, "'E'"),
        (">a\nAC\x01GU\n", 2, "a", 3, "'\\x01'"),
        (">a\nA.C.G.Z\n", 2, "a", 7, "'Z'"),
    ],
)
def test_fasta_bad_character_names_record_line_position(tmp_path, content, line, record, position, shown):
    path = write(tmp_path / "bad.fa", content)
    with pytest.raises(SequenceError) as err:
        read_fasta(path)
    message = one_line(err)
    assert message.startswith(f"{path} line {line}: record '{record}' position {position}: ")
    assert f"invalid character {shown}" in message


def test_fasta_protein_is_reported_as_protein(tmp_path):
    path = write(tmp_path / "prot.fa", ">rna\nACGU\n>sp|P69905|HBA_HUMAN hemoglobin alpha\n"
                 "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHFDLSHGSAQVKGHGKKVADALTNAVAH\n")
    with pytest.raises(SequenceError) as err:
        read_fasta(path)
    message = one_line(err)
    assert "record 'sp|P69905|HBA_HUMAN'" in message and "looks like a protein sequence" in message
    assert str(path) in message


@pytest.mark.parametrize("content", ["", "\n\n   \n", "\r\n"])
def test_fasta_empty_file(tmp_path, content):
    path = write(tmp_path / "empty.fa", content)
    with pytest.raises(FormatError) as err:
        read_fasta(path)
    message = one_line(err)
    assert str(path) in message and "no FASTA records" in message


@pytest.mark.parametrize(
    "content, record",
    [(">a\n>b\nACGU\n", "a"), (">a\nACGU\n>b\n", "b"), (">a\nACGU\n>b\n---\n", "b"), (">only\n", "only")],
)
def test_fasta_zero_length_record(tmp_path, content, record):
    path = write(tmp_path / "zero.fa", content)
    with pytest.raises(SequenceError) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_fasta(path)
    message = one_line(err)
    assert f"record '{record}'" in message and "zero-length" in message and str(path) in message


@pytest.mark.parametrize(
    "content",
    [
        bytes(random.Random(0).randrange(256) for _ in range(4096)),  # random bytes
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),  # an image
        b">a\nAC\x00GU\n",  # NUL inside an otherwise valid file
        b">a\nAC\xff\xfeGU\n",  # not UTF-8
        "ACGU\n>a\nACGU\n",  # sequence before any header
    ],
    ids=["random", "png", "nul", "not-utf8", "no-header"],
)
def test_fasta_binary_garbage_is_a_one_line_format_error(tmp_path, content):
    path = write(tmp_path / "garbage.fa", content)
    with pytest.raises(FormatError) as err:
        read_fasta(path)
    assert str(path) in one_line(err)


def test_fasta_missing_file(tmp_path):
    path = tmp_path / "nope.fa"
    with pytest.raises(InputError) as err:
        read_fasta(path)
    message = one_line(err)
    assert str(path) in message and "No such file" in message


def test_fasta_write_known_text(tmp_path):
    path = tmp_path / "out.fa"
    n = write_fasta([SequenceRecord("a", "ACGUACGUAC", "two words"), ("b", "GG")], path, line_width=4)
    assert n == 2
    assert path.read_text() == ">a two words\nACGU\nACGU\nAC\n>b\nGG\n"


@pytest.mark.parametrize("record", [("has space", "ACGU"), ("", "ACGU"), ("a", ""), ("a", "AC GU")])
def test_fasta_write_refuses_what_would_not_read_back(tmp_path, record):
    path = tmp_path / "out.fa"
    with pytest.raises(InputError):
        write_fasta([("ok", "ACGU"), record], path)
    assert os.listdir(tmp_path) == []  # nothing half-written, no temporary left


@PROPERTY
@given(
    records=st.lists(st.builds(SequenceRecord, IDS, st.text(alphabet="ACGUN", min_size=1, max_size=150),
                               DESCRIPTIONS), min_size=1, max_size=8).map(unique_ids),
    width=st.one_of(st.none(), st.integers(1, 90)),
    gz=st.booleans(),
)
def test_fasta_round_trip_and_biopython_reads_what_we_write(tmp_path, records, width, gz):
    path = tmp_path / ("rt.fa.gz" if gz else "rt.fa")
    assert write_fasta(records, path, line_width=width) == len(records)
    assert read_fasta(path) == records
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8") as fh:
        theirs = list(SeqIO.parse(fh, "fasta"))
    assert [(r.id, str(r.seq)) for r in theirs] == [(r.id, r.sequence) for r in records]
    assert [r.description for r in theirs] == [f"{r.id} {r.description}".strip() for r in records]


@PROPERTY
@given(st.text(alphabet="ACGTUacgtuRYKMSWBDHVNrykmswbdhvn-.~", min_size=1, max_size=60))
def test_fasta_normalisation_matches_reference(tmp_path, raw):
    path = write(tmp_path / "p.fa", f">r\n{raw}\n")
    expected = ref_normalise(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not expected:
            with pytest.raises(SequenceError, match="zero-length"):
                read_fasta(path)
        else:
            assert read_fasta(path)[0].sequence == expected


@pytest.mark.parametrize("relpath", ["classification/nrc/test.fa", "pretrain/trna_gtrnadb/eschColi_K_12_MG1655-tRNAs.fa"])
def test_fasta_real_files_agree_with_biopython(relpath):
    path = need(DATA / relpath)
    ours = read_fasta(path)
    theirs = list(SeqIO.parse(path, "fasta"))
    assert len(ours) == len(theirs) > 0
    assert [r.id for r in ours] == [r.id for r in theirs]
    assert [r.sequence for r in ours] == [ref_normalise(str(r.seq)) for r in theirs]
    assert [r.description for r in ours] == [" ".join(r.description.split(None, 1)[1:]).strip() for r in theirs]


def test_fasta_nrc_counts_from_readme():
    """README: test.fa has 2,600 sequences, 200 per class, 39-1,182 nt; the class is the description."""
    records = read_fasta(need(DATA / "classification/nrc/test.fa"))
    assert len(records) == 2600
    classes: dict[str, int] = {}
    for r in records:
        classes[r.description] = classes.get(r.description, 0) + 1
    assert len(classes) == 13 and set(classes.values()) == {200}
    assert min(map(len, records)) == 39 and max(map(len, records)) == 1182


@pytest.mark.integration
def test_fasta_gzip_real_file_agrees_with_biopython():
    """84,464 GtRNAdb tRNAs (gzip): same ids and normalised sequences as Biopython (about 5 s).

    The file reuses ids (2,822 ids occur more than once, e.g. ``Bos_taurus_chr3.trna854-AsnGTT`` at two loci),
    so the default read refuses it, naming the first repeated id; ``allow_duplicates=True`` reads it all.
    """
    path = need(DATA / "pretrain/trna_gtrnadb/eukaryotic-tRNAs.fa.gz")
    with pytest.raises(FormatError, match="record 'Bos_taurus_chr3.trna854-AsnGTT': duplicate"):
        read_fasta(path)
    ours = read_fasta(path, allow_duplicates=True)
    with gzip.open(path, "rt") as fh:
        theirs = [(r.id, ref_normalise(str(r.seq))) for r in SeqIO.parse(fh, "fasta")]
    assert len(ours) == 84464
    assert [(r.id, r.sequence) for r in ours] == theirs
    assert len(ours) - len({r.id for r in ours}) >= 2822


# ============================================================================================================
# CT
# ============================================================================================================

# A 12-nt hairpin of three pairs 1-12, 2-11, 3-10 (1-based), RNAstructure-style header with energy.
HAIRPIN_CT = """\
   12  ENERGY = -3.4  hp1 a small hairpin
    1 G       0    2   12    1
    2 G       1    3   11    2
    3 C       2    4   10    3
    4 A       3    5    0    4
    5 A       4    6    0    5
    6 a       5    7    0    6
    7 T       6    8    0    7
    8 U       7    9    0    8
    9 R       8   10    0    9
   10 G       9   11    3   10
   11 C      10   12    2   11
   12 C      11    0    1   12
"""


def test_ct_known_answer(tmp_path):
    (rec,) = read_ct(write(tmp_path / "hp.ct", HAIRPIN_CT))
    assert rec.id == "hp1"
    assert rec.description == "a small hairpin ENERGY = -3.4"
    assert rec.sequence == "GGCAAAUUNGCC"  # a -> A, T -> U, R -> N
    assert rec.pairs == [(0, 11), (1, 10), (2, 9)]
    assert rec.dotbracket == "(((......)))"


def test_ct_several_structures_gzip_and_header_without_name(tmp_path):
    second = "4\n1 G 0 2 4 1\n2 A 1 3 0 2\n3 A 2 4 0 3\n4 C 3 0 1 4\n"
    path = tmp_path / "two.ct.gz"
    path.write_bytes(gzip.compress((HAIRPIN_CT + second).encode()))
    recs = read_ct(path)
    assert [r.id for r in recs] == ["hp1", "two"]  # no name: the file name's stem (without .ct.gz)
    assert recs[1].sequence == "GAAC" and recs[1].pairs == [(0, 3)]
    assert read_structures(path) == recs


@pytest.mark.parametrize(
    "content, fragment, line",
    [
        ("3 x\n1 G 0 2 3 1\n2 A 1 3 0 2\n3 C 2 0 2 3\n", "paired with 3, but 3 is paired with 2", 2),
        ("3 x\n1 G 0 2 4 1\n2 A 1 3 0 2\n3 C 2 0 0 3\n", "partner 4 out of range", 2),
        ("3 x\n1 G 0 2 0 1\n2 A 1 3 2 2\n3 C 2 0 0 3\n", "paired with itself", 3),
        ("3 x\n1 G 0 2 0 1\n3 A 1 3 0 2\n3 C 2 0 0 3\n", "index 3, expected 2", 3),
        ("3 x\n1 G 0 2 0 1\n2 A 1 3 z 2\n3 C 2 0 0 3\n", "not an integer", 3),
        ("3 x\n1 G 0 2 0 1\n2 A 1 3 0 2\n3 X 2 0 0 3\n", "invalid character 'X'", 4),
        ("4 x\n1 G 0 2 0 1\n2 A 1 3 0 2\n", "promises 4 nucleotides", None),
        ("x y\n1 G 0 2 0 1\n", "not an integer", 1),
    ],
)
def test_ct_errors_name_file_record_and_line(tmp_path, content, fragment, line):
    path = write(tmp_path / "bad.ct", content)
    with pytest.raises(InputError) as err:
        read_ct(path)
    message = one_line(err)
    assert fragment in message and str(path) in message
    if line is not None:
        assert f"{path} line {line}:" in message


@pytest.mark.parametrize("content", ["", b"\x00\x01\x02garbage\xff", bytes(random.Random(1).randrange(256) for _ in range(999))])
def test_ct_empty_and_binary(tmp_path, content):
    path = write(tmp_path / "bad.ct", content)
    with pytest.raises(FormatError) as err:
        read_ct(path)
    assert str(path) in one_line(err)


def test_ct_write_known_text(tmp_path):
    rec = StructureRecord("hp", "GAAAC", np.array([4, -1, -1, -1, 0]), "test")
    write_ct(rec, tmp_path / "hp.ct")
    assert (tmp_path / "hp.ct").read_text() == (
        "5\thp test\n1\tG\t0\t2\t5\t1\n2\tA\t1\t3\t0\t2\n3\tA\t2\t4\t0\t3\n4\tA\t3\t5\t0\t4\n5\tC\t4\t0\t1\t5\n")


@PROPERTY
@given(records=st.lists(structure_records(), min_size=1, max_size=4))
def test_ct_round_trip(tmp_path, records):
    path = tmp_path / "rt.ct"
    assert write_ct(records, path) == len(records)
    assert_same_structures(read_ct(path), records)
    if len(records) == 1:  # the written columns, read by a plain split
        bases, pairs = ref_column_pairs(path, partner_col=4)
        assert bases == records[0].sequence and pairs == pairs_of(records[0].partner)


# ============================================================================================================
# BPSEQ
# ============================================================================================================

CRW_BPSEQ = """\
Filename: d.5.b.E.coli.bpseq
Organism: Escherichia coli
Accession Number: V00336
Citation and related information available at http://www.rna.ccbb.utexas.edu
1 G 9
2 G 8
3 A 0
4 A 0
5 A 10
6 U 0
7 C 0
8 C 2
9 C 1
10 u 5
"""


def test_bpseq_crw_header_known_answer(tmp_path):
    rec = read_bpseq(write(tmp_path / "x.bpseq", CRW_BPSEQ))
    assert rec.id == "d.5.b.E.coli.bpseq"
    assert rec.sequence == "GGAAAUCCCU"
    assert rec.pairs == [(0, 8), (1, 7), (4, 9)]  # pairs 5-10 crosses 2-8 and 1-9: a pseudoknot
    assert rec.dotbracket == "((..[..))]"


def test_bpseq_comment_id_and_stem(tmp_path):
    rec = read_bpseq(write(tmp_path / "c.bpseq", "# my_rna some words\n1 G 3\n2 A 0\n3 C 1\n"))
    assert (rec.id, rec.description, rec.pairs) == ("my_rna", "some words", [(0, 2)])
    rec = read_bpseq(write(tmp_path / "plain.bpseq", "1 G 0\n2 A 0\n"))
    assert (rec.id, rec.sequence, rec.pairs) == ("plain", "GA", [])


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("1 G 3\n2 A 0\n3 C 0\n", "paired with 3, but 3 is unpaired"),
        ("1 G 0\n2 A\n", "expected 'index base partner'"),
        ("1 G 0\n3 A 0\n", "index 3, expected 2"),
        ("1 G 7\n2 A 0\n", "out of range"),
        ("", "no BPSEQ nucleotide lines"),
        ("1 G 0\n2 J 0\n", "invalid character 'J'"),
    ],
)
def test_bpseq_errors(tmp_path, content, fragment):
    path = write(tmp_path / "bad.bpseq", content)
    with pytest.raises(InputError) as err:
        read_bpseq(path)
    message = one_line(err)
    assert fragment in message and str(path) in message


def test_bpseq_write_known_text_and_one_structure_per_file(tmp_path):
    rec = StructureRecord("hp", "GAAC", np.array([3, -1, -1, 0]), "d")
    write_bpseq(rec, tmp_path / "hp.bpseq")
    assert (tmp_path / "hp.bpseq").read_text() == "# hp d\n1 G 4\n2 A 0\n3 A 0\n4 C 1\n"
    with pytest.raises(InputError, match="one structure per file"):
        write_structures([rec, rec], tmp_path / "two.bpseq")
    assert not (tmp_path / "two.bpseq").exists()


@PROPERTY
@given(rec=structure_records())
def test_bpseq_round_trip(tmp_path, rec):
    path = tmp_path / "rt.bpseq"
    write_bpseq(rec, path)
    assert_same_structures([read_bpseq(path)], [rec])
    bases, pairs = ref_column_pairs(path, partner_col=2)
    assert bases == rec.sequence and pairs == pairs_of(rec.partner)


# ============================================================================================================
# DBN (dot-bracket, 3 lines per record)
# ============================================================================================================

DBN = """\
>hp1 an RNAfold hairpin
GGGAAAUCC
(((...))) (-1.20)
>pk H-type pseudoknot
GGGAAACCCAAAGGGAAACCC
(((...[[[...)))...]]]

>dna
ggtaccc
((...))
"""


def test_dbn_known_answer(tmp_path):
    recs = read_dbn(write(tmp_path / "x.dbn", DBN))
    assert [(r.id, r.description, r.sequence) for r in recs] == [
        ("hp1", "an RNAfold hairpin", "GGGAAAUCC"),
        ("pk", "H-type pseudoknot", "GGGAAACCCAAAGGGAAACCC"),
        ("dna", "", "GGUACCC"),
    ]
    assert recs[0].pairs == [(0, 8), (1, 7), (2, 6)]
    assert recs[1].pairs == [(0, 14), (1, 13), (2, 12), (6, 20), (7, 19), (8, 18)]
    assert recs[2].pairs == [(0, 6), (1, 5)]


def test_dbn_bare_two_lines_takes_file_stem(tmp_path):
    (rec,) = read_dbn(write(tmp_path / "bare.dbn", "GGAAACC\n((...))\n"))
    assert (rec.id, rec.pairs) == ("bare", [(0, 6), (1, 5)])


@pytest.mark.parametrize(
    "content, fragment, line",
    [
        (">x\nGGGAAACCC\n(((...))\n", "dot-bracket has length 8 but the sequence has length 9", 3),
        (">x\nGGAAACC\n((...)).\n", "length 8", 3),
        (">x\nGGAAACC\n(((...)\n", "unmatched opening bracket", 3),
        (">x\nGGAAACC\n((...)]\n", "unmatched closing bracket", 3),
        (">x\nGGAAACC\n((.?.))\n", "invalid dot-bracket character '?'", 3),
        (">x\nGGAAACC\n", "no dot-bracket line", 2),
        (">x\n", "no sequence line", 1),
        (">x\nGG-AACC\n((...))\n", "gap '-' not allowed", 2),
        (">x\nGGXAACC\n((...))\n", "invalid character 'X'", 2),
        (">x\nGGAAACC\n((...))\nACGU\n", "expected a '>' header line", 4),
    ],
)
def test_dbn_errors(tmp_path, content, fragment, line):
    path = write(tmp_path / "bad.dbn", content)
    with pytest.raises(InputError) as err:
        read_dbn(path)
    message = one_line(err)
    assert fragment in message
    assert message.startswith(f"{path} line {line}:")


def test_dbn_empty_and_binary(tmp_path):
    for content in ["", b"\x1f\x8bnot really gzip", b"\xde\xad\xbe\xef\x00"]:
        path = write(tmp_path / "bad.dbn", content)
        with pytest.raises(FormatError) as err:
            read_dbn(path)
        assert str(path) in one_line(err)


@PROPERTY
@given(records=st.lists(structure_records(), min_size=1, max_size=4), gz=st.booleans())
def test_dbn_round_trip(tmp_path, records, gz):
    path = tmp_path / ("rt.dbn.gz" if gz else "rt.dbn")
    assert write_dbn(records, path) == len(records)
    assert_same_structures(read_dbn(path), records)
    text = (gzip.decompress(path.read_bytes()).decode() if gz else path.read_text()).splitlines()
    for k, rec in enumerate(records):  # the written dot-bracket lines, read by a plain stack parser
        assert text[3 * k + 1] == rec.sequence
        assert ref_bracket_pairs(text[3 * k + 2], DOTBRACKET_PAGES) == pairs_of(rec.partner)


# ============================================================================================================
# Stockholm
# ============================================================================================================

# Two families; the structures of every sequence projected by hand (columns 0-based):
# Family "toy": SS_cons "<<<-____>>>" pairs columns (0,10) (1,9) (2,8).
#   s1 "GGG-AAAC.CC": gaps at columns 3 and 8, so (2,8) is dropped; residues at columns 0,1,2,4,5,6,7,9,10
#      become 0..8, so (0,10) -> (0,8) and (1,9) -> (1,7).
#   s2 "GG-aAAAACCC": gap at column 2 (5' side of (2,8)), dropped; columns 0,1,3..10 -> 0..9: (0,9) (1,8).
#   s3 "GGGUAAAC-CU": gap at column 8 (3' side of (2,8)), dropped; columns 0..7,9,10 -> 0..9: (0,9) (1,8).
# Family "knot": SS_cons "<<AA..>>aa": brackets (1,6) (0,7), letters (3,8) (2,9) -- (1,6) crosses (3,8).
#   p1 "GGCGA.CCGC": gap at the unpaired column 5; columns after it shift down by one:
#      (0,7)->(0,6) (1,6)->(1,5) (2,9)->(2,8) (3,8)->(3,7).
#   p2 "GGCGAACC-C": gap at column 8 drops (3,8); column 9 -> 8: (0,7) (1,6) (2,8).
STOCKHOLM = """\
# STOCKHOLM 1.0
#=GF AC   RF99999
#=GF ID   toy
#=GS s2 DE second sequence
s1/1-9         GGG-AAAC.CC
s2             GG-aAAAACCC
s3             GGGUAAAC-CU
#=GC SS_cons   <<<-____>>>
//
# STOCKHOLM 1.0
#=GF AC   RF99998
#=GF ID   knot
p1             GGCGA.CCGC
p2             GGCGAACC-C
#=GC SS_cons   <<AA..>>aa
//
"""


def test_stockholm_projection_known_answer(tmp_path):
    path = write(tmp_path / "toy.sto", STOCKHOLM)
    fams = read_stockholm(path)
    assert [(f.accession, f.name, f.n_skipped) for f in fams] == [("RF99999", "toy", 0), ("RF99998", "knot", 0)]
    s1, s2, s3 = fams[0].records
    assert (s1.id, s1.sequence, s1.pairs, s1.description) == ("s1/1-9", "GGGAAACCC", [(0, 8), (1, 7)], "")
    assert (s2.id, s2.sequence, s2.pairs, s2.description) == (
        "s2", "GGAAAAACCC", [(0, 9), (1, 8)], "second sequence")
    assert (s3.id, s3.sequence, s3.pairs) == ("s3", "GGGUAAACCU", [(0, 9), (1, 8)])
    p1, p2 = fams[1].records
    assert (p1.sequence, p1.pairs) == ("GGCGACCGC", [(0, 6), (1, 5), (2, 8), (3, 7)])
    assert (p2.sequence, p2.pairs) == ("GGCGAACCC", [(0, 7), (1, 6), (2, 8)])
    # read_structures flattens all families, in file order
    assert [r.id for r in read_structures(path)] == ["s1/1-9", "s2", "s3", "p1", "p2"]


def test_stockholm_projection_agrees_with_biopython_columns(tmp_path):
    """The same projection computed from Biopython's parse of the alignment with a per-column reference."""
    path = write(tmp_path / "toy.sto", STOCKHOLM)
    ours = [r for f in read_stockholm(path) for r in f.records]
    theirs = []
    for aln in AlignIO.parse(path, "stockholm"):
        ss = re.sub(r"[-_,:~]", ".", aln.column_annotations["secondary_structure"])
        col_pairs = ref_bracket_pairs(ss, [("<", ">"), ("A", "a")])
        for row in aln:
            text = str(row.seq)
            keep = [c for c, ch in enumerate(text) if ch not in "-.~"]
            new = {c: k for k, c in enumerate(keep)}
            pairs = sorted((new[a], new[b]) for a, b in col_pairs if a in new and b in new)
            theirs.append((row.id, ref_normalise("".join(text[c] for c in keep)), pairs))
    assert [(r.id, r.sequence, r.pairs) for r in ours] == theirs


@pytest.mark.parametrize(
    "ss, pairs",
    [
        ("<(..)>", [(0, 5), (1, 4)]),  # WUSS: all bracket kinds share one stack
        ("[<..>]", [(0, 5), (1, 4)]),
        ("{,_-:~}", [(0, 6)]),  # ,_-:~ are unpaired
        ("<A.>a", [(0, 3), (1, 4)]),
    ],
)
def test_stockholm_wuss_characters(tmp_path, ss, pairs):
    seq = "G" * len(ss)
    path = write(tmp_path / "w.sto", f"# STOCKHOLM 1.0\nx  {seq}\n#=GC SS_cons  {ss}\n//\n")
    (fam,) = read_stockholm(path)
    assert fam.records[0].pairs == pairs


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("# STOCKHOLM 1.0\nx  GGAACC\n//\n", "no '#=GC SS_cons'"),
        ("# STOCKHOLM 1.0\nx  GGAACC\n#=GC SS_cons  <(..>)\n//\n", "closes"),
        ("# STOCKHOLM 1.0\nx  GGAACC\n#=GC SS_cons  <<..>\n//\n", "not a valid Stockholm"),
        ("# STOCKHOLM 1.0\nx  GGAACC\ny  GGA\n#=GC SS_cons  <<..>>\n//\n", "not a valid Stockholm"),
        ("# STOCKHOLM 1.0\nx  GGJACC\n#=GC SS_cons  <<..>>\n//\n", "record 'x' position 3: invalid character 'J'"),
        ("", "no Stockholm alignments"),
        (b"\x00\x01binary", "NUL"),
    ],
)
def test_stockholm_errors(tmp_path, content, fragment):
    path = write(tmp_path / "bad.sto", content)
    with pytest.raises(InputError) as err:
        read_stockholm(path)
    message = one_line(err)
    assert fragment in message and str(path) in message


def test_stockholm_skip_mode_counts_bad_sequences(tmp_path):
    path = write(tmp_path / "s.sto", "# STOCKHOLM 1.0\nx  GGJACC\ny  GGAACC\n#=GC SS_cons  <<..>>\n//\n")
    (fam,) = read_stockholm(path, on_error="skip")
    assert fam.n_skipped == 1 and [r.id for r in fam.records] == ["y"]


def test_stockholm_latin1_and_utf8_free_text(tmp_path):
    """Rfam mixes Latin-1 and UTF-8 in #=GF lines; both decode, and UTF-8 ids/descriptions read back."""
    content = ("# STOCKHOLM 1.0\n#=GF ID   caf\u00e9\n#=GF DE   Schr\u00f6dinger\n".encode("latin-1")
               + "#=GS x DE 5\u2032 leader\n".encode() + b"x  GGAACC\n#=GC SS_cons  <<..>>\n//\n")
    (fam,) = read_stockholm(write(tmp_path / "enc.sto", content))
    assert fam.name == "caf\u00e9"
    assert fam.records[0].description == "5\u2032 leader"


def test_stockholm_writer_refuses_markup_ids(tmp_path):
    rec = StructureRecord("#=GC", "GAAC", np.array([3, -1, -1, 0]))
    with pytest.raises(InputError, match="'#'"):
        write_stockholm([rec], tmp_path / "x.sto")
    assert os.listdir(tmp_path) == []


@PROPERTY
@given(records=st.lists(structure_records(), min_size=1, max_size=4))
def test_stockholm_round_trip_and_biopython_reads_it(tmp_path, records):
    path = tmp_path / "rt.sto"
    assert write_stockholm(records, path) == len(records)
    fams = read_stockholm(path)
    assert [f.name for f in fams] == [r.id for r in records]
    assert_same_structures([r for f in fams for r in f.records], records)
    alignments = list(AlignIO.parse(path, "stockholm"))
    assert len(alignments) == len(records)
    for aln, rec in zip(alignments, records, strict=True):
        assert [(row.id, str(row.seq)) for row in aln] == [(rec.id, rec.sequence)]
        ss = aln.column_annotations["secondary_structure"]
        assert ref_bracket_pairs(ss, WUSS_WRITTEN_PAGES) == pairs_of(rec.partner)


def test_stockholm_rfam_seed_counts():
    """The whole Rfam 14.2 seed: 3,026 families, 72,262 sequences (README), each family's record count equal
    to its own ``#=GF SQ`` line, accessions RF00001.. in order; nothing skipped. About 6 s on 2 busy cores."""
    path = need(DATA / "pretrain/rfam14.2_seed/Rfam.seed.gz")
    sq: list[int] = []
    accessions: list[str] = []
    with gzip.open(path, "rt", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("#=GF SQ"):
                sq.append(int(line.split()[2]))
            elif line.startswith("#=GF AC"):
                accessions.append(line.split()[2])
    fams = read_stockholm(path)
    assert len(fams) == len(sq) == 3026
    assert sum(len(f.records) for f in fams) == sum(sq) == 72262
    assert [len(f.records) for f in fams] == sq
    assert [f.accession for f in fams] == accessions
    assert all(f.n_skipped == 0 for f in fams)
    first = fams[0].records[0]  # RF00001 (5S rRNA): real seeds have paired bases after projection
    assert fams[0].accession == "RF00001" and len(first.pairs) > 20


# ============================================================================================================
# ArchiveII: every CT file, and agreement with the sincFold CSV
# ============================================================================================================


def test_archiveii_all_ct_files_parse_and_match_csv():
    """All 3,975 ArchiveII ``.ct`` files parse; where a CT is in ``ArchiveII.csv`` its pairs equal the CSV's.

    How ids correspond: the CSV's ``id`` column is the CT *file name* without ``.ct`` (e.g.
    ``16s_A.fulgidus_domain1``). The name inside the CT header is not usable for this: many headers are the
    original database names (``CRW_00020.ct``, ``uncu.mari._TRW-363180/1-347``, ``A.fulgidus_domain1
    nucleotides 1 through 511``). The CSV's columns are ``id, sequence, len, structure, base_pairs``, with
    ``base_pairs`` a JSON list of 1-based ``[i, j]`` and ``structure`` a dot-bracket string using ``()``,
    ``<>`` and ``{}``; both are compared. The CSV holds the 3,864 structures of at most 512 nt.
    Measured: about 1.5 s on this 2-core machine, so it is not marked integration.
    """
    ct_dir = need(DATA / "structure/archiveII_ct")
    csv_path = need(DATA / "structure/archiveII_csv/ArchiveII.csv")
    start = time.perf_counter()
    by_stem: dict[str, StructureRecord] = {}
    for path in sorted(ct_dir.glob("*.ct")):
        recs = read_ct(path)
        assert len(recs) == 1, path
        assert len(recs[0]) >= 28
        by_stem[path.name[: -len(".ct")]] = recs[0]
    assert len(by_stem) == 3975
    families: dict[str, int] = {}
    for stem in by_stem:
        family = stem.split("_")[0]
        families[family] = families.get(family, 0) + 1
    assert families == {"5s": 1283, "srp": 928, "tRNA": 557, "tmRNA": 462, "RNaseP": 454, "16s": 110,
                        "grp1": 98, "telomerase": 37, "23s": 35, "grp2": 11}  # README's counts

    csv.field_size_limit(1 << 24)
    matched = 0
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            rec = by_stem[row["id"]]
            expected = sorted((min(i, j) - 1, max(i, j) - 1) for i, j in json.loads(row["base_pairs"]))
            assert rec.sequence == row["sequence"], row["id"]
            assert len(rec) == int(row["len"]), row["id"]
            assert rec.pairs == expected, row["id"]
            assert ref_bracket_pairs(row["structure"], [("(", ")"), ("<", ">"), ("{", "}")]) == expected
            matched += 1
    assert matched == 3864
    assert time.perf_counter() - start < 60


# ============================================================================================================
# format dispatch and output safety
# ============================================================================================================


@pytest.mark.parametrize("name", ["x.ct", "x.bpseq", "x.dbn", "x.sto", "x.ct.gz", "x.dbn.gz"])
def test_write_structures_dispatches_by_extension(tmp_path, name):
    rec = StructureRecord("x", "GGAAACC", np.array([6, 5, -1, -1, -1, 1, 0]), "")
    assert write_structures(rec, tmp_path / name) == 1
    assert read_structures(tmp_path / name) == [rec]
    if name.endswith(".gz"):
        assert (tmp_path / name).read_bytes()[:2] == b"\x1f\x8b"


def test_unknown_structure_extension(tmp_path):
    with pytest.raises(FormatError, match="unknown structure file extension"):
        read_structures(tmp_path / "x.txt")


def test_outputs_have_ordinary_permissions(tmp_path):
    """Writers go through a temporary file (0o600 from tempfile); the result must look like a plain open()."""
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    expected = reference.stat().st_mode & 0o777
    rec = StructureRecord("x", "GAAC", np.array([3, -1, -1, 0]))
    write_fasta([rec], tmp_path / "a.fa")
    write_ct(rec, tmp_path / "a.ct.gz")
    for name in ("a.fa", "a.ct.gz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name


def test_failed_write_keeps_previous_file(tmp_path):
    path = write(tmp_path / "keep.fa", ">old\nACGU\n")
    with pytest.raises(InputError):
        write_fasta([("new", "ACGU"), ("bad id", "AC")], path)
    assert path.read_text() == ">old\nACGU\n"
    assert sorted(os.listdir(tmp_path)) == ["keep.fa"]


@pytest.mark.parametrize(
    "name, content, reader",
    [
        ("bom.fa", ">a\nACGU\n", read_fasta),
        ("bom.ct", "4 a\n1 G 0 2 4 1\n2 A 1 3 0 2\n3 A 2 4 0 3\n4 C 3 0 1 4\n", read_ct),
        ("bom.dbn", ">a\nGAAC\n(..)\n", read_dbn),
        ("bom.sto", "# STOCKHOLM 1.0\na  GAAC\n#=GC SS_cons  <..>\n//\n",
         lambda p: [r for f in read_stockholm(p) for r in f.records]),
    ],
)
def test_utf8_byte_order_mark_is_ignored(tmp_path, name, content, reader):
    """Windows editors (Notepad) save UTF-8 with a byte-order mark; it is not part of the first line."""
    (rec,) = reader(write(tmp_path / name, b"\xef\xbb\xbf" + content.encode()))
    assert (rec.id, rec.sequence) == ("a", "ACGU" if name.endswith(".fa") else "GAAC")


def test_write_where_the_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    rec = StructureRecord("x", "GAAC", np.array([3, -1, -1, 0]))
    for target, writer in [("a.fa", lambda p: write_fasta([rec], p)), ("a.ct", lambda p: write_ct(rec, p)),
                           ("a.dbn.gz", lambda p: write_dbn(rec, p))]:
        path = tmp_path / "file" / target
        with pytest.raises(InputError) as err:
            writer(path)
        assert str(path) in one_line(err) and "cannot write file" in str(err.value)
    assert os.listdir(tmp_path) == ["file"]


def test_error_messages_are_single_lines_even_for_odd_headers(tmp_path):
    # tab in the header separates id and description; the vertical tab is whitespace and skipped like a line
    # break, so J is the 4th letter
    path = write(tmp_path / "odd.fa", ">weird\tid\nAC\x0bGJ\n")
    with pytest.raises(SequenceError) as err:
        read_fasta(path)
    assert re.fullmatch(r".* line 2: record 'weird' position 4: invalid character 'J'.*", one_line(err))
