"""Losses and metrics against hand computations and plain PyTorch references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis_rna.config import TrainingConfig
from genesis_rna.errors import GenesisRNAError, InputError
from genesis_rna.training.losses import (
    LossOutput,
    MultiTaskLoss,
    mlm_accuracy,
    mlm_loss,
    pair_loss,
    perplexity,
    structure_accuracy,
    structure_loss,
)

IGNORE = -100


def _token_batch(seed: int = 0, batch: int = 3, length: int = 7, classes: int = 9):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, classes, generator=g)
    labels = torch.randint(0, classes, (batch, length), generator=g)
    keep = torch.rand(batch, length, generator=g) < 0.5
    labels[~keep] = IGNORE
    labels[0, 0] = 2  # at least one target in sample 0
    labels[-1] = IGNORE  # the last sample has no targets at all
    return logits, labels


def _reference_nll(logits: torch.Tensor, labels: torch.Tensor) -> list[list[float]]:
    """Per-sample lists of -log softmax at the label, by explicit log-softmax and gather."""
    log_probs = logits.log_softmax(-1)
    out = []
    for b in range(labels.shape[0]):
        out.append([-float(log_probs[b, t, labels[b, t]]) for t in range(labels.shape[1]) if labels[b, t] != IGNORE])
    return out


def _upper_pairs(pair_matrix: torch.Tensor, b: int, min_loop: int) -> list[tuple[int, int]]:
    length = pair_matrix.shape[-1]
    return [(i, j) for i in range(length) for j in range(i + 1, length)
            if j - i > min_loop and pair_matrix[b, i, j] != IGNORE]


def _pair_batch(seed: int = 0, batch: int = 3, length: int = 9):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(batch, length, length, generator=g)
    logits = (raw + raw.transpose(1, 2)) / 2
    matrix = (torch.rand(batch, length, length, generator=g) < 0.15).float()
    matrix = torch.maximum(matrix, matrix.transpose(1, 2))
    matrix[0, :, -2:] = IGNORE  # padding of sample 0
    matrix[0, -2:, :] = IGNORE
    matrix[1, 0, 5] = matrix[1, 5, 0] = 1.0
    matrix[-1] = IGNORE  # a sequence without known structure
    return logits, matrix


# ---------------------------------------------------------------------------------------------------- MLM


def test_mlm_mean_sum_per_sample_match_explicit_log_softmax():
    logits, labels = _token_batch()
    ref = _reference_nll(logits, labels)
    flat = [v for sample in ref for v in sample]
    assert mlm_loss(logits, labels).item() == pytest.approx(sum(flat) / len(flat), rel=1e-5)
    assert mlm_loss(logits, labels, "sum").item() == pytest.approx(sum(flat), rel=1e-5)
    per_sample, counts = mlm_loss(logits, labels, "per_sample", return_counts=True)
    expected = [sum(s) / len(s) if s else 0.0 for s in ref]
    assert per_sample.tolist() == pytest.approx(expected, rel=1e-5)
    assert counts.tolist() == [len(s) for s in ref]
    assert per_sample[-1].item() == 0.0


def test_mlm_none_is_elementwise_with_zeros_at_ignored():
    logits, labels = _token_batch(seed=1)
    out = mlm_loss(logits, labels, "none")
    assert out.shape == labels.shape
    assert torch.all(out[labels == IGNORE] == 0)
    ref = F.cross_entropy(logits[labels != IGNORE], labels[labels != IGNORE], reduction="none")
    torch.testing.assert_close(out[labels != IGNORE], ref)


def test_mlm_all_ignored_is_zero_with_a_graph():
    logits = torch.randn(2, 5, 9, requires_grad=True)
    labels = torch.full((2, 5), IGNORE)
    for reduction in ("mean", "sum", "per_sample"):
        loss = mlm_loss(logits, labels, reduction)
        assert torch.all(loss == 0) and not torch.isnan(loss).any()
    loss = mlm_loss(logits, labels)
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_mlm_gradient_only_at_targets():
    logits, labels = _token_batch(seed=2)
    logits.requires_grad_(True)
    mlm_loss(logits, labels).backward()
    grad_norm = logits.grad.abs().sum(-1)
    assert torch.all(grad_norm[labels == IGNORE] == 0)
    assert torch.all(grad_norm[labels != IGNORE] > 0)


def test_half_precision_logits_are_computed_in_float32():
    logits, labels = _token_batch(seed=3)
    loss = mlm_loss(logits.bfloat16(), labels)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(mlm_loss(logits.bfloat16().float(), labels).item(), rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), length=st.integers(1, 6), seed=st.integers(0, 10_000),
       keep=st.floats(0.0, 1.0))
def test_reductions_are_consistent(batch, length, seed, keep):
    """sum == sum(per_sample * counts) and mean == sum / total count, for any ignore pattern."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, 5, generator=g)
    labels = torch.randint(0, 5, (batch, length), generator=g)
    labels[torch.rand(batch, length, generator=g) >= keep] = IGNORE
    per_sample, counts = structure_loss(logits, labels, "per_sample", return_counts=True)
    total = structure_loss(logits, labels, "sum")
    assert (per_sample * counts).sum().item() == pytest.approx(total.item(), rel=1e-5, abs=1e-6)
    expected_mean = total.item() / counts.sum().item() if counts.sum() > 0 else 0.0
    assert structure_loss(logits, labels).item() == pytest.approx(expected_mean, rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------------------------------------- structure


def test_structure_class_weights_match_torch_and_hand_per_sample():
    logits, labels = _token_batch(seed=4, classes=5)
    weight = torch.tensor([0.2, 1.0, 2.0, 3.0, 1.5])
    valid = labels != IGNORE
    ref = F.cross_entropy(logits[valid], labels[valid], weight=weight)
    assert structure_loss(logits, labels, class_weight=weight).item() == pytest.approx(ref.item(), rel=1e-5)
    per_sample = structure_loss(logits, labels, "per_sample", class_weight=weight)
    nll = _reference_nll(logits, labels)
    for b in range(labels.shape[0]):
        ws = [float(weight[y]) for y in labels[b][valid[b]]]
        expected = sum(w * v for w, v in zip(ws, nll[b], strict=True)) / sum(ws) if ws else 0.0
        assert per_sample[b].item() == pytest.approx(expected, rel=1e-5)


def test_shape_and_reduction_errors_are_genesis_errors():
    logits, labels = _token_batch()
    with pytest.raises(InputError, match="reduction"):
        mlm_loss(logits, labels, "average")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        structure_loss(logits, labels[:, :-1])
    with pytest.raises(GenesisRNAError):
        pair_loss(torch.randn(2, 3, 4), torch.zeros(2, 3, 4))


# --------------------------------------------------------------------------------------------------- pairs


@pytest.mark.parametrize("min_loop", [0, 3])
@pytest.mark.parametrize("pos_weight", [None, 7.5])
def test_pair_loss_matches_bce_on_hand_picked_upper_triangle(min_loop, pos_weight):
    logits, matrix = _pair_batch()
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    per_sample_ref, all_x, all_y = [], [], []
    for b in range(matrix.shape[0]):
        pairs = _upper_pairs(matrix, b, min_loop)
        x = torch.stack([logits[b, i, j] for i, j in pairs]) if pairs else torch.zeros(0)
        y = torch.stack([matrix[b, i, j] for i, j in pairs]) if pairs else torch.zeros(0)
        all_x.append(x)
        all_y.append(y)
        per_sample_ref.append(F.binary_cross_entropy_with_logits(x, y, pos_weight=pw).item() if pairs else 0.0)
    x, y = torch.cat(all_x), torch.cat(all_y)
    ref_mean = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw)
    ref_sum = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="sum")
    kw = {"pos_weight": pos_weight, "min_loop": min_loop}
    assert pair_loss(logits, matrix, **kw).item() == pytest.approx(ref_mean.item(), rel=1e-5)
    assert pair_loss(logits, matrix, "sum", **kw).item() == pytest.approx(ref_sum.item(), rel=1e-5)
    per_sample, counts = pair_loss(logits, matrix, "per_sample", return_counts=True, **kw)
    assert per_sample.tolist() == pytest.approx(per_sample_ref, rel=1e-5, abs=1e-7)
    assert counts.tolist() == [len(_upper_pairs(matrix, b, min_loop)) for b in range(matrix.shape[0])]


def test_pair_loss_ignores_lower_triangle_and_close_positions():
    logits, matrix = _pair_batch(seed=1)
    base = pair_loss(logits, matrix, min_loop=3)
    changed = logits.clone()
    lower = torch.ones(9, 9).tril().bool()
    changed[:, lower] += 5.0
    band = (torch.arange(9)[None] - torch.arange(9)[:, None]).abs() <= 3
    changed[:, band] -= 3.0
    assert pair_loss(changed, matrix, min_loop=3).item() == pytest.approx(base.item(), rel=1e-6)


def test_pair_none_and_gradients_only_on_counted_entries():
    logits, matrix = _pair_batch(seed=2)
    logits.requires_grad_(True)
    full = pair_loss(logits, matrix, "none", min_loop=1)
    assert full.shape == matrix.shape
    counted = torch.zeros_like(matrix, dtype=torch.bool)
    for b in range(matrix.shape[0]):
        for i, j in _upper_pairs(matrix, b, 1):
            counted[b, i, j] = True
    assert torch.all(full[~counted] == 0) and torch.all(full[counted] > 0)
    pair_loss(logits, matrix, min_loop=1).backward()
    assert torch.all(logits.grad[~counted] == 0) and torch.all(logits.grad[counted] != 0)


def test_pair_all_ignored_is_zero_and_backward_works():
    logits = torch.randn(2, 6, 6, requires_grad=True)
    matrix = torch.full((2, 6, 6), float(IGNORE))
    loss = pair_loss(logits, matrix)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)
    assert pair_loss(logits, matrix, "per_sample").tolist() == [0.0, 0.0]


def test_pair_soft_targets_allowed():
    logits = torch.zeros(1, 5, 5)
    matrix = torch.full((1, 5, 5), 0.25)
    # BCE at logit 0 is log(2) whatever the target
    assert pair_loss(logits, matrix, min_loop=0).item() == pytest.approx(math.log(2), rel=1e-6)


# ----------------------------------------------------------------------------------------------- multi-task


def _outputs_and_batch(seed: int = 0):
    logits, labels = _token_batch(seed, batch=3, length=9)
    struct_logits, struct_labels = _token_batch(seed + 1, batch=3, length=9, classes=5)
    pair_logits, pair_matrix = _pair_batch(seed + 2, batch=3, length=9)
    outputs = {"mlm_logits": logits, "struct_logits": struct_logits, "pair_logits": pair_logits}
    batch = {"input_ids": torch.full((3, 9), 4), "mlm_labels": labels, "struct_labels": struct_labels,
             "pair_matrix": pair_matrix}
    return outputs, batch


def test_multitask_total_and_per_sample_are_weighted_sums():
    outputs, batch = _outputs_and_batch()
    loss_fn = MultiTaskLoss(1.0, 0.5, 0.25)
    out = loss_fn(outputs, batch, per_sample=True)
    assert isinstance(out, LossOutput)
    m = mlm_loss(outputs["mlm_logits"], batch["mlm_labels"])
    s = structure_loss(outputs["struct_logits"], batch["struct_labels"])
    p = pair_loss(outputs["pair_logits"], batch["pair_matrix"])
    assert out.total.item() == pytest.approx((m + 0.5 * s + 0.25 * p).item(), rel=1e-5)
    assert (out.mlm.item(), out.structure.item(), out.pair.item()) == pytest.approx((m.item(), s.item(), p.item()))
    ps = (mlm_loss(outputs["mlm_logits"], batch["mlm_labels"], "per_sample")
          + 0.5 * structure_loss(outputs["struct_logits"], batch["struct_labels"], "per_sample")
          + 0.25 * pair_loss(outputs["pair_logits"], batch["pair_matrix"], "per_sample"))
    torch.testing.assert_close(out.per_sample, ps)
    assert not out.mlm.requires_grad
    assert set(out.to_dict()) == {"loss", "mlm_loss", "structure_loss", "pair_loss"}


def test_multitask_gradients_flow_to_every_head():
    outputs, batch = _outputs_and_batch(seed=5)
    for v in outputs.values():
        v.requires_grad_(True)
    MultiTaskLoss()(outputs, batch).total.backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in outputs.values())


def test_multitask_skips_missing_heads_labels_and_zero_weights():
    outputs, batch = _outputs_and_batch()
    del outputs["pair_logits"]
    del batch["struct_labels"]
    out = MultiTaskLoss()(outputs, batch, per_sample=True)
    assert out.structure is None and out.pair is None
    assert out.total.item() == pytest.approx(out.mlm.item())
    torch.testing.assert_close(out.per_sample, mlm_loss(outputs["mlm_logits"], batch["mlm_labels"], "per_sample"))
    assert MultiTaskLoss(mlm_weight=0.0, structure_weight=1.0)(*_outputs_and_batch()).mlm is None
    assert MultiTaskLoss()(outputs, batch).per_sample is None
    with pytest.raises(InputError, match="no task"):
        MultiTaskLoss()({"mlm_logits": outputs["mlm_logits"]}, {"input_ids": batch["input_ids"]})


def test_multitask_from_training_config_and_validation():
    cfg = TrainingConfig(mlm_loss_weight=2.0, structure_loss_weight=0.0, pair_loss_weight=0.1)
    loss_fn = MultiTaskLoss.from_training_config(cfg)
    assert (loss_fn.mlm_weight, loss_fn.structure_weight, loss_fn.pair_weight) == (2.0, 0.0, 0.1)
    with pytest.raises(InputError):
        MultiTaskLoss(mlm_weight=-1.0)


# --------------------------------------------------------------------------------------------------- metrics


def test_accuracy_counts_and_perplexity():
    logits = torch.tensor([[[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]])
    labels = torch.tensor([[1, 2, IGNORE]])
    assert mlm_accuracy(logits, labels) == (1, 2)
    assert structure_accuracy(logits, torch.tensor([[1, 0, 2]])) == (3, 3)
    assert structure_accuracy(logits, torch.full((1, 3), IGNORE)) == (0, 0)
    assert perplexity(math.log(4.0)) == pytest.approx(4.0)
    assert perplexity(torch.tensor(0.0)) == 1.0
    assert perplexity(1e6) == math.inf
