"""save_pretrained / from_pretrained: round trips, strict key checks, bad files, dtypes, no pickle."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from genesis_rna.config import GenesisRNAConfig
from genesis_rna.errors import CheckpointError, GenesisRNAError
from genesis_rna.model.encoder import GenesisRNAModel
from genesis_rna.tokenization import RNATokenizer


def tiny_config(**overrides) -> GenesisRNAConfig:
    base = {"d_model": 32, "n_heads": 4, "n_layers": 2, "dim_ff": 64, "max_len": 32, "dropout": 0.0,
            "pair_head_dim": 8}
    return GenesisRNAConfig(**{**base, **overrides})


@pytest.fixture()
def batch() -> dict[str, torch.Tensor]:
    return RNATokenizer()(["GGGAAACUCC", "ACGUACGUACGUAAUU", "GCU"])


def saved(tmp_path, config: GenesisRNAConfig | None = None, **save_kwargs) -> tuple[GenesisRNAModel, str]:
    torch.manual_seed(0)
    model = GenesisRNAModel(config or tiny_config()).eval()
    directory = os.fspath(tmp_path / "model")
    model.save_pretrained(directory, **save_kwargs)
    return model, directory


@pytest.mark.parametrize("overrides", [{}, {"position_type": "learned", "use_structure_input": True,
                                            "tie_word_embeddings": False, "norm_type": "rmsnorm"},
                                       {"position_type": "sinusoidal", "activation": "swiglu"}])
def test_round_trip_identical(tmp_path, batch, overrides: dict) -> None:
    model, directory = saved(tmp_path, tiny_config(**overrides))
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors"]  # no temporary leftovers
    loaded = GenesisRNAModel.from_pretrained(directory)
    assert not loaded.training and loaded.config == model.config
    a = model(**batch, repr_layers=[0, 1, 2])
    b = loaded(**batch, repr_layers=[0, 1, 2])
    for key in ("mlm_logits", "struct_logits", "pair_logits", "last_hidden_state"):
        assert torch.equal(a[key], b[key]), key
    for layer in a["representations"]:
        assert torch.equal(a["representations"][layer], b["representations"][layer])


def test_tied_weights_saved_once_and_retied(tmp_path) -> None:
    _, directory = saved(tmp_path)
    path = os.path.join(directory, "model.safetensors")
    keys = set(load_file(path))
    assert "mlm_head.decoder.weight" not in keys and "encoder.embed_tokens.weight" in keys
    assert "mlm_head.decoder.bias" in keys
    with safe_open(path, framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "pt" and meta["genesis_rna_version"]
    loaded = GenesisRNAModel.from_pretrained(directory)
    assert loaded.mlm_head.decoder.weight is loaded.encoder.embed_tokens.weight
    assert json.load(open(os.path.join(directory, "config.json")))["d_model"] == 32


def test_bf16_saved_loads_as_fp32(tmp_path, batch) -> None:
    model, directory = saved(tmp_path, dtype=torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 for t in load_file(os.path.join(directory, "model.safetensors")).values())
    loaded = GenesisRNAModel.from_pretrained(directory)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    torch.testing.assert_close(loaded(**batch)["mlm_logits"], model(**batch)["mlm_logits"], atol=0.05, rtol=0.05)
    as_bf16 = GenesisRNAModel.from_pretrained(directory, dtype=torch.bfloat16)
    assert as_bf16.dtype == torch.bfloat16 and torch.isfinite(as_bf16(**batch)["pair_logits"]).all()


def rewrite_weights(directory: str, drop: tuple[str, ...] = (), add: dict | None = None,
                    reshape: dict | None = None) -> None:
    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    for key in drop:
        del tensors[key]
    tensors.update(add or {})
    for key, shape in (reshape or {}).items():
        tensors[key] = torch.zeros(shape)
    save_file(tensors, path)


def test_strict_names_missing_and_unexpected_keys(tmp_path) -> None:
    _, directory = saved(tmp_path)
    rewrite_weights(directory, drop=("encoder.layers.1.attn.qkv.weight",),
                    add={"encoder.extra.weight": torch.zeros(3)},
                    reshape={"pair_head.q_proj.bias": (5,)})
    with pytest.raises(CheckpointError) as err:
        GenesisRNAModel.from_pretrained(directory)
    message = str(err.value)
    assert "missing: encoder.layers.1.attn.qkv.weight" in message
    assert "unexpected: encoder.extra.weight" in message
    assert "pair_head.q_proj.bias (file (5,), model (8,))" in message
    assert "model.safetensors" in message
    loose = GenesisRNAModel.from_pretrained(directory, strict=False)  # the rest loads
    ref = load_file(os.path.join(directory, "model.safetensors"))
    assert torch.equal(loose.encoder.layers[0].attn.qkv.weight, ref["encoder.layers.0.attn.qkv.weight"])


def test_config_that_does_not_match_weights(tmp_path) -> None:
    _, directory = saved(tmp_path)
    tiny_config(n_layers=3).save_json(os.path.join(directory, "config.json"))
    with pytest.raises(CheckpointError, match="missing: encoder.layers.2"):
        GenesisRNAModel.from_pretrained(directory)


def test_missing_files(tmp_path) -> None:
    _, directory = saved(tmp_path)
    os.remove(os.path.join(directory, "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        GenesisRNAModel.from_pretrained(directory)
    os.remove(os.path.join(directory, "config.json"))
    with pytest.raises(CheckpointError, match="config.json: missing"):
        GenesisRNAModel.from_pretrained(directory)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_weights(tmp_path, damage: str) -> None:
    _, directory = saved(tmp_path)
    path = os.path.join(directory, "model.safetensors")
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write({"truncate": data[: len(data) // 2], "garbage": b"\x80\x03not a safetensors file" * 10,
                  "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        GenesisRNAModel.from_pretrained(directory)


def test_bad_config_json(tmp_path) -> None:
    _, directory = saved(tmp_path)
    with open(os.path.join(directory, "config.json"), "w") as fh:
        fh.write("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        GenesisRNAModel.from_pretrained(directory)
    with open(os.path.join(directory, "config.json"), "w") as fh:
        json.dump({"d_model": 30, "n_heads": 4}, fh)
    with pytest.raises(CheckpointError, match="divisible"):
        GenesisRNAModel.from_pretrained(directory)


def test_unknown_name(tmp_path) -> None:
    with pytest.raises(GenesisRNAError, match="no-such-model"):
        GenesisRNAModel.from_pretrained(os.fspath(tmp_path / "no-such-model"))


def test_loading_never_unpickles(tmp_path, monkeypatch, batch) -> None:
    _, directory = saved(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    GenesisRNAModel.from_pretrained(directory)(**batch)


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch) -> None:
    model, directory = saved(tmp_path)
    path = os.path.join(directory, "model.safetensors")
    before = open(path, "rb").read()
    import safetensors.torch

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        model.save_pretrained(directory)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(directory)) == ["config.json", "model.safetensors"]
