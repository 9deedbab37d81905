"""Tests of genesis_rna.model.heads against hand-written references."""

from __future__ import annotations

import math

import pytest
import torch

from genesis_rna.model.heads import (
    ConvPool,
    MLMHead,
    MutationEffectHead,
    PairHead,
    SequenceClassificationHead,
    SequenceRegressionHead,
    StructureHead,
    TokenClassificationHead,
    TokenRegressionHead,
    build_norm,
    masked_mean,
    nucleotide_mask,
)
from genesis_rna.tokenization import RNATokenizer

D = 16


@pytest.fixture()
def hidden() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(3, 7, D)


def test_masked_mean_matches_loop(hidden) -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 0, 1, 1], [1] * 7])
    out = masked_mean(hidden, mask)
    for b in range(3):
        rows = [hidden[b, t] for t in range(7) if mask[b, t]]
        torch.testing.assert_close(out[b], sum(rows) / len(rows))
    torch.testing.assert_close(masked_mean(hidden, None), hidden.mean(1))
    torch.testing.assert_close(masked_mean(hidden, mask.bool()), out)


def test_masked_mean_empty_row_is_zero_and_bf16(hidden) -> None:
    mask = torch.ones(3, 7)
    mask[1] = 0
    out = masked_mean(hidden, mask)
    assert torch.all(out[1] == 0) and torch.isfinite(out).all()
    low = masked_mean(hidden.bfloat16(), mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), out, atol=0.02, rtol=0.02)
    with pytest.raises(ValueError, match="mask shape"):
        masked_mean(hidden, mask[:, :3])


def test_nucleotide_mask() -> None:
    batch = RNATokenizer()(["ACGU", "GG"])
    ids = batch["input_ids"].clone()
    ids[0, 2] = 1  # [MASK] still stands for a nucleotide
    assert nucleotide_mask(ids).tolist() == [[False, True, True, True, True, False],
                                             [False, True, True, False, False, False]]


def test_pair_head_formula_and_exact_symmetry(hidden) -> None:
    torch.manual_seed(1)
    head = PairHead(D, pair_dim=4)
    with torch.no_grad():
        head.bias.fill_(0.3)
    out = head(hidden)
    assert out.shape == (3, 7, 7)
    assert torch.equal(out, out.transpose(1, 2))
    q, k = head.q_proj(hidden), head.k_proj(hidden)
    for b, i, j in [(0, 1, 5), (2, 6, 0), (1, 3, 3)]:
        expected = (q[b, i] @ k[b, j] + q[b, j] @ k[b, i]) / (2 * math.sqrt(4)) + 0.3
        torch.testing.assert_close(out[b, i, j], expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head(hidden)
    assert torch.equal(low, low.transpose(1, 2))


def test_pair_head_is_not_forced_diagonal_dominant() -> None:
    """With two maps the form is indefinite: a position can score below its partner against itself."""
    torch.manual_seed(2)
    head = PairHead(D, pair_dim=8)
    logits = head(torch.randn(1, 20, D))[0]
    assert (logits.diagonal() < logits.max(dim=1).values).any()


def test_mlm_and_structure_heads(hidden) -> None:
    mlm = MLMHead(D, 9)
    ref = mlm.decoder(torch.nn.functional.layer_norm(torch.nn.functional.gelu(mlm.dense(hidden)), (D,),
                                                     mlm.norm.weight, mlm.norm.bias, 1e-5))
    torch.testing.assert_close(mlm(hidden), ref)
    assert StructureHead(D, 5, norm_type="rmsnorm")(hidden).shape == (3, 7, 5)
    assert isinstance(build_norm("rmsnorm", D), torch.nn.RMSNorm)
    with pytest.raises(ValueError):
        build_norm("batchnorm", D)


def test_generic_heads_shapes(hidden) -> None:
    mask = torch.ones(3, 7)
    assert SequenceClassificationHead(D, 13)(hidden, mask).shape == (3, 13)
    assert SequenceClassificationHead(D, 13, pooling="cls", hidden_dim=0)(hidden).shape == (3, 13)
    assert SequenceRegressionHead(D)(hidden, mask).shape == (3, 1)
    assert TokenClassificationHead(D, 3)(hidden).shape == (3, 7, 3)
    assert TokenRegressionHead(D, 2, hidden_dim=0)(hidden).shape == (3, 7, 2)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassificationHead(D, 2, pooling="max")


def test_sequence_head_pooling_ignores_masked_rows(hidden) -> None:
    head = SequenceClassificationHead(D, 4).eval()
    mask = torch.zeros(3, 7)
    mask[:, 1:4] = 1
    changed = hidden.clone()
    changed[:, 4:] = 100.0
    torch.testing.assert_close(head(hidden, mask), head(changed, mask))
    cls = SequenceClassificationHead(D, 4, pooling="cls").eval()
    changed[:, 1:] = -5.0
    torch.testing.assert_close(cls(hidden), cls(changed))
    probe = SequenceClassificationHead(D, 4, hidden_dim=0).eval()
    linear = probe.mlp[-1]
    torch.testing.assert_close(probe(hidden, mask), linear(masked_mean(hidden, mask)))


def test_conv_pool_matches_a_hand_loop_and_ignores_masked_rows() -> None:
    """ConvPool = max and mean over real rows of relu(sum_k W[:, :, k] x[t + k - 1] + b), zeros outside the mask."""
    torch.manual_seed(1)
    d, width, kernel = 3, 4, 3
    pool_ = ConvPool(d, width=width, kernel=kernel).double()
    x = torch.randn(2, 6, d, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    w, b = pool_.conv.weight, pool_.conv.bias
    expected = []
    for i in range(2):
        rows = []
        for t in range(6):
            acc = b.clone()
            for k in range(kernel):
                u = t + k - 1
                if 0 <= u < 6 and mask[i, u]:
                    acc = acc + w[:, :, k] @ x[i, u]
            rows.append(torch.relu(acc))
        kept = torch.stack([r for t, r in enumerate(rows) if mask[i, t]])
        expected.append(torch.cat([kept.max(0).values, kept.mean(0)]))
    torch.testing.assert_close(pool_(x, mask), torch.stack(expected))
    changed = x.clone()
    changed[1, 0], changed[1, 4:] = 50.0, -50.0
    torch.testing.assert_close(pool_(changed, mask), pool_(x, mask))


def test_conv_pooling_same_with_specials_present_or_stripped(hidden) -> None:
    """Full fine-tuning feeds [CLS] x [SEP] [PAD] with a nucleotide mask; frozen mode feeds the bare rows."""
    head = SequenceClassificationHead(D, 3, pooling="conv").eval()
    hidden = hidden[:2]
    ids = torch.tensor([RNATokenizer().encode("ACGUA"), RNATokenizer().encode("ACG") + [0, 0]])
    mask = nucleotide_mask(ids)
    bare = torch.zeros(2, 5, D)
    bare[0], bare[1, :3] = hidden[0, 1:6], hidden[1, 1:4]
    bare_mask = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(head(hidden, mask), head(bare, bare_mask))
    assert head(hidden, mask).shape == (2, 3)


def test_token_head_context_reads_neighbours_and_only_real_rows(hidden) -> None:
    """With conv context a position's output depends on its neighbours' rows, never on rows outside the mask;
    stripping [CLS]/[SEP] (frozen caches) or keeping them masked (full fine-tuning) gives the same outputs."""
    torch.manual_seed(0)
    head = TokenRegressionHead(D, 2, context_layers=2).eval()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    base = head(hidden, mask)
    near = hidden.clone()
    near[0, 3] += 1.0
    assert not torch.allclose(head(near, mask)[0, 2], base[0, 2])  # neighbour changed -> output changes
    far = hidden.clone()
    far[1, 5:] = 100.0
    torch.testing.assert_close(head(far, mask)[1, :5], base[1, :5])
    with_specials = torch.zeros(3, 9, D)
    with_specials[:, 1:8] = hidden
    mask9 = torch.zeros(3, 9, dtype=torch.bool)
    mask9[:, 1:8] = mask
    torch.testing.assert_close(head(with_specials, mask9)[:, 1:8][mask], base[mask])
    plain = TokenRegressionHead(D, 2)
    assert plain.context is None and plain.mlp[1].in_features == D


def test_mutation_effect_antisymmetric(hidden) -> None:
    head = MutationEffectHead(D).eval()
    wt, mut = hidden, hidden + 0.5 * torch.randn_like(hidden)
    score = head(wt, mut)
    assert score.shape == (3,)
    torch.testing.assert_close(head(mut, wt), -score)
    assert torch.all(head(wt, wt) == 0)
    # indels: different lengths with their own masks
    shorter = hidden[:, :5]
    assert head(hidden, shorter, torch.ones(3, 7), torch.ones(3, 5)).shape == (3,)


def test_mutation_effect_plain_and_site_features(hidden) -> None:
    plain = MutationEffectHead(D, antisymmetric=False).eval()
    mlp = plain.mlp
    a, b = masked_mean(hidden[:2]), masked_mean(hidden[1:])
    torch.testing.assert_close(plain(hidden[:2], hidden[1:]), mlp(torch.cat([a, b, b - a], -1)).squeeze(-1))
    site = MutationEffectHead(D, use_site_features=True).eval()
    mut = hidden.clone()
    mut[:, 3] += 1.0
    site_mask = torch.zeros(3, 7)
    site_mask[:, 3] = 1
    assert site(hidden, mut, site_mask=site_mask).shape == (3,)
    with pytest.raises(ValueError, match="site_mask"):
        site(hidden, mut)
    with pytest.raises(ValueError, match="equal length"):
        site(hidden, mut[:, :5], site_mask=site_mask)
