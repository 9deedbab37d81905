"""Tokeniser and masking, checked against the fixed vocabulary of docs/architecture.md and binomial statistics."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from genesis_rna.errors import SequenceError
from genesis_rna.tokenization import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    CodonTokenizer,
    RNATokenizer,
    count_gaps,
    normalise,
    random_mask,
)


def test_vocabulary_ids_are_fixed_by_design():
    tok = RNATokenizer()
    assert tok.vocab == ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "A", "C", "G", "U", "N")
    assert tok.vocab_size == 9
    assert tok.encode("ACGUN") == [2, 4, 5, 6, 7, 8, 3]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("acgt", "ACGU"),
        (" AC\nGU\t", "ACGU"),
        ("RYKMSWBDHV", "N" * 10),
        ("A-C.G~U", "ACGU"),
        ("ttTT", "UUUU"),
    ],
)
def test_normalise_rules(raw, expected):
    assert normalise(raw) == expected


def test_count_gaps():
    assert count_gaps("A-C.G~U--") == 5


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("ACGX", "position 4: invalid character 'X'"),
        ("AC1G", "position 3: invalid character '1'"),
        ("ACG*", "position 4"),
        ("AC\x00G", "position 3: invalid character '\\x00'"),
        ("", "zero-length"),
        ("---", "zero-length"),
        ("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "looks like a protein"),
    ],
)
def test_normalise_errors_name_record_and_position(raw, fragment):
    with pytest.raises(SequenceError) as err:
        normalise(raw, record="rec1", path="in.fa")
    message = str(err.value)
    assert fragment in message
    assert message.startswith("in.fa: record 'rec1'")
    assert "\n" not in message


@given(st.text(alphabet="ACGUN", min_size=1, max_size=200))
def test_encode_decode_round_trip(seq):
    tok = RNATokenizer()
    ids = tok.encode(seq)
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID and len(ids) == len(seq) + 2
    assert tok.decode(ids) == seq


def test_batch_padding_and_attention_mask():
    tok = RNATokenizer()
    batch = tok(["ACG", "ACGUACGU"])
    assert batch["input_ids"].shape == (2, 10)
    assert batch["attention_mask"].tolist()[0] == [1] * 5 + [0] * 5
    assert (batch["input_ids"][0, 5:] == PAD_ID).all()
    trunc = tok(["ACGUACGU"], truncation=True, max_length=6)
    assert trunc["input_ids"].tolist() == [[CLS_ID, 4, 5, 6, 7, SEP_ID]]
    with pytest.raises(SequenceError, match="exceed max_length"):
        tok(["ACGUACGU"], max_length=6)


def test_batch_convert_is_esm_like():
    labels, seqs, tokens = RNATokenizer().batch_convert([("a", "acgt"), ("b", "GG")])
    assert labels == ["a", "b"] and seqs == ["ACGU", "GG"]
    assert tokens.tolist() == [[2, 4, 5, 6, 7, 3], [2, 6, 6, 3, 0, 0]]


def _binomial_ok(successes: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(successes - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_random_mask_proportions_over_many_draws():
    tok = RNATokenizer()
    seqs = ["ACGU" * 50, "GGCAU" * 30, "A" * 7]
    ids = tok(seqs)["input_ids"]
    gen = torch.Generator().manual_seed(1234)
    chosen = masked = randomised = kept = maskable_total = 0
    for _ in range(200):
        out, labels = random_mask(ids, mlm_probability=0.15, generator=gen)
        maskable = ids >= 4
        sel = labels != -100
        assert not (sel & ~maskable).any(), "special tokens or padding were masked"
        assert (labels[sel] == ids[sel]).all()
        assert (out[~sel] == ids[~sel]).all(), "unchosen positions must be untouched"
        maskable_total += int(maskable.sum())
        chosen += int(sel.sum())
        masked += int((out[sel] == MASK_ID).sum())
        changed = sel & (out != MASK_ID) & (out != ids)
        randomised += int(changed.sum())
        kept += int((sel & (out == ids)).sum())
    assert _binomial_ok(chosen, maskable_total, 0.15)
    assert _binomial_ok(masked, chosen, 0.8)
    # a random base equals the original a quarter of the time, so 10% * 3/4 changes and 10% + 2.5% stay
    assert _binomial_ok(randomised, chosen, 0.1 * 0.75)
    assert _binomial_ok(kept, chosen, 0.1 + 0.1 * 0.25)


def test_random_mask_is_reproducible_with_a_seed():
    ids = RNATokenizer()(["ACGU" * 20])["input_ids"]
    a = random_mask(ids, generator=torch.Generator().manual_seed(7))
    b = random_mask(ids, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_codon_tokenizer():
    tok = CodonTokenizer()
    assert tok.vocab_size == 68
    ids = tok.encode("AUGGCCUAA")
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID
    # lexicographic over ACGU: index = 16*a + 4*b + c, offset by the 4 specials
    order = {b: i for i, b in enumerate("ACGU")}
    assert ids[1] == 4 + 16 * order["A"] + 4 * order["U"] + order["G"]
    assert tok.decode(ids) == "AUGGCCUAA"
    with pytest.raises(SequenceError, match="not a multiple of 3"):
        tok.encode("AUGG", record="cds1")
    with pytest.raises(SequenceError, match="contains N"):
        tok.encode("AUGNNN", record="cds1")
