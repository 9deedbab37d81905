"""The v2 structure-aware parts: canonical-pairing features, the pairing attention bias, the conv pair-head
refiner, and ViennaRNA soft pair targets through the shard store.

References: pair types and helix seeds are written out by hand for short sequences; soft targets are compared
with ViennaRNA's own ``bpp()`` called directly; model properties (zero-initialised bias changes nothing,
symmetry, padding invariance, SDPA == explicit attention) are mathematical facts of the construction.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genesis_rna.config import GenesisRNAConfig
from genesis_rna.data.dataset import RNAPretrainDataset, collate_pretrain
from genesis_rna.data.format import SOFT_PAIR_MIN_PROB
from genesis_rna.data.preprocess import fold_soft_pairs, preprocess
from genesis_rna.data.store import ShardStore
from genesis_rna.model.encoder import GenesisRNAModel
from genesis_rna.model.heads import PAIRING_CHANNELS, pairing_features
from genesis_rna.tokenization import RNATokenizer

RNA = pytest.importorskip("RNA")


def ids_of(seq: str) -> torch.Tensor:
    return RNATokenizer()([seq])["input_ids"]


def test_pairing_features_by_hand() -> None:
    seq = "GGAUCC"  # tokens: [CLS] G G A U C C [SEP]; token index = nucleotide index + 1
    f = pairing_features(ids_of(seq))[0]
    ch = {name: f[k] for k, name in enumerate(PAIRING_CHANNELS)}
    canonical = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}
    for i, a in enumerate(seq):
        for j, b in enumerate(seq):
            want = 1.0 if (a, b) in canonical else 0.0
            got = (ch["AU"] + ch["GC"] + ch["GU"])[i + 1, j + 1].item()
            assert got == want, (i, j, a, b)
    # specials pair with nothing
    assert ch["AU"][0].sum() == ch["GC"][:, -1].sum() == 0
    # G1-C6 (0-based 0, 5) has inner neighbour G2-C5 canonical -> helix seed; G2-C5 has outer G1-C6
    assert ch["stack_inner"][1, 6] == 1 and ch["stack_outer"][2, 5] == 1
    # A3-U4 closes nothing: too close, and its outer neighbour G2-C5 is canonical
    assert ch["too_close"][3, 4] == 1 and ch["stack_outer"][3, 4] == 1
    assert ch["too_close"][1, 6] == 0


def small(**kw) -> GenesisRNAConfig:
    return GenesisRNAConfig(d_model=32, n_heads=4, n_layers=2, dim_ff=64, max_len=64, dropout=0.0, **kw)


def test_zero_initialised_bias_changes_nothing() -> None:
    torch.manual_seed(0)
    plain = GenesisRNAModel(small()).eval()
    biased = GenesisRNAModel(small(pair_bias=True)).eval()
    missing, unexpected = biased.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("encoder.pairing_bias.") for k in missing)
    ids = RNATokenizer()(["GGGAAACCCAUGC", "ACGUAGC"], padding=True)
    with torch.no_grad():
        a = plain(ids["input_ids"], ids["attention_mask"], repr_layers=[-1])["representations"][2]
        b = biased(ids["input_ids"], ids["attention_mask"], repr_layers=[-1])["representations"][2]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_bias_sdpa_matches_explicit_and_padding_invariant() -> None:
    torch.manual_seed(1)
    model = GenesisRNAModel(small(pair_bias=True, pair_conv_layers=2)).eval()
    with torch.no_grad():
        for p in model.encoder.pairing_bias.parameters():
            p.normal_(0, 0.5)
    tok = RNATokenizer()
    batch = tok(["GGGAAACCCAUGCAUUU", "ACGUAGC"], padding=True)
    with torch.no_grad():
        fast = model(batch["input_ids"], batch["attention_mask"], repr_layers=[-1])
        slow = model(batch["input_ids"], batch["attention_mask"], repr_layers=[-1], need_attentions=True)
        alone = model(tok(["ACGUAGC"])["input_ids"], repr_layers=[-1])
    torch.testing.assert_close(fast["representations"][2], slow["representations"][2], rtol=1e-4, atol=1e-5)
    n = 9  # ACGUAGC + specials
    torch.testing.assert_close(fast["representations"][2][1, :n], alone["representations"][2][0], rtol=1e-4,
                               atol=1e-5)
    z = fast["pair_logits"]
    assert torch.equal(z, z.transpose(1, 2))
    # the bias moves the attention: without it, the same weights give other representations
    model.encoder.pairing_bias = None
    with torch.no_grad():
        plain = model(batch["input_ids"], batch["attention_mask"], repr_layers=[-1], return_logits=False)
    assert not torch.allclose(plain["representations"][2], fast["representations"][2], atol=1e-3)


def test_soft_pairs_match_viennarna() -> None:
    seq = "GGGGAAACCCCAUAUGGGAAACCCAUAU"
    partner, (i, j, p) = fold_soft_pairs(seq)
    fc = RNA.fold_compound(seq)
    fc.pf()
    ref = np.array(fc.bpp())[1:, 1:]
    assert np.all(i < j) and np.all(p >= SOFT_PAIR_MIN_PROB - 1e-3)
    np.testing.assert_allclose(p.astype(np.float64), ref[i, j], atol=1e-3)
    want = {(a, b) for a, b in zip(*np.nonzero(ref > 0.5), strict=True) if a < b}
    got = {(a, int(partner[a])) for a in range(len(seq)) if partner[a] > a}
    assert got == want and len(want) > 0


def test_store_carries_soft_pairs_into_batches(tmp_path) -> None:
    seqs = ["GGGGAAACCCCAUAUGGGAAACCCAUAU", "GCGCUUCGGCGCAAAA", "AUGGCUACGUAGCUAGCUAGGCGAUCGA"]
    fa = tmp_path / "x.fa"
    fa.write_text("".join(f">r{k}\n{s}\n" for k, s in enumerate(seqs)))
    preprocess([fa], tmp_path / "st", fold_method="bpp", workers=0, progress=False, split=(1.0, 0.0, 0.0))
    store = ShardStore(tmp_path / "st")
    assert store.manifest["structure_source"]["vienna_bpp"] == 3
    sample = store[0]
    assert sample.structure_source == "vienna_bpp"
    _, (i, j, p) = fold_soft_pairs(seqs[0])
    np.testing.assert_array_equal(sample.soft_pairs[0], i)
    ds = RNAPretrainDataset(store, max_len=40, mlm_probability=0.0)
    batch = collate_pretrain([ds[0], ds[1]])
    pm = batch["pair_matrix"][0]
    np.testing.assert_allclose(pm[i + 1, j + 1].numpy(), p.astype(np.float32))
    np.testing.assert_allclose(pm[j + 1, i + 1].numpy(), p.astype(np.float32))
    assert set(np.unique(pm[1:29, 1:29].numpy())) <= set(p.astype(np.float32).tolist()) | {0.0}
    assert (pm[0] == -100).all() and (pm[:, 0] == -100).all()


def test_fold_fraction_folds_a_reproducible_share(tmp_path) -> None:
    rng = np.random.default_rng(0)
    fa = tmp_path / "x.fa"
    fa.write_text("".join(f">r{k}\n{''.join(rng.choice(list('ACGU'), 30))}\n" for k in range(200)))
    reports = [preprocess([fa], tmp_path / f"st{k}", fold_method="bpp", fold_fraction=0.25, workers=0,
                          progress=False) for k in range(2)]
    folded = [r.structure_source["vienna_bpp"] for r in reports]
    assert folded[0] == folded[1] and 25 <= folded[0] <= 75
    assert reports[0].structure_source["none"] == 200 - folded[0]
