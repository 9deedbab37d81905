"""Template (homology) structure transfer: alignments and transferred pairs checked against hand-made cases."""

from argparse import Namespace

import numpy as np
import pytest

from genesis_rna.structure.homology import Template, TemplateLibrary, mix_with_prior, transfer_pairs
from genesis_rna.structure.pairs import dotbracket_to_partners

HAIRPIN = "GGGGAAACCCC"  # ((((...))))
HAIRPIN_DB = "((((...))))"


def _template(tid: str, seq: str, db: str) -> Template:
    return Template(tid, seq, dotbracket_to_partners(db))


def test_transfer_through_a_hand_built_alignment():
    # template ((((...)))) ; query has one extra U after position 1 and lacks the last C.
    template = dotbracket_to_partners(HAIRPIN_DB)
    #                 query:  G G U G G A A A C C C
    mapping = np.array([0, 1, -1, 2, 3, 4, 5, 6, 7, 8, 9])
    partner = transfer_pairs(template, mapping)
    # template pairs (0,10) lost (10 not aligned); (1,9)->(1,10); (2,8)->(3,9); (3,7)->(4,8)
    expected = np.full(11, -1)
    for i, j in ((1, 10), (3, 9), (4, 8)):
        expected[i], expected[j] = j, i
    assert partner.tolist() == expected.tolist()


def test_self_hit_is_identical_and_maps_every_position():
    lib = TemplateLibrary([_template("a", HAIRPIN, HAIRPIN_DB), _template("b", "ACGUACGUACGUACGU", "." * 16)])
    hit = lib.best_hit(HAIRPIN)
    assert hit.template_id == "a" and hit.identity == 1.0
    assert hit.query_to_template.tolist() == list(range(len(HAIRPIN)))
    partner, _ = lib.predict(HAIRPIN)
    assert partner.tolist() == dotbracket_to_partners(HAIRPIN_DB).tolist()


def test_free_end_gaps_shift_the_map_and_identity_counts_query_length():
    lib = TemplateLibrary([_template("a", HAIRPIN, HAIRPIN_DB)])
    query = "UUUUU" + HAIRPIN  # a 5-nt 5' overhang the template lacks
    hit = lib.best_hit(query)
    assert hit.query_to_template.tolist() == [-1] * 5 + list(range(11))
    assert hit.identity == pytest.approx(11 / 16)
    partner, _ = lib.predict(query)
    assert partner.tolist() == dotbracket_to_partners("....." + HAIRPIN_DB).tolist()


def test_a_point_substitution_keeps_the_pairs_and_costs_one_column():
    lib = TemplateLibrary([_template("a", HAIRPIN, HAIRPIN_DB)])
    query = "GGGGAUACCCC"
    hit = lib.best_hit(query)
    assert hit.identity == pytest.approx(10 / 11)
    assert lib.predict(query)[0].tolist() == dotbracket_to_partners(HAIRPIN_DB).tolist()


def test_relative_beats_unrelated_and_exclude_skips_self():
    rng = np.random.default_rng(0)
    base = "".join(rng.choice(list("ACGU"), 60))
    relative = base[:30] + ("A" if base[30] != "A" else "C") + base[31:]
    unrelated = "".join(rng.choice(list("ACGU"), 60))
    lib = TemplateLibrary([Template("self", base, np.full(60, -1)), Template("rel", relative, np.full(60, -1)),
                           Template("other", unrelated, np.full(60, -1))])
    assert lib.best_hit(base).template_id == "self"
    hit = lib.best_hit(base, exclude="self")
    assert hit.template_id == "rel" and hit.identity == pytest.approx(59 / 60)


def test_mix_with_prior_limits_and_symmetry():
    partner = dotbracket_to_partners(HAIRPIN_DB)
    rng = np.random.default_rng(1)
    prior = rng.random((11, 11)).astype(np.float32)
    prior = (prior + prior.T) / 2
    template = mix_with_prior(partner, prior, 1.0)
    assert template[0, 10] == template[10, 0] == 1.0 and template.sum() == 8  # 4 pairs, both triangles
    assert np.allclose(mix_with_prior(partner, prior, 0.0), prior)
    half = mix_with_prior(partner, prior, 0.5)
    assert np.allclose(half, half.T) and half[1, 9] == pytest.approx(0.5 + 0.5 * prior[1, 9])


def test_empty_library_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one template"):
        TemplateLibrary([])


def test_template_method_copies_a_training_relative(tmp_path):
    """The eval method end to end on a toy fold: a test sequence whose exact copy is in train gets its pairs."""
    pytest.importorskip("RNA")
    from genesis_rna.evaluate.archiveii import _run_template, _run_vienna, score, vienna_cache
    from genesis_rna.structure.train import PairExample

    rng = np.random.default_rng(2)
    stem = "".join(rng.choice(list("ACGU"), 8))
    comp = {"A": "U", "U": "A", "G": "C", "C": "G"}
    seq = stem + "GAAA" + "".join(comp[b] for b in reversed(stem)) + "".join(rng.choice(list("ACGU"), 10))
    db = "((((" + "." * 12 + "))))" + "." * 10  # only the outer half of the stem: not what ViennaRNA predicts
    examples = {f"x_{k}": PairExample(f"x_{k}", seq, dotbracket_to_partners(db), family="x") for k in range(3)}
    fold = {"train": ["x_0"], "valid": ["x_1"], "test": ["x_2"]}
    vienna_cache(examples, tmp_path, ["x_1", "x_2"])
    res = _run_template("template", fold, examples, tmp_path, ["x_2"], Namespace(max_valid=None, seed=0))
    assert res["info"]["hits"]["x_2"] == {"template": "x_0", "identity": 1.0}
    vienna_only = _run_vienna("vienna_mea", fold, examples, tmp_path, ["x_2"], Namespace())
    assert score(vienna_only["preds"], examples)["overall"]["f1"] < 0.9  # so the next line needs the template
    assert score(res["preds"], examples)["overall"]["f1"] == 1.0


def test_template_hybrid_mixes_into_a_trained_head(tmp_path):
    """``template_hybrid``: the same transfer, mixed into a genesis_hybrid head trained on the fold (tiny here):
    the exact relative still wins, and the head's training is recorded."""
    pytest.importorskip("RNA")
    from genesis_rna.evaluate.archiveii import _run_template, score, vienna_cache
    from genesis_rna.structure.train import PairExample

    rng = np.random.default_rng(3)
    stem = "".join(rng.choice(list("ACGU"), 8))
    comp = {"A": "U", "U": "A", "G": "C", "C": "G"}
    seq = stem + "GAAA" + "".join(comp[b] for b in reversed(stem)) + "".join(rng.choice(list("ACGU"), 10))
    db = "((((" + "." * 12 + "))))" + "." * 10
    examples = {f"x_{k}": PairExample(f"x_{k}", seq, dotbracket_to_partners(db), family="x") for k in range(3)}
    fold = {"train": ["x_0"], "valid": ["x_1"], "test": ["x_2"]}
    vienna_cache(examples, tmp_path, list(examples))
    args = Namespace(max_valid=None, max_train=None, seed=0, encoder="genesis-rna-small", channels=4, epochs=1,
                     steps_per_epoch=2, max_train_len=40, patience=1, lr=1e-3, verbose=False, bf16=False)
    res = _run_template("template_hybrid", fold, examples, tmp_path, ["x_2"], args)
    assert res["info"]["hits"]["x_2"] == {"template": "x_0", "identity": 1.0}
    assert res["info"]["n_train"] == 1 and "best_valid_f1" in res["info"]["head"]
    assert score(res["preds"], examples)["overall"]["f1"] == 1.0
