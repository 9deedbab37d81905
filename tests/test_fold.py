"""Decoding, the fold command and pair F1, each checked against independent computations.

* the nested decoder equals a brute-force search over all nested matchings on small random matrices;
* every decoded structure is valid (hypothesis over random probability matrices and sequences);
* ``genesis-rna fold`` writes .ct/.bpseq/.dbn/.npy that a hand-written CT parser reads back to the same pairs,
  and in ViennaRNA-only mode the .npy equals ViennaRNA's own base-pair probabilities;
* F1 on small made-up cases equals values computed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis_rna.cli import main
from genesis_rna.structure.decode import allowed_pairs, decode, decode_greedy, decode_nested
from genesis_rna.structure.pairs import nested_subset, pair_metrics, pair_metrics_flexible, validate_partners

CANON = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}


# ----------------------------------------------------------------------------------------------- helpers
def _brute_best(w: np.ndarray) -> float:
    """Best sum of weights over all nested sets of pairs with finite weight, by plain enumeration."""
    n = w.shape[0]
    cands = [(i, j) for i in range(n) for j in range(i + 1, n) if np.isfinite(w[i, j]) and w[i, j] > 0]
    best = 0.0
    # enumerate subsets by recursion over candidates, pruning conflicts
    def rec(k: int, chosen: list[tuple[int, int]], total: float) -> None:
        nonlocal best
        best = max(best, total)
        for m in range(k, len(cands)):
            i, j = cands[m]
            ok = all(len({i, j, a, b}) == 4 and not (a < i < b < j or i < a < j < b) for a, b in chosen)
            if ok:
                chosen.append((i, j))
                rec(m + 1, chosen, total + w[i, j])
                chosen.pop()
    rec(0, [], 0.0)
    return best


def _score(partner: np.ndarray, p: np.ndarray, threshold: float) -> float:
    return float(sum(p[i, j] - threshold for i, j in enumerate(partner) if j > i))


def _sym(rng: np.random.Generator, n: int, power: float = 3.0) -> np.ndarray:
    m = rng.random((n, n)) ** power
    return (m + m.T) / 2


def _check_valid(partner: np.ndarray, seq: str | None, nested: bool) -> None:
    validate_partners(partner, len(partner))
    for i, j in enumerate(partner.tolist()):
        if j > i:
            assert j - i > 3, (i, j)
            if seq is not None:
                assert (seq[i], seq[j]) in CANON, (i, j, seq[i], seq[j])
    if nested:
        assert np.array_equal(nested_subset(partner), partner)


# ----------------------------------------------------------------------------------------------- decoding
def test_allowed_pairs_by_hand():
    seq = "GGGAAAUCCC"
    mask = allowed_pairs(seq)
    assert mask[0, 9] and mask[9, 0]          # G-C, 8 apart
    assert not mask[0, 3]                     # G-A
    assert not mask[0, 4] and mask[2, 7]      # G-A no; G-C 5 apart yes
    assert mask[0, 6]                         # G-U wobble
    assert not mask[6, 9] and not mask[3, 6]  # U-C; A-U only 3 apart (hairpin too small)
    assert mask[2, 6] and not mask[3, 6]      # G-U 4 apart allowed; 3 apart not
    free = allowed_pairs(seq, allow_noncanonical=True)
    assert free[0, 4] and not free[0, 3]


def test_nested_decoder_equals_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(60):
        n = int(rng.integers(5, 11))
        p = _sym(rng, n, power=1.0)
        for t in (0.3, 0.5):
            part = decode_nested(p, None, t)
            _check_valid(part, None, nested=True)
            w = np.where(np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > 3, p - t, -np.inf)
            assert _score(part, p, t) == pytest.approx(_brute_best(w), abs=1e-9)


def test_decoder_recovers_a_clear_stem_and_ignores_weak_pairs():
    seq = "GGGGAAAACCCC"
    p = np.zeros((12, 12))
    for k in range(4):
        p[k, 11 - k] = p[11 - k, k] = 0.9
    p[0, 5] = p[5, 0] = 0.45  # below the threshold: never taken
    part = decode(p, seq, threshold=0.5)
    assert [(i, int(j)) for i, j in enumerate(part) if j > i] == [(0, 11), (1, 10), (2, 9), (3, 8)]
    assert (decode(p * 0.5, seq, threshold=0.5) == -1).all()


def test_pseudoknot_option_adds_crossing_pairs():
    # two crossing stems: nested decoding keeps one, the pseudoknot option adds the other
    n = 30
    p = np.zeros((n, n))
    for k in range(3):
        for i, j, v in ((2 + k, 16 - k, 0.9), (10 + k, 26 - k, 0.8)):
            p[i, j] = p[j, i] = v
    nested = decode(p, None, threshold=0.5)
    knotted = decode(p, None, threshold=0.5, pseudoknots=True)
    _check_valid(nested, None, nested=True)
    _check_valid(knotted, None, nested=False)
    assert (nested >= 0).sum() == 6 and (knotted >= 0).sum() == 12
    assert not np.array_equal(nested_subset(knotted), knotted)


@settings(max_examples=60, deadline=None)
@given(seq=st.text(alphabet="ACGUN", min_size=0, max_size=40), seed=st.integers(0, 2**32 - 1),
       threshold=st.floats(0.0, 0.9), power=st.floats(0.2, 6.0), noncanon=st.booleans())
def test_decoded_structures_are_always_valid(seq, seed, threshold, power, noncanon):
    rng = np.random.default_rng(seed)
    p = rng.random((len(seq), len(seq))) ** power  # not symmetric on purpose: the decoder symmetrises
    canon_seq = None if noncanon else seq
    for pk in (False, True):
        part = decode(p, seq, threshold=threshold, allow_noncanonical=noncanon, pseudoknots=pk)
        _check_valid(part, canon_seq, nested=not pk)
    greedy = decode(p, seq, threshold=threshold, allow_noncanonical=noncanon, method="greedy")
    _check_valid(greedy, canon_seq, nested=False)


def test_greedy_is_a_matching_taking_best_pairs_first():
    p = np.zeros((10, 10))
    p[0, 9] = p[9, 0] = 0.9
    p[0, 8] = p[8, 0] = 0.8   # conflicts with (0, 9): dropped
    p[1, 8] = p[8, 1] = 0.7
    part = decode_greedy(p, None, 0.5)
    assert part[0] == 9 and part[1] == 8


def test_decode_rejects_bad_matrices():
    from genesis_rna.errors import InputError

    with pytest.raises(InputError):
        decode(np.zeros((3, 4)))
    with pytest.raises(InputError):
        decode(np.full((5, 5), np.nan))
    with pytest.raises(InputError):
        decode(np.zeros((5, 5)), "ACGU")


# ----------------------------------------------------------------------------------------------- F1 by hand
def test_pair_f1_hand_computed():
    n = 12
    true = np.full(n, -1)
    pred = np.full(n, -1)
    for i, j in ((0, 10), (1, 9), (3, 7)):
        true[i], true[j] = j, i
    for i, j in ((0, 10), (1, 9), (2, 8)):
        pred[i], pred[j] = j, i
    m = pair_metrics(pred, true)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # (2, 8) is two shifts from (3, 7): not rescued by the +-1 rule
    assert pair_metrics_flexible(pred, true)["flex_f1"] == pytest.approx(2 / 3)
    # one extra predicted pair: P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7
    pred2 = pred.copy()
    pred2[4], pred2[11] = 11, 4
    assert pair_metrics(pred2, true)["f1"] == pytest.approx(4 / 7)


def test_benchmark_scores_are_per_sequence_means(tmp_path):
    from genesis_rna.evaluate.archiveii import score
    from genesis_rna.structure.train import PairExample

    t = np.array([5, -1, -1, -1, -1, 0])
    a = PairExample("tRNA_a", "GAAAAC", t, family="tRNA")
    b = PairExample("tRNA_b", "GAAAAC", t, family="tRNA")
    c = PairExample("5s_c", "GAAAAC", t, family="5s")
    empty = np.full(6, -1)
    s = score({"tRNA_a": t, "tRNA_b": empty, "5s_c": t}, {"tRNA_a": a, "tRNA_b": b, "5s_c": c})
    assert s["families"]["tRNA"]["f1"] == pytest.approx(0.5)   # (1 + 0) / 2
    assert s["families"]["5s"]["f1"] == pytest.approx(1.0)
    assert s["overall"]["f1"] == pytest.approx(2 / 3)          # per sequence, not per family


# ----------------------------------------------------------------------------------------------- fold CLI
FASTA = """>hairpin1 a designed hairpin
GGGGAAACCCCAUAUGGGGAAACCCC
>tRNA/Phe yeast tRNA (id with a slash)
GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA
"""


def _hand_ct(path: Path) -> tuple[str, list[tuple[int, int]]]:
    """Minimal CT parser written from the format description (not genesis_rna.io)."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    n = int(lines[0][0])
    rows = lines[1:1 + n]
    seq = "".join(r[1] for r in rows)
    pairs = sorted((int(r[0]) - 1, int(r[4]) - 1) for r in rows if int(r[4]) > int(r[0]))
    assert [int(r[0]) for r in rows] == list(range(1, n + 1))
    return seq, pairs


def _hand_bpseq(path: Path) -> list[tuple[int, int]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and ln.split()[0].isdigit()]
    return sorted((int(r[0]) - 1, int(r[2]) - 1) for r in rows if int(r[2]) > int(r[0]))


def _dbn_pairs(db: str) -> list[tuple[int, int]]:
    stack, pairs = [], []
    for k, c in enumerate(db):
        if c == "(":
            stack.append(k)
        elif c == ")":
            pairs.append((stack.pop(), k))
    return sorted(pairs)


def test_fold_cli_vienna_outputs_read_back(tmp_path, capsys):
    RNA = pytest.importorskip("RNA")
    fa = tmp_path / "in.fa"
    fa.write_text(FASTA)
    out = tmp_path / "out"
    assert main(["fold", str(fa), "--model", "vienna", "--output", str(out), "--quiet"]) == 0
    assert "folded 2 records" in capsys.readouterr().out
    dbn = (out / "structures.dbn").read_text().split("\n")
    for stem, k in (("hairpin1", 0), ("tRNA_Phe", 1)):
        seq, ct_pairs = _hand_ct(out / f"{stem}.ct")
        assert dbn[3 * k + 1] == seq
        assert ct_pairs == _hand_bpseq(out / f"{stem}.bpseq") == _dbn_pairs(dbn[3 * k + 2])
        bpp = np.load(out / f"{stem}.npy")
        assert bpp.dtype == np.float32 and bpp.shape == (len(seq), len(seq))
        assert np.array_equal(bpp, bpp.T)
        # ViennaRNA-only mode: the matrix is ViennaRNA's own partition-function bpp
        fc = RNA.fold_compound(seq)
        _, mfe = fc.mfe()
        fc.exp_params_rescale(mfe)
        fc.pf()
        ref = np.array(fc.bpp())[1:, 1:]
        np.testing.assert_allclose(bpp, ref + ref.T, atol=1e-6)
        # every decoded pair is canonical, has probability above the threshold and is nested
        for i, j in ct_pairs:
            assert (seq[i], seq[j]) in CANON and bpp[i, j] > 0.5 and j - i > 3
    # a strongly determined fold: the MEA structure is ViennaRNA's MFE structure, and every pair of
    # probability > 0.5 (such pairs are always compatible) is in it
    seq, pairs = _hand_ct(out / "hairpin1.ct")
    assert pairs == _dbn_pairs(RNA.fold(seq)[0])
    bpp = np.load(out / "hairpin1.npy")
    assert {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(bpp > 0.5)), strict=True)} <= set(pairs)


def test_fold_cli_formats_and_pseudoknot_flag(tmp_path):
    pytest.importorskip("RNA")
    fa = tmp_path / "in.fa"
    fa.write_text(FASTA)
    out = tmp_path / "o"
    assert main(["fold", str(fa), "--model", "vienna", "-o", str(out), "--format", "dbn", "--pseudoknots",
                 "--allow-noncanonical", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["structures.dbn"]


@pytest.mark.parametrize("content, extra, expect", [
    (None, [], "No such file"),
    (">x\nMKVLAAGIVG\n", [], "x"),
    (FASTA, ["--threshold", "1.5"], "threshold"),
    (FASTA, ["--model", "/nonexistent/model"], "nonexistent"),
    (FASTA, ["--model", "vienna", "--no-vienna"], "contradict"),
])
def test_fold_cli_bad_input_one_line_exit_2(tmp_path, capsys, content, extra, expect):
    fa = tmp_path / "in.fa"
    if content is not None:
        fa.write_text(content)
    out = tmp_path / "out"
    assert main(["fold", str(fa), "-o", str(out), "-q", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("genesis-rna: error:") and expect in err
    assert not out.exists() or not any(out.iterdir())


def test_fold_cli_output_is_a_file(tmp_path, capsys):
    fa = tmp_path / "in.fa"
    fa.write_text(FASTA)
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["fold", str(fa), "-o", str(target), "--model", "vienna", "-q"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_long_sequences_use_windows():
    from genesis_rna.structure.fold import _Predictor, predict_windows

    class Const(_Predictor):
        window = 40
        calls: list[int] = []

        def predict(self, sequence):
            self.calls.append(len(sequence))
            return np.full((len(sequence), len(sequence)), 0.5, dtype=np.float32)

    pred = Const()
    p = predict_windows(pred, "A" * 100)
    assert max(pred.calls) == 40 and len(pred.calls) > 2
    assert p[0, 39] == 0.5 and p[0, 99] == 0.0        # pairs beyond any window get 0
    assert np.array_equal(p, p.T)


def test_summary_pools_families_over_folds(tmp_path):
    import json

    from genesis_rna.evaluate.archiveii import summarise

    (tmp_path / "folds").mkdir()
    for fold, (f1_a, n_a), (f1_b, n_b) in (("0", (1.0, 3), (0.5, 2)), ("1", (0.0, 1), (0.5, 2))):
        fams = {"tRNA": {"n": n_a, "f1": f1_a, "flex_f1": f1_a}, "5s": {"n": n_b, "f1": f1_b, "flex_f1": f1_b}}
        overall = (f1_a * n_a + f1_b * n_b) / (n_a + n_b)
        rec = {"split": "kfold", "fold": fold, "method": "m", "n_test": n_a + n_b, "n_test_total": n_a + n_b,
               "wall_s": 1.0, "scores": {"overall": {"f1": overall, "flex_f1": overall}, "families": fams}}
        (tmp_path / "folds" / f"kfold_{fold}_m.json").write_text(json.dumps(rec))
    res = summarise(tmp_path)
    assert res["families"]["kfold"]["m"]["tRNA"]["f1"] == pytest.approx(3 / 4)   # (1*3 + 0*1) / 4
    assert res["families"]["kfold"]["m"]["5s"]["f1"] == pytest.approx(0.5)
    # mean over folds: fold 0 = (3 + 1) / 5 = 0.8, fold 1 = (0 + 1) / 3 = 1/3
    assert res["table"]["kfold"]["m"]["_mean_over_folds"]["f1"] == pytest.approx((0.8 + 1 / 3) / 2)
    assert "| m | 0.500 (n=4) | 0.750 (n=4) |" in (tmp_path / "results.md").read_text()


def test_fold_cli_with_a_structure_model_directory(tmp_path, capsys):
    from genesis_rna.structure.model import build_structure_model, save_structure_model

    fa = tmp_path / "in.fa"
    fa.write_text(FASTA)
    plain, hybrid = tmp_path / "plain", tmp_path / "hybrid"
    save_structure_model(build_structure_model(None, channels=4, dilations=(1,)), plain)
    save_structure_model(build_structure_model(None, channels=4, dilations=(1,), use_vienna=True), hybrid)
    out = tmp_path / "out"
    assert main(["fold", str(fa), "--model", str(plain), "--no-vienna", "-o", str(out), "-q"]) == 0
    for stem in ("hairpin1", "tRNA_Phe"):
        seq, pairs = _hand_ct(out / f"{stem}.ct")
        bpp = np.load(out / f"{stem}.npy")
        assert np.array_equal(bpp, bpp.T) and bpp.shape == (len(seq), len(seq))
        assert all((seq[i], seq[j]) in CANON and j - i > 3 for i, j in pairs)
    capsys.readouterr()
    assert main(["fold", str(fa), "--model", str(hybrid), "--no-vienna", "-o", str(tmp_path / "o2"), "-q"]) == 2
    assert "ViennaRNA prior" in capsys.readouterr().err


def test_vienna_parameter_sets_switch_and_restore():
    """Each bundled set changes ViennaRNA's energies; loading turner2004 gives RNAfold's defaults back."""
    import RNA

    from genesis_rna.errors import InputError
    from genesis_rna.evaluate.archiveii import VIENNA_PARAMS, use_vienna_params

    seq = "GGGGAAACCCCAUAGGGGAAACCCCA"
    default = RNA.fold(seq)[1]
    try:
        energies = {}
        for name in VIENNA_PARAMS:
            use_vienna_params(name)
            energies[name] = RNA.fold_compound(seq).mfe()[1]
        assert energies["turner2004"] == pytest.approx(default)
        assert len({round(e, 2) for e in energies.values()}) == len(VIENNA_PARAMS)  # four different energy models
        with pytest.raises(InputError, match="langdon2018"):
            use_vienna_params("nupack")
    finally:
        use_vienna_params("turner2004")
    assert RNA.fold(seq)[1] == pytest.approx(default)
