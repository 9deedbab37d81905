"""Tests of genesis_rna.model.encoder against independent references (hand-written attention, rotary by complex numbers,
parameter counts by formula), plus padding invariance, precision, checkpointing and input validation."""

from __future__ import annotations

import math

import pytest
import torch

from genesis_rna.config import GenesisRNAConfig
from genesis_rna.errors import GenesisRNAError, InputError
from genesis_rna.model.encoder import GenesisRNAModel
from genesis_rna.model.layers import (
    MultiHeadSelfAttention,
    RotaryEmbedding,
    key_padding_mask,
    sinusoidal_table,
)
from genesis_rna.tokenization import CLS_ID, PAD_ID, SEP_ID

POSITION_TYPES = ("rotary", "learned", "sinusoidal")


def tiny_config(**overrides) -> GenesisRNAConfig:
    base = {"d_model": 32, "n_heads": 4, "n_layers": 2, "dim_ff": 64, "max_len": 24, "dropout": 0.0,
            "pair_head_dim": 8}
    return GenesisRNAConfig(**{**base, **overrides})


def tiny_model(seed: int = 0, **overrides) -> GenesisRNAModel:
    torch.manual_seed(seed)
    return GenesisRNAModel(tiny_config(**overrides)).eval()


def random_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] random nucleotides [SEP]`` right-padded to the longest, and its attention mask."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths) + 2
    ids = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, 0] = CLS_ID
        ids[row, 1 : n + 1] = torch.randint(4, 9, (n,), generator=gen)
        ids[row, n + 1] = SEP_ID
    return ids, (ids != PAD_ID).long()


# ---------------------------------------------------------------------------------------------------------
# Attention against a hand-written reference
# ---------------------------------------------------------------------------------------------------------


def reference_rotary(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs (i, i + D/2) by angle pos * base^(-2i/D), written with complex numbers in float64."""
    dim = x.shape[-1]
    half = dim // 2
    pos = torch.arange(x.shape[-2], dtype=torch.float64)[:, None]
    theta = base ** (-torch.arange(half, dtype=torch.float64) * 2 / dim)
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(torch.ones(1, dtype=torch.float64),
                                                                                   pos * theta)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def reference_attention(attn: MultiHeadSelfAttention, x: torch.Tensor, mask: torch.Tensor, rotary_base: float | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop over batch and heads: softmax(q k^T / sqrt(d)) v with padded keys removed, float64."""
    batch, length, d_model = x.shape
    heads, dh = attn.n_heads, attn.head_dim
    w_qkv, b_qkv = attn.qkv.weight.double(), attn.qkv.bias.double()
    qkv = x.double() @ w_qkv.T + b_qkv
    q, k, v = qkv[..., :d_model], qkv[..., d_model : 2 * d_model], qkv[..., 2 * d_model :]
    out = torch.zeros(batch, length, d_model, dtype=torch.float64)
    weights = torch.zeros(batch, heads, length, length, dtype=torch.float64)
    for b in range(batch):
        real = mask[b].bool()
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            qh, kh, vh = q[b, :, cols], k[b, :, cols], v[b, :, cols]
            if rotary_base is not None:
                qh, kh = reference_rotary(qh, rotary_base), reference_rotary(kh, rotary_base)
            scores = qh @ kh.T / math.sqrt(dh)
            scores[:, ~real] = float("-inf")
            w = torch.softmax(scores, dim=-1)
            weights[b, h] = w
            out[b, :, cols] = w @ vh
    out = out @ attn.out_proj.weight.double().T + attn.out_proj.bias.double()
    return out.float(), weights.float()


@pytest.mark.parametrize("use_rotary", [False, True])
@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_matches_reference(use_rotary: bool, need_weights: bool) -> None:
    torch.manual_seed(1)
    d_model, heads, length = 32, 4, 10
    rotary = RotaryEmbedding(d_model // heads, max_len=16, base=10000.0) if use_rotary else None
    attn = MultiHeadSelfAttention(d_model, heads, rotary=rotary).eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    x = torch.randn(3, length, d_model)
    mask = torch.ones(3, length, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    out, weights = attn(x, key_padding_mask(mask), need_weights=need_weights)
    ref_out, ref_weights = reference_attention(attn, x, mask, 10000.0 if use_rotary else None)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(weights, ref_weights, atol=1e-5, rtol=1e-5)
    else:
        assert weights is None


def test_attention_weights_sum_to_one_over_real_keys() -> None:
    model = tiny_model()
    ids, mask = random_batch([5, 12, 2])
    att = model(ids, mask, need_attentions=True)["attentions"]
    assert att.shape == (3, 2, 4, ids.shape[1], ids.shape[1])
    key_real = mask.bool()[:, None, None, None, :]
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]), atol=1e-6, rtol=0)
    assert torch.all(att.masked_select(~key_real.expand_as(att)) == 0)
    assert "attentions" not in model(ids, mask)


def test_key_padding_mask_is_none_without_padding() -> None:
    assert key_padding_mask(torch.ones(2, 5)) is None
    assert key_padding_mask(None) is None
    mask = key_padding_mask(torch.tensor([[1, 1, 0], [0, 0, 0]]))
    assert mask.shape == (2, 1, 1, 3)
    assert mask[0, 0, 0].tolist() == [True, True, False]
    assert mask[1].all()  # an all-padding row attends everywhere rather than producing NaN


def test_all_padding_row_is_finite() -> None:
    model = tiny_model()
    ids, mask = random_batch([4, 6])
    mask[1] = 0
    out = model(ids, mask, need_attentions=True)
    assert all(torch.isfinite(out[k]).all() for k in ("mlm_logits", "pair_logits", "attentions"))


# ---------------------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------------------


def test_rotary_dot_product_depends_only_on_offset() -> None:
    torch.manual_seed(2)
    dim, length = 16, 40
    rotary = RotaryEmbedding(dim, max_len=length)
    q0, k0 = torch.randn(dim), torch.randn(dim)
    q, k = rotary(q0.expand(1, 1, length, dim).clone(), k0.expand(1, 1, length, dim).clone())
    dots = (q[0, 0] @ k[0, 0].T).double()  # dots[m, n] = rot(q0, m) . rot(k0, n)
    for shift in (1, 7, 20):
        torch.testing.assert_close(dots[shift:, shift:], dots[:-shift, :-shift], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(dots[0, 1], dots[0, 9])  # it does depend on the offset
    torch.testing.assert_close(dots[0, 0], (q0 @ k0).double(), atol=1e-5, rtol=1e-5)  # position 0 is no rotation


def test_stacked_rotary_is_the_rotation_matrix() -> None:
    """The three-kernel stacked rotation equals an explicit 2x2 rotation of channel pairs (i, i + dim/2)."""
    torch.manual_seed(4)
    dim, length = 8, 11
    rotary = RotaryEmbedding(dim, max_len=32)
    qk = torch.randn(2, 3, 2, length, dim, dtype=torch.float64)
    out = rotary.rotate_stacked(qk.float()).double()
    half = dim // 2
    inv_freq = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) * 2 / dim)
    angle = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq  # [T, half]
    x1, x2 = qk[..., :half], qk[..., half:]
    expected = torch.cat((x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()), dim=-1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    q, k = rotary(qk[0].float(), qk[1].float())  # and the per-tensor path agrees
    torch.testing.assert_close(torch.stack((q, k)).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["gelu", "relu", "swiglu"])
def test_inference_feedforward_matches_autograd_path(activation: str) -> None:
    """The in-place activation used without autograd computes what the differentiable path computes."""
    model = tiny_model(activation=activation).eval()
    ids, mask = random_batch([6, 15, 9], seed=5)
    with_grad = model(ids, mask, repr_layers=[2])["representations"][2]
    assert with_grad.requires_grad
    with torch.inference_mode():
        without = model(ids, mask, repr_layers=[2])["representations"][2]
    torch.testing.assert_close(without, with_grad.detach(), atol=0, rtol=0)


def test_sinusoidal_table_matches_formula() -> None:
    table = sinusoidal_table(7, 6)
    pos, i = 5, 2
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)), abs=1e-6)
    assert sinusoidal_table(4, 5).shape == (4, 5)  # odd widths work


@pytest.mark.parametrize(
    "overrides",
    [{"position_type": p} for p in POSITION_TYPES]
    + [{"norm_type": "rmsnorm", "activation": "swiglu"}, {"activation": "relu", "use_structure_input": True}],
)
def test_padding_invariance(overrides: dict) -> None:
    model = tiny_model(**overrides)
    ids, mask = random_batch([6, 15, 9], seed=3)
    batched = model(ids, mask, repr_layers=[0, 1, 2])
    for row, n in enumerate([6, 15, 9]):
        alone = model(ids[row : row + 1, : n + 2], repr_layers=[0, 1, 2])
        for layer in (0, 1, 2):
            torch.testing.assert_close(batched["representations"][layer][row, : n + 2],
                                       alone["representations"][layer][0], atol=1e-5, rtol=1e-5)
        real = slice(0, n + 2)
        torch.testing.assert_close(batched["mlm_logits"][row, real], alone["mlm_logits"][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched["pair_logits"][row, real, real], alone["pair_logits"][0],
                                   atol=1e-5, rtol=1e-5)


def test_positions_matter() -> None:
    """Each position type makes the model order-aware: reversing the middle changes the first token's output."""
    for position_type in POSITION_TYPES:
        model = tiny_model(position_type=position_type)
        ids, _ = random_batch([10], seed=4)
        flipped = ids.clone()
        flipped[0, 1:11] = ids[0, 1:11].flip(0)
        a = model(ids)["last_hidden_state"][0, 0]
        b = model(flipped)["last_hidden_state"][0, 0]
        assert not torch.allclose(a, b, atol=1e-4), position_type


# ---------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------


def test_output_shapes_and_keys() -> None:
    model = tiny_model(n_layers=3)
    ids, mask = random_batch([4, 9])
    batch, length = ids.shape
    out = model(ids, mask, repr_layers=[0, 2, -1], need_attentions=True)
    assert out["mlm_logits"].shape == (batch, length, 9)
    assert out["struct_logits"].shape == (batch, length, 5)
    assert out["pair_logits"].shape == (batch, length, length)
    assert out["attentions"].shape == (batch, 3, 4, length, length)
    assert sorted(out["representations"]) == [0, 2, 3]
    assert all(r.shape == (batch, length, 32) for r in out["representations"].values())
    assert torch.equal(out["pair_logits"], out["pair_logits"].transpose(1, 2))


def test_representation_layers() -> None:
    model = tiny_model(n_layers=3)
    ids, mask = random_batch([7, 3])
    out = model(ids, mask, repr_layers=[0, -1, -4, 1])
    assert sorted(out["representations"]) == [0, 1, 3]
    torch.testing.assert_close(out["representations"][0], model.encoder.embed(ids), atol=0, rtol=0)
    assert torch.equal(out["representations"][3], out["last_hidden_state"])
    # layer 1 is the first block's raw output: rebuild it by hand
    x = model.encoder.embed(ids)
    first, _ = model.encoder.layers[0](x, key_padding_mask(mask))
    torch.testing.assert_close(out["representations"][1], first, atol=1e-6, rtol=1e-6)
    final = model.encoder.final_norm(model.encoder.layers[2](model.encoder.layers[1](first, key_padding_mask(mask))[0],
                                                             key_padding_mask(mask))[0])
    torch.testing.assert_close(out["last_hidden_state"], final, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("layer", [4, -5, 100])
def test_repr_layer_out_of_range(layer: int) -> None:
    model = tiny_model(n_layers=3)
    ids, _ = random_batch([3])
    with pytest.raises(ValueError, match=r"0\.\.3"):
        model(ids, repr_layers=[layer])


def test_default_attention_mask_from_padding() -> None:
    model = tiny_model()
    ids, mask = random_batch([3, 8])
    torch.testing.assert_close(model(ids)["mlm_logits"], model(ids, mask)["mlm_logits"], atol=0, rtol=0)


def test_return_logits_flags() -> None:
    model = tiny_model()
    ids, _ = random_batch([5])
    assert "pair_logits" not in model(ids, return_pair_logits=False)
    assert "mlm_logits" in model(ids, return_pair_logits=False)
    out = model(ids, repr_layers=[-1], return_logits=False)
    assert not {"mlm_logits", "struct_logits", "pair_logits"} & set(out)
    assert 2 in out["representations"]


def test_heads_follow_config() -> None:
    model = tiny_model(mlm_head=False, pair_head=False)
    assert model.mlm_head is None and model.pair_head is None
    out = model(random_batch([4])[0])
    assert set(out) == {"last_hidden_state", "representations", "struct_logits"}


def test_structure_input() -> None:
    model = tiny_model(use_structure_input=True)
    ids, _ = random_batch([6])
    unknown = torch.full_like(ids, -100)
    labels = torch.randint(0, 5, ids.shape)
    base = model(ids)["last_hidden_state"]
    torch.testing.assert_close(model(ids, structure_labels=unknown)["last_hidden_state"], base, atol=0, rtol=0)
    assert not torch.allclose(model(ids, structure_labels=labels)["last_hidden_state"], base)
    with pytest.raises(InputError, match="structure label 5"):
        model(ids, structure_labels=torch.full_like(ids, 5))
    with pytest.raises(InputError, match="shape"):
        model(ids, structure_labels=labels[:, :-1])
    # a model without structure input ignores the labels
    plain = tiny_model()
    torch.testing.assert_close(plain(ids, structure_labels=labels)["mlm_logits"], plain(ids)["mlm_logits"])


# ---------------------------------------------------------------------------------------------------------
# Precision, training behaviour
# ---------------------------------------------------------------------------------------------------------


def test_bf16_autocast_close_to_fp32() -> None:
    model = tiny_model()
    ids, mask = random_batch([10, 4])
    ref = model(ids, mask, repr_layers=[-1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, mask, repr_layers=[-1], need_attentions=True)
    for key in ("mlm_logits", "struct_logits", "pair_logits", "last_hidden_state"):
        assert torch.isfinite(out[key]).all(), key
        torch.testing.assert_close(out[key].float(), ref[key], atol=0.1, rtol=0.05)
    assert torch.equal(out["pair_logits"], out["pair_logits"].transpose(1, 2))


@pytest.mark.parametrize("position_type", POSITION_TYPES)
def test_bf16_weights(position_type: str) -> None:
    model = tiny_model(position_type=position_type)
    ids, mask = random_batch([10, 4])
    ref = model(ids, mask)
    model.to(torch.bfloat16)
    out = model(ids, mask, need_attentions=True)
    assert out["mlm_logits"].dtype == torch.bfloat16
    torch.testing.assert_close(out["mlm_logits"].float(), ref["mlm_logits"], atol=0.1, rtol=0.05)
    model.to(torch.float32)  # the fp32 rotary/sinusoidal tables were not degraded by the round trip
    torch.testing.assert_close(model(ids, mask)["mlm_logits"], ref["mlm_logits"], atol=0.05, rtol=0.05)


def _grads(model: GenesisRNAModel, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(123)
    out = model(ids, mask)
    loss = out["mlm_logits"].square().mean() + out["pair_logits"].square().mean() + out["struct_logits"].mean()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_checkpointing_same_gradients() -> None:
    model = tiny_model(dropout=0.1, attention_dropout=0.1).train()
    ids, mask = random_batch([8, 14])
    plain = _grads(model, ids, mask)
    model.gradient_checkpointing_enable()
    checkpointed = _grads(model, ids, mask)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-5, rtol=1e-5, msg=name)
    model.gradient_checkpointing_disable()
    assert not model.encoder.gradient_checkpointing
    assert tiny_model(gradient_checkpointing=True).encoder.gradient_checkpointing


def test_dropout_only_in_training() -> None:
    model = tiny_model(dropout=0.2, attention_dropout=0.2)
    ids, _ = random_batch([10])
    torch.testing.assert_close(model(ids)["mlm_logits"], model(ids)["mlm_logits"], atol=0, rtol=0)
    model.train()
    assert not torch.equal(model(ids)["mlm_logits"], model(ids)["mlm_logits"])


# ---------------------------------------------------------------------------------------------------------
# Initialisation and parameter counts
# ---------------------------------------------------------------------------------------------------------


def test_initialisation() -> None:
    model = tiny_model(n_layers=4, initializer_range=0.02, d_model=64, dim_ff=256)
    emb = model.encoder.embed_tokens.weight
    assert torch.all(emb[PAD_ID] == 0)
    assert 0.015 < emb[1:].std().item() < 0.025
    block = model.encoder.layers[0]
    assert torch.all(block.attn.qkv.bias == 0) and torch.all(block.attn_norm.weight == 1)
    assert 0.015 < block.attn.qkv.weight.std().item() < 0.025
    assert block.ffn.fc_out.weight.std().item() < 0.02 / math.sqrt(8) * 1.25  # residual-scaled
    assert model.mlm_head.decoder.weight is emb  # tied
    untied = tiny_model(tie_word_embeddings=False)
    assert untied.mlm_head.decoder.weight is not untied.encoder.embed_tokens.weight


def expected_parameters(cfg: GenesisRNAConfig) -> tuple[int, int]:
    """(encoder, whole model) by hand: the formula from the model's documentation, not the code."""
    d, f, v, n = cfg.d_model, cfg.dim_ff, cfg.vocab_size, cfg.n_layers
    norm = 2 * d if cfg.norm_type == "layernorm" else d
    attn = 4 * d * d + 4 * d
    ffn = (3 * d * f + 2 * f + d) if cfg.activation == "swiglu" else (2 * d * f + f + d)
    encoder = v * d + n * (attn + ffn + 2 * norm) + norm
    encoder += cfg.max_len * d if cfg.position_type == "learned" else 0
    encoder += 1 if cfg.position_type == "sinusoidal" else 0  # the learned scale of the fixed table
    encoder += (cfg.structure_num_labels + 1) * d if cfg.use_structure_input else 0
    heads = 0
    if cfg.mlm_head:
        heads += d * d + d + norm + v + (0 if cfg.tie_word_embeddings else v * d)
    if cfg.structure_head:
        heads += d * d + d + norm + d * cfg.structure_num_labels + cfg.structure_num_labels
    if cfg.pair_head:
        heads += 2 * (d * cfg.pair_head_dim + cfg.pair_head_dim) + 1
    return encoder, encoder + heads


@pytest.mark.parametrize("preset", ["small", "base", "large"])
def test_preset_parameter_counts(preset: str) -> None:
    cfg = GenesisRNAConfig.from_preset(preset)
    model = GenesisRNAModel(cfg)
    encoder, total = expected_parameters(cfg)
    print(f"{preset}: {total:,} parameters with all heads, {encoder:,} encoder only")
    assert model.encoder.num_parameters() == encoder
    assert model.num_parameters() == total
    assert model.num_parameters(trainable_only=True) == total
    model.encoder.embed_tokens.weight.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == total - cfg.vocab_size * cfg.d_model


@pytest.mark.parametrize(
    "overrides",
    [{"position_type": "learned", "use_structure_input": True, "tie_word_embeddings": False},
     {"position_type": "sinusoidal", "mlm_head": False},
     {"norm_type": "rmsnorm", "activation": "swiglu", "structure_head": False, "pair_head": False}],
)
def test_parameter_count_variants(overrides: dict) -> None:
    cfg = tiny_config(**overrides)
    encoder, total = expected_parameters(cfg)
    model = GenesisRNAModel(cfg)
    assert (model.encoder.num_parameters(), model.num_parameters()) == (encoder, total)


# ---------------------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------------------


def test_too_long_input() -> None:
    model = tiny_model(max_len=12)
    ids, _ = random_batch([11])  # 13 tokens
    with pytest.raises(InputError, match=r"13 tokens exceed this model's max_len of 12 tokens \(10 nucleotides"):
        model(ids)
    model(random_batch([10])[0])  # exactly max_len is fine


@pytest.mark.parametrize("bad", [9, 42, -1])
def test_bad_token_ids(bad: int) -> None:
    model = tiny_model()
    ids, _ = random_batch([5])
    ids[0, 3] = bad
    with pytest.raises(InputError, match=rf"token id {bad} outside the vocabulary \(0\.\.8\)"):
        model(ids)


def test_malformed_inputs() -> None:
    model = tiny_model()
    ids, mask = random_batch([5])
    with pytest.raises(InputError, match=r"\[batch, length\]"):
        model(ids[0])
    with pytest.raises(InputError, match="integer"):
        model(ids.float())
    with pytest.raises(InputError, match="attention_mask shape"):
        model(ids, mask[:, :-1])
    with pytest.raises(InputError, match="zero length"):
        model(ids[:, :0])
    with pytest.raises(GenesisRNAError):
        model(ids, repr_layers=["last"])


@pytest.mark.parametrize("position_type", ["rotary", "sinusoidal"])
def test_inference_mode_then_training(position_type: str) -> None:
    """Position tables first built under inference_mode must not poison a later training step."""
    model = tiny_model(position_type=position_type)
    ids, mask = random_batch([6, 9])
    with torch.inference_mode():
        model(ids, mask)
    model.train()
    model(ids, mask)["mlm_logits"].sum().backward()
    assert model.encoder.layers[0].attn.qkv.weight.grad is not None
