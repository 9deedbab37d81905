"""Tests of RNA design (genesis_rna.design.inverse) and ``genesis-rna design``.

Independent references: every design is refolded with ViennaRNA's ``RNA.fold`` (the MFE structure must be the
target); pairs are checked against the canonical + wobble set written out here; the reported ensemble defect is
recomputed from ViennaRNA's base-pair probability matrix with the textbook formula (mean over positions of
1 - probability of the target state); GC content is counted by hand; the pseudo-log-likelihood is recomputed
from one direct forward per masked position; the FASTA output is read back with Biopython.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import RNA
import torch
from Bio import SeqIO

from genesis_rna.cli import main
from genesis_rna.design.inverse import design, parse_target, pseudo_log_likelihood, read_targets
from genesis_rna.errors import StructureError
from genesis_rna.pretrained import random_model

VALID_PAIRS = {"AU", "UA", "GC", "CG", "GU", "UG"}
TARGETS = ["((((....))))", "..((((...))))..((((....))))..", "((((((...((((....))))...((((....))))..))))))......"]
TOKEN_IDS = {"A": 4, "C": 5, "G": 6, "U": 7}


@pytest.fixture(scope="module")
def model():
    return random_model("small", seed=0)[0]


def pair_list(db: str) -> list[tuple[int, int]]:
    stack, pairs = [], []
    for i, c in enumerate(db):
        if c == "(":
            stack.append(i)
        elif c == ")":
            pairs.append((stack.pop(), i))
    return pairs


def defect_from_bpp(seq: str, target: str) -> float:
    """Normalised ensemble defect: 1 - (sum_i P(i in its target state)) / L, from RNA's bpp matrix."""
    fc = RNA.fold_compound(seq)
    _, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    n = len(seq)
    p = np.array(fc.bpp())[1:, 1:]
    p = p + p.T
    partner = {i: j for i, j in pair_list(target)} | {j: i for i, j in pair_list(target)}
    correct = sum(p[i, partner[i]] if i in partner else 1 - p[i].sum() for i in range(n))
    return 1 - correct / n


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("with_lm", [False, True])
def test_designs_fold_into_target(target, with_lm, model):
    designs = design(target, 2, model=model if with_lm else None, seed=1, time_limit=30)
    assert len(designs) == 2
    for d in designs:
        assert RNA.fold(d.sequence)[0] == target, d.sequence
        assert d.solved and d.mfe_structure == target
        assert all(d.sequence[i] + d.sequence[j] in VALID_PAIRS for i, j in pair_list(target))
        assert d.gc_content == pytest.approx(sum(c in "GC" for c in d.sequence) / len(target))
        assert d.ensemble_defect == pytest.approx(defect_from_bpp(d.sequence, target), abs=1e-6)
        assert d.mfe == pytest.approx(RNA.fold(d.sequence)[1], abs=1e-6)
        assert (d.pseudo_log_likelihood is None) == (not with_lm)


def test_pairs_stay_valid_when_unsolved():
    """A walk cut off at once still returns a sequence whose target pairs are all valid pairs."""
    target = "((((((((....))))))))...((((((....))))))" * 2
    for d in design(target, 3, seed=5, max_iter=1):
        assert all(d.sequence[i] + d.sequence[j] in VALID_PAIRS for i, j in pair_list(target))
        assert d.solved == (RNA.fold(d.sequence)[0] == target)


def test_pseudo_log_likelihood_by_hand(model):
    seq = "GGACUUCGGUCC"
    total = 0.0
    for i, c in enumerate(seq):
        ids = [2] + [TOKEN_IDS[x] for x in seq] + [3]
        ids[i + 1] = 1
        with torch.no_grad():
            logits = model(torch.tensor([ids]))["mlm_logits"][0, i + 1]
        total += float(torch.log_softmax(logits.double(), -1)[TOKEN_IDS[c]])
    assert pseudo_log_likelihood(model, seq) == pytest.approx(total, abs=1e-4)


@pytest.mark.parametrize("target, words", [
    ("((((....)))", "unmatched opening"),
    ("(((....))))", "unmatched closing"),
    ("((((..))))", "hairpin of 2 nt"),
    ("(.)", "hairpin of 1 nt"),
    ("((..[[..))..]]", "no pseudoknots"),
    ("", "empty"),
])
def test_bad_targets(target, words):
    with pytest.raises(StructureError, match=words):
        parse_target(target)


def test_read_targets(tmp_path: Path):
    path = tmp_path / "t.txt"
    path.write_text("# targets\n((((....))))\nhp2 (((...)))\n>third\n.((((....))))\n")
    assert read_targets(path) == [("target_1", "((((....))))"), ("hp2", "(((...)))"), ("third", ".((((....))))")]
    path.write_text("((((....))))\n((..))\n")
    with pytest.raises(StructureError, match=r"t.txt line 2: record 'target_2'.*hairpin"):
        read_targets(path)


def test_cli_design(tmp_path: Path, capsys):
    out = tmp_path / "designs.fa"
    assert main(["design", "--structure", TARGETS[1], "-n", "3", "--random-init", "small", "--dtype", "fp32",
                 "--output", str(out)]) == 0
    records = list(SeqIO.parse(out, "fasta"))
    assert len(records) == 3
    for r in records:
        assert RNA.fold(str(r.seq))[0] == TARGETS[1]
        assert "solved=1" in r.description and "pseudo_log_likelihood=" in r.description
    bad = tmp_path / "bad.fa"
    assert main(["design", "--structure", "((((..))))", "--lm-weight", "0", "--output", str(bad)]) == 2
    assert "hairpin" in capsys.readouterr().err and not bad.exists()
