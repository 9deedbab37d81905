"""Tests of genesis_rna.structure.pairs against hand-written answers, brute force and ViennaRNA."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis_rna.errors import InputError, StructureError
from genesis_rna.structure.pairs import (
    BULGE,
    HAIRPIN,
    LOOP,
    NONE,
    STEM,
    STRUCTURE_LABELS,
    context_labels,
    dotbracket_to_partners,
    labels_to_string,
    mean_pair_metrics,
    nested_subset,
    pair_metrics,
    pair_metrics_flexible,
    pairs_to_partners,
    partners_to_dotbracket,
    partners_to_pairs,
    partners_to_wuss,
    pseudoknot_pages,
    validate_partners,
    wuss_to_partners,
)
from genesis_rna.vocab import IGNORE_INDEX

# ------------------------------------------------------------------------------------------------------------
# strategies and independent references
# ------------------------------------------------------------------------------------------------------------


@st.composite
def random_structures(draw, max_len: int = 40, max_pairs: int | None = None, min_len: int = 0) -> np.ndarray:
    """Any valid structure: random disjoint pairs, so pseudoknots of any depth occur."""
    n = draw(st.integers(min_len, max_len))
    order = draw(st.permutations(range(n)))
    limit = n // 2 if max_pairs is None else min(n // 2, max_pairs)
    k = draw(st.integers(0, limit))
    partner = np.full(n, -1, dtype=np.int64)
    for a, b in zip(order[0:2 * k:2], order[1:2 * k:2], strict=True):
        partner[a], partner[b] = b, a
    return partner


def crosses(p: tuple[int, int], q: tuple[int, int]) -> bool:
    (a, b), (c, d) = sorted(p), sorted(q)
    return a < c < b < d or c < a < d < b


def brute_max_noncrossing(pairs: list[tuple[int, int]]) -> int:
    """Size of the largest pairwise non-crossing subset, by trying every subset (small inputs only)."""
    for size in range(len(pairs), 0, -1):
        for sub in itertools.combinations(pairs, size):
            if not any(crosses(p, q) for p, q in itertools.combinations(sub, 2)):
                return size
    return 0


def is_nested(partner: np.ndarray) -> bool:
    pairs = partners_to_pairs(partner)
    return not any(crosses(p, q) for p, q in itertools.combinations(pairs, 2))


# ------------------------------------------------------------------------------------------------------------
# constants, partner arrays
# ------------------------------------------------------------------------------------------------------------


def test_label_constants_fixed_by_design():
    assert STRUCTURE_LABELS == ("NONE", "STEM", "LOOP", "BULGE", "HAIRPIN")
    assert (NONE, STEM, LOOP, BULGE, HAIRPIN) == (0, 1, 2, 3, 4)
    assert IGNORE_INDEX == -100


def test_validate_partners_accepts_valid_and_returns_int64():
    out = validate_partners([3, -1, -1, 0])
    assert out.dtype == np.int64 and out.tolist() == [3, -1, -1, 0]
    assert validate_partners(np.array([1.0, 0.0])).tolist() == [1, 0]
    assert validate_partners([]).shape == (0,)


@pytest.mark.parametrize(
    ("partner", "length", "fragment"),
    [
        ([1, -1], None, "position 1: paired with 2, but 2 is unpaired"),
        ([2, 2, 1], None, "position 1: paired with 3, but 3 is paired with 2"),
        ([0, -1], None, "position 1: position paired with itself"),
        ([5, -1], None, "position 1: partner 5 out of range"),
        ([-1, -2], None, "position 2: partner -2 out of range"),
        ([-1, -1], 3, "length 2 but the sequence has length 3"),
        ([0.5, -1], None, "not an integer"),
        ([[1], [0]], None, "1-D"),
        ([True, False], None, "integers"),
    ],
)
def test_validate_partners_errors_name_position(partner, length, fragment):
    with pytest.raises(StructureError) as err:
        validate_partners(partner, length)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_pairs_to_partners_and_back():
    partner = pairs_to_partners([(0, 5), (4, 1), (1, 4)], 7)  # (4,1) and (1,4) are the same pair
    assert partner.tolist() == [5, 4, -1, -1, 1, 0, -1]
    assert partners_to_pairs(partner) == [(0, 5), (1, 4)]
    with pytest.raises(StructureError, match="position 2: paired with both 5 and 6"):
        pairs_to_partners([(1, 4), (1, 5)], 7)
    with pytest.raises(StructureError, match="outside"):
        pairs_to_partners([(0, 7)], 7)
    with pytest.raises(StructureError, match="itself"):
        pairs_to_partners([(2, 2)], 7)


# ------------------------------------------------------------------------------------------------------------
# dot-bracket
# ------------------------------------------------------------------------------------------------------------


def test_dotbracket_pseudoknot_by_hand():
    #        0123456789abcd
    db = "((..[[..))..]]"
    assert partners_to_pairs(dotbracket_to_partners(db)) == [(0, 9), (1, 8), (4, 13), (5, 12)]
    assert partners_to_pairs(dotbracket_to_partners("(<A{.)>}a")) == [(0, 5), (1, 6), (2, 8), (3, 7)]


@pytest.mark.parametrize(
    ("db", "fragment"),
    [
        ("(().", "position 1: unmatched opening bracket '('"),
        ("..)", "position 3: unmatched closing bracket ')'"),
        ("((.]]", "position 4: unmatched closing bracket ']'"),
        ("(.*.)", "position 3: invalid dot-bracket character '*'"),
        ("(.x.)", "position 3: unmatched closing bracket 'x'"),  # x closes the Xx page
        ("(.-.)", "position 3: invalid dot-bracket character '-'"),
        ("a..A", "position 1: unmatched closing bracket 'a'"),
    ],
)
def test_dotbracket_errors_name_position(db, fragment):
    with pytest.raises(StructureError) as err:
        dotbracket_to_partners(db)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("pairs", "length", "expected"),
    [
        # H-type pseudoknot: both stems have 2 pairs; the tie goes to the 5' stem.
        ([(0, 9), (1, 8), (4, 13), (5, 12)], 14, "((..[[..))..]]"),
        # the second stem is larger, so it takes the first page although it opens later
        ([(0, 6), (3, 12), (4, 11), (5, 10)], 13, "[..(((]...)))"),
        # three mutually crossing single pairs need three pages
        ([(0, 3), (1, 4), (2, 5)], 6, "([{)]}"),
        # a pair crossing two nested stems: the two stems (4 pairs) win the first page
        ([(0, 5), (1, 4), (6, 11), (7, 10), (3, 8)], 12, "((.[))((].))"),
        # five mutually crossing pairs reach the letter pages
        ([(k, k + 5) for k in range(5)], 10, "([{<A)]}>a"),
    ],
)
def test_partners_to_dotbracket_pages_by_hand(pairs, length, expected):
    partner = pairs_to_partners(pairs, length)
    assert partners_to_dotbracket(partner) == expected
    assert dotbracket_to_partners(expected).tolist() == partner.tolist()


def test_too_many_pages_is_an_error():
    partner = pairs_to_partners([(k, k + 31) for k in range(31)], 62)
    with pytest.raises(StructureError, match="31 bracket pages"):
        partners_to_dotbracket(partner)


@settings(max_examples=300, deadline=None)
@given(random_structures(max_len=50))
def test_dotbracket_round_trip_any_structure(partner):
    db = partners_to_dotbracket(partner)
    assert len(db) == len(partner)
    assert dotbracket_to_partners(db).tolist() == partner.tolist()


@settings(max_examples=300, deadline=None)
@given(random_structures(max_len=24, max_pairs=9))
def test_pages_are_greedy_maximum_noncrossing_sets(partner):
    """Each page is non-crossing and as large as the brute-force maximum over the pairs not yet placed."""
    pages = pseudoknot_pages(partner)
    remaining = partners_to_pairs(partner)
    page = 0
    while remaining:
        on_page = [p for p in remaining if pages[p[0]] == page]
        assert pages[[p[1] for p in on_page]].tolist() == [page] * len(on_page)
        assert not any(crosses(p, q) for p, q in itertools.combinations(on_page, 2))
        assert len(on_page) == brute_max_noncrossing(remaining)
        remaining = [p for p in remaining if p not in on_page]
        page += 1


@settings(max_examples=200, deadline=None)
@given(random_structures(max_len=24, max_pairs=9))
def test_nested_subset_is_largest_nested_subset(partner):
    nested = nested_subset(partner)
    kept = partners_to_pairs(nested)
    assert set(kept) <= set(partners_to_pairs(partner))
    assert is_nested(nested)
    assert len(kept) == brute_max_noncrossing(partners_to_pairs(partner))


def _random_nested_dotbracket(n: int, rng: random.Random) -> str:
    """A nested structure made of stems of 3-7 pairs (a cheap stand-in for an MFE structure)."""
    out: list[str] = []
    stack: list[int] = []
    while len(out) < n:
        room = n - len(out)
        action = rng.random()
        if stack and (room <= len(stack) or (action < 0.3 and len(out) - stack[-1] > 4)):
            for _ in range(min(rng.randint(3, 7), len(stack))):
                stack.pop()
                out.append(")")
        elif action < 0.55 and room > len(stack) + 14:
            for _ in range(rng.randint(3, 7)):
                stack.append(len(out))
                out.append("(")
        else:
            out.append(".")
    return "".join(out)


def _long_structure_with_pseudoknots(n_nested: int = 2000, n_pk: int = 10, seed: int = 0) -> np.ndarray:
    """A random nested structure of ``n_nested`` nt followed by ``n_pk`` H-type pseudoknots of 100 nt each.

    Each 100-nt block pairs 0-3 with 40-43 and 20-23 with 60-63: two crossing 4-bp stems, so the block is a
    pseudoknot by construction (no search that could fail to terminate).
    """
    rng = random.Random(seed)
    nested = dotbracket_to_partners(_random_nested_dotbracket(n_nested, rng))
    partner = np.concatenate([nested, np.full(100 * n_pk, -1, dtype=nested.dtype)])
    for k in range(n_pk):
        base = n_nested + 100 * k
        for a, b in ((0, 43), (1, 42), (2, 41), (3, 40), (20, 63), (21, 62), (22, 61), (23, 60)):
            partner[base + a], partner[base + b] = base + b, base + a
    return partner


def test_dotbracket_round_trip_on_3000_nt_with_pseudoknots():
    partner = _long_structure_with_pseudoknots()
    assert len(partner) == 3000 and (partner >= 0).sum() > 500
    assert len(set(pseudoknot_pages(partner).tolist())) > 2  # nested page, -1, and at least one pk page
    db = partners_to_dotbracket(partner)
    labels = context_labels(partner)
    assert dotbracket_to_partners(db).tolist() == partner.tolist()
    assert len(labels) == 3000
    assert db.count("[") == 40  # the second stem of each block goes to the second page


# ------------------------------------------------------------------------------------------------------------
# WUSS
# ------------------------------------------------------------------------------------------------------------

# E. coli RNase P RNA from Easel's esl_wuss.c test driver (Eddy), with and without pseudoknot letters.
EASEL_SS = (
    "{{{{{{{{{{{{{{{{{{,<<<<<<<<<<<<<-<<<<<____>>>>>>>>>->>>>>>>>"
    ">,,,,AAA-AAAAA[[[[---BBBB-[[[[[<<<<<_____>>>>><<<<____>>>->("
    "(---(((((,,,,,,,,,,,,<<<<<--<<<<<<<<____>>>>>->>>>>>-->>,,,,"
    ",,,<<<<<<_______>>>>>><<<<<<<<<____>>>->>>>>->,,)))--))))]]]"
    "]]]]]],,,<<<<------<<<<<<----<<<<<_bbbb>>>>>>>>>>>----->>>>,"
    ",,,,,<<<<<<<<____>>>>>>>>,,,,,,,,,,}}}}}}}----------aaaaaaaa"
    "-}-}}}}}}}}}}::::"
)


def test_wuss_easel_reference():
    """Easel's own check: #pairs = #opening brackets + #upper-case letters, and removing the letters
    removes exactly the pseudoknot pairs."""
    partner = wuss_to_partners(EASEL_SS)
    n_pairs = int((partner >= 0).sum()) // 2
    assert n_pairs == sum(EASEL_SS.count(c) for c in "{[(<") + sum(c.isupper() for c in EASEL_SS)
    nopk = "".join("." if c.isalpha() else c for c in EASEL_SS)
    nopk_pairs = set(partners_to_pairs(wuss_to_partners(nopk)))
    pk_pairs = {(i, j) for i, j in partners_to_pairs(partner) if EASEL_SS[i].isalpha()}
    assert set(partners_to_pairs(partner)) == nopk_pairs | pk_pairs
    assert len(pk_pairs) == 12  # AAA AAAAA + BBBB


def test_wuss_by_hand_and_errors():
    #               0123456789012
    partner = wuss_to_partners("<(_A_)>,[a]:")
    assert partners_to_pairs(partner) == [(0, 6), (1, 5), (3, 9), (8, 10)]
    with pytest.raises(StructureError, match="position 5: '>' closes '\\(' opened at position 2"):
        wuss_to_partners("<(..>)")
    with pytest.raises(StructureError, match="position 2: invalid WUSS character '\\*'"):
        wuss_to_partners("<*>")
    with pytest.raises(StructureError, match="unmatched"):
        wuss_to_partners("<<>")


@settings(max_examples=200, deadline=None)
@given(random_structures(max_len=40, max_pairs=12))
def test_wuss_round_trip(partner):
    assert wuss_to_partners(partners_to_wuss(partner)).tolist() == partner.tolist()


# ------------------------------------------------------------------------------------------------------------
# context labels
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        # bpRNA letters: S stem, H hairpin, B bulge, I interior, M multiloop, E/X exterior -> S H B L L N
        ("((..((...))...))", "SSLLSSHHHSSLLLSS"),  # interior loop 2x3 -> LOOP
        ("((.((...))))", "SSBSSHHHSSSS"),  # one unpaired base on the 5' side only -> BULGE
        ("((((...))...))", "SSSSHHHSSBBBSS"),  # bulge on the 3' side
        ("(.(..).(..).)", "SLSHHSLSHHSLS"),  # multiloop -> LOOP
        ("..(...)..((.))", "NNSHHHSNNSSHSS"),  # exterior -> NONE
        ("(((...)))", "SSSHHHSSS"),
        (".....", "NNNNN"),
        ("", ""),
        # pseudoknot: ( ) is the nested page, [ ] bases are STEM and lie in the hairpin of the ( ) stem
        ("((..[[..))..]]", "SSHHSSHHSSNNSS"),
        # a pseudoknotted base (A/a) is STEM but counts as unpaired for the loop's sides: interior loop, not bulge
        ("((A((...))..))a", "SSSSSHHHSSLLSSS"),
    ],
)
def test_context_labels_by_hand(db, expected):
    labels = context_labels(dotbracket_to_partners(db))
    assert labels.dtype == np.int8
    assert labels_to_string(labels) == expected


@settings(max_examples=200, deadline=None)
@given(random_structures(max_len=60))
def test_context_label_properties(partner):
    labels = context_labels(partner)
    assert labels.shape == partner.shape
    assert set(np.unique(labels).tolist()) <= {NONE, STEM, LOOP, BULGE, HAIRPIN}
    assert np.array_equal(labels == STEM, partner >= 0)
    assert sum(int((labels == k).sum()) for k in range(5)) == len(partner)
    empty = np.full(len(partner), -1)
    assert (context_labels(empty) == NONE).all()


def test_context_labels_match_viennarna_loop_elements():
    """ViennaRNA's db_to_element_string (e exterior, h hairpin, i interior, m multiloop; upper case paired) is an
    independent reference for every label; bulge vs. other interior loop is checked by loop sides."""
    rna = pytest.importorskip("RNA")
    rng = random.Random(7)
    expected_of = {"e": {NONE}, "h": {HAIRPIN}, "i": {BULGE, LOOP}, "m": {LOOP}}
    seen = set()
    for _ in range(60):
        seq = "".join(rng.choice("ACGU") for _ in range(rng.randint(20, 300)))
        db = rna.fold(seq)[0]
        labels = context_labels(dotbracket_to_partners(db))
        elements = rna.db_to_element_string(db)
        for pos, (lab, el) in enumerate(zip(labels.tolist(), elements, strict=True)):
            if el.isupper():
                assert lab == STEM, (db, pos)
            else:
                assert lab in expected_of[el], (db, pos, el, lab)
            seen.add(lab)
    assert seen == {NONE, STEM, LOOP, BULGE, HAIRPIN}


# ------------------------------------------------------------------------------------------------------------
# pair metrics
# ------------------------------------------------------------------------------------------------------------


def test_pair_metrics_by_hand():
    true = pairs_to_partners([(0, 9), (1, 8), (2, 7)], 10)
    pred = pairs_to_partners([(0, 9), (1, 8), (3, 6)], 10)
    m = pair_metrics(pred, true)
    # TP 2, FP 1, FN 1, TN = 45 - 4 = 41; MCC = (2*41 - 1*1) / sqrt(3*3*42*42) = 81/126
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["mcc"] == pytest.approx(81 / 126)
    assert set(m) == {"precision", "recall", "f1", "mcc"}


def test_pair_metrics_unequal_counts_by_hand():
    true = pairs_to_partners([(0, 9), (1, 8), (2, 7), (3, 6)], 12)
    pred = pairs_to_partners([(0, 9)], 12)
    m = pair_metrics(pred, true)
    # TP 1, FP 0, FN 3, TN = 66 - 4 = 62; MCC = 62 / sqrt(1 * 4 * 62 * 65)
    assert (m["precision"], m["recall"]) == (1.0, 0.25)
    assert m["f1"] == pytest.approx(2 / 5)
    assert m["mcc"] == pytest.approx(62 / math.sqrt(4 * 62 * 65))


def test_pair_metrics_empty_conventions():
    empty = np.full(8, -1)
    some = pairs_to_partners([(0, 7)], 8)
    assert pair_metrics(empty, empty) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "mcc": 1.0}
    assert pair_metrics(empty, some) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "mcc": 0.0}
    assert pair_metrics(some, empty) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "mcc": 0.0}
    assert pair_metrics_flexible(empty, empty)["flex_f1"] == 1.0
    with pytest.raises(StructureError, match="length"):
        pair_metrics(empty, np.full(9, -1))


def test_pair_metrics_flexible_by_hand():
    true = pairs_to_partners([(0, 9), (1, 8), (2, 7)], 10)
    shifted = pairs_to_partners([(0, 9), (1, 8), (3, 7)], 10)  # (3,7) is (2,7) shifted by one
    assert pair_metrics(shifted, true)["f1"] == pytest.approx(2 / 3)
    flex = pair_metrics_flexible(shifted, true)
    assert flex == pytest.approx({"flex_precision": 1.0, "flex_recall": 1.0, "flex_f1": 1.0, "flex_mcc": 1.0})
    far = pairs_to_partners([(0, 9), (1, 8), (3, 6)], 10)  # (3,6) is two steps from (2,7): wrong
    assert pair_metrics_flexible(far, true)["flex_f1"] == pytest.approx(2 / 3)


def test_pair_metrics_flexible_is_one_to_one():
    true = pairs_to_partners([(2, 7)], 10)
    pred = pairs_to_partners([(1, 7), (2, 8)], 10)  # both within one step of the single true pair
    flex = pair_metrics_flexible(pred, true)
    assert flex["flex_precision"] == 0.5 and flex["flex_recall"] == 1.0
    assert flex["flex_f1"] == pytest.approx(2 / 3)


@st.composite
def same_length_pairs(draw, max_len: int = 30) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(2, max_len))
    return draw(random_structures(min_len=n, max_len=n)), draw(random_structures(min_len=n, max_len=n))


@settings(max_examples=200, deadline=None)
@given(same_length_pairs())
def test_pair_metrics_match_full_confusion_matrix(pred_true):
    """MCC/F1 against a confusion matrix counted over every one of the L(L-1)/2 candidate pairs."""
    pred, true = pred_true
    n = len(pred)
    tp = fp = fn = tn = 0
    for i, j in itertools.combinations(range(n), 2):
        p, t = pred[i] == j, true[i] == j
        tp += p and t
        fp += p and not t
        fn += t and not p
        tn += not p and not t
    m = pair_metrics(pred, true)
    if tp + fp and tp + fn:
        assert m["precision"] == pytest.approx(tp / (tp + fp))
        assert m["recall"] == pytest.approx(tp / (tp + fn))
        denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        assert m["mcc"] == pytest.approx((tp * tn - fp * fn) / denom if denom else 0.0)
    flex = pair_metrics_flexible(pred, true)
    assert flex["flex_f1"] >= m["f1"] - 1e-12
    assert 0.0 <= flex["flex_precision"] <= 1.0 and 0.0 <= flex["flex_recall"] <= 1.0


def test_mean_pair_metrics_averages_per_sequence():
    true1 = pairs_to_partners([(0, 9), (1, 8), (2, 7)], 10)
    pred1 = pairs_to_partners([(0, 9), (1, 8), (3, 6)], 10)  # f1 2/3
    empty = np.full(5, -1)  # f1 1.0 by convention
    mean = mean_pair_metrics([(pred1, true1), (empty, empty)])
    assert mean["f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert mean["mcc"] == pytest.approx((81 / 126 + 1.0) / 2)
    assert "flex_f1" not in mean
    flex = mean_pair_metrics([(pred1, true1)], flexible=True)
    assert flex["flex_f1"] == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        mean_pair_metrics([])
