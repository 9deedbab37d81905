"""mRNA codon optimisation: CAI by hand, translation and MFE against Biopython and ViennaRNA, input errors."""

from __future__ import annotations

import math
import random

import pytest
import RNA
from Bio.Data import CodonTable
from Bio.Seq import Seq

from genesis_rna.cli import main
from genesis_rna.design import mrna
from genesis_rna.errors import InputError

INSULIN = "MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQKRGIVEQCCTSICSLYQLENYCN"
SHORT = "MKTAYIAKQRQISFVKSHFSRQLEERLGL"


def _toy_table(tmp_path):
    """All codons usage 1 (w = 1) except Lys AAA 0.25 / AAG 0.75 and Phe UUU 0.4 / UUC 0.6."""
    special = {"AAA": 0.25, "AAG": 0.75, "UUU": 0.4, "UUC": 0.6}
    lines = ["# toy table", "codon\tamino_acid\tfraction"]
    lines += [f"{c}\t{aa}\t{special.get(c, 1.0)}" for c, aa in sorted(mrna.GENETIC_CODE.items())]
    path = tmp_path / "toy.tsv"
    path.write_text("\n".join(lines) + "\n")
    return mrna.load_codon_usage(path)


def test_cai_hand_computed(tmp_path):
    usage = _toy_table(tmp_path)
    # Met, Trp and the stop are left out; w(AAA) = 0.25/0.75, w(UUU) = 0.4/0.6, w(AAG) = 1.
    cds = "AUG" + "AAA" + "UUU" + "AAG" + "UGG" + "UAA"
    assert mrna.cai(cds, usage) == pytest.approx(((1 / 3) * (2 / 3) * 1.0) ** (1 / 3), rel=1e-12)
    assert math.isnan(mrna.cai("AUGUGGUAA", usage))  # nothing to average


@pytest.mark.parametrize("organism", sorted(mrna.ORGANISMS))
def test_shipped_tables(organism):
    usage = mrna.load_codon_usage(organism)
    assert "Kazusa" in usage.source and "Nakamura" in usage.source  # provenance travels with the numbers
    bio = CodonTable.unambiguous_rna_by_id[1]
    for codon, aa in mrna.GENETIC_CODE.items():
        assert aa == ("*" if codon in bio.stop_codons else bio.forward_table[codon])
    for codons in usage.synonyms.values():  # fractions of an amino acid sum to 1 up to the 2-decimal rounding
        assert sum(usage.fraction[c] for c in codons) == pytest.approx(1.0, abs=0.011 * len(codons))
    most = mrna.most_frequent_cds(INSULIN, usage)
    assert mrna.cai(most, usage) == pytest.approx(1.0, abs=1e-12)
    rng = random.Random(0)
    assert mrna.cai(mrna.random_cds(INSULIN, usage, rng), usage) < 1.0


def test_design_translates_and_reports_vienna_mfe():
    utr5, utr3 = "GGGAAAUAAGAGCCACC", "UGAUAAUAGGCUGG"
    designs = mrna.optimize_mrna(SHORT, "human", utr5=utr5, utr3=utr3, lam=1.0, n=2, steps=60, seed=1)
    assert 1 <= len(designs) <= 2
    for d in designs:
        assert d.mrna.startswith(utr5) and d.mrna.endswith(utr3)
        cds = d.mrna[d.cds_start - 1: d.cds_start - 1 + len(d.cds)]
        assert cds == d.cds
        assert str(Seq(cds).translate()) == SHORT + "*"
        structure, energy = RNA.fold(d.mrna)
        assert d.mfe == pytest.approx(energy, abs=1e-6) and d.structure == structure
        assert d.mfe_per_nt == pytest.approx(energy / len(d.mrna))
        assert d.gc == pytest.approx(sum(c in "GC" for c in d.mrna) / len(d.mrna))
        assert d.cai == pytest.approx(mrna.cai(cds, mrna.load_codon_usage("human")))


def test_lambda_trades_mfe_for_cai():
    usage = mrna.load_codon_usage("human")
    most = mrna.evaluate(mrna.most_frequent_cds(SHORT, usage), usage, lam=0.0)
    stable = mrna.optimize_mrna(SHORT, usage, lam=0.0, steps=80)[0]
    adapted = mrna.optimize_mrna(SHORT, usage, lam=1000.0, steps=80)[0]
    assert stable.mfe <= most.mfe  # the most-frequent-codon CDS is among the candidates, so never worse
    assert adapted.cai == pytest.approx(1.0)  # any non-optimal codon would cost >= 1000 * ln(0.53/0.47)


def test_cli_writes_fasta_and_summary(tmp_path, capsys):
    out = tmp_path / "d.fa"
    assert main(["optimize-mrna", "--protein", SHORT, "--organism", "ecoli", "--steps", "20", "-n", "2",
                 "--output", str(out), "--summary", str(tmp_path / "s.csv")]) == 0
    records = out.read_text().split(">")[1:]
    assert records and all("cai=" in r for r in records)
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["id", "protein_length", "mrna_length"] and len(rows) == len(records) + 1
    assert "MFE/nt" in capsys.readouterr().out


@pytest.mark.parametrize(("kind", "text", "expected"), [
    ("protein", "MKT*AYI", "stop '*' in the middle"),
    ("protein", "MKTBAYI", "'B' is not one of the 20"),
    ("protein", "missing/prots.fa", "missing/prots.fa: no such file"),
    ("cds", ">ok\nATGAAATAA\n>broken\nATGTAAAAAGGG\n", "record 'broken' position 4: stop codon UAA"),
    ("cds", ">short\nATGAAAAC\n", "record 'short': CDS length 8 is not a multiple of 3"),
    ("cds", ">prot\nMKTAYIAKQRQISFVK\n", "record 'prot'"),
])
def test_bad_input_is_one_line_error(tmp_path, capsys, kind, text, expected):
    arg = text
    if kind == "cds":
        arg = str(tmp_path / "in.fa")
        (tmp_path / "in.fa").write_text(text)
    out = tmp_path / "d.fa"
    assert main(["optimize-mrna", f"--{kind}", arg, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
    assert not out.exists()


def test_bad_table_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("codon\tamino_acid\tfraction\nAAA\tN\t0.5\n")
    with pytest.raises(InputError, match="line 2.*does not code for 'N'"):
        mrna.load_codon_usage(path)


def test_pseudo_log_likelihood_matches_one_mask_at_a_time():
    torch = pytest.importorskip("torch")
    from genesis_rna.pretrained import random_model
    from genesis_rna.tokenization import CLS_ID, MASK_ID, NUCLEOTIDE_IDS, SEP_ID

    model, _ = random_model("small", seed=0)
    seqs = ["GGGAAACCCUUAGC", "AUGC"]
    fast = mrna.lm_pseudo_log_likelihood(model, seqs, stride=100, batch_size=5)
    for seq, got in zip(seqs, fast, strict=True):
        ids = [CLS_ID, *(NUCLEOTIDE_IDS[c] for c in seq), SEP_ID]
        total = 0.0
        for p in range(1, len(seq) + 1):  # the textbook PLL: one sequence per masked position, unbatched
            masked = list(ids)
            masked[p] = MASK_ID
            with torch.no_grad():
                logits = model(torch.tensor([masked]), torch.ones(1, len(ids), dtype=torch.long))["mlm_logits"]
            total += float(torch.log_softmax(logits[0, p].float(), -1)[ids[p]])
        assert got == pytest.approx(total, abs=1e-3)


def test_lm_term_enters_the_objective():
    pytest.importorskip("torch")
    from genesis_rna.pretrained import random_model

    model, _ = random_model("small", seed=0)
    usage = mrna.load_codon_usage("human")
    designs = mrna.optimize_mrna("MKTAYIAKQR", usage, lam=2.0, n=2, steps=10, model=model, lm_weight=0.5, pool=3)
    for d in designs:
        (pll,) = mrna.lm_pseudo_log_likelihood(model, [d.mrna], stride=8)
        cost = -sum(math.log(usage.weight[d.cds[k:k + 3]]) for k in range(0, len(d.cds), 3)
                    if mrna.GENETIC_CODE[d.cds[k:k + 3]] not in "MW*")
        assert d.lm_score == pytest.approx(pll, abs=1e-4)
        assert d.objective == pytest.approx(RNA.fold(d.mrna)[1] + 2.0 * cost - 0.5 * pll, abs=1e-3)
    assert [d.objective for d in designs] == sorted(d.objective for d in designs)
