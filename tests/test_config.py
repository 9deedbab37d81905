"""Configs: presets as docs/architecture.md fixes them, validation on creation, YAML/JSON round trips."""

from pathlib import Path

import pytest

from genesis_rna.config import GenesisRNAConfig, TrainingConfig
from genesis_rna.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, dims", [("small", (256, 4, 4, 1024)), ("base", (512, 8, 8, 2048)),
                                        ("large", (768, 12, 12, 3072))])
def test_presets_match_design(name, dims):
    cfg = GenesisRNAConfig.from_preset(name)
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.dim_ff) == dims
    assert cfg.vocab_size == 9 and cfg.structure_num_labels == 5


@pytest.mark.parametrize("bad", [dict(d_model=100, n_heads=3), dict(dropout=1.5), dict(position_type="alibi"),
                                 dict(n_layers=0), dict(max_len=2), dict(vocab_size=5)])
def test_invalid_model_configs_are_rejected(bad):
    with pytest.raises(ConfigError):
        GenesisRNAConfig(**bad)


def test_unknown_preset_and_field_named_in_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        GenesisRNAConfig.from_preset("huge")
    p = tmp_path / "c.yaml"
    p.write_text("d_model: 128\nn_heads: 4\nd_modle: 3\n")
    with pytest.raises(ConfigError, match="d_modle"):
        GenesisRNAConfig.load_yaml(p)
    p.write_text("d_model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        GenesisRNAConfig.load_yaml(p)


def test_yaml_and_json_round_trip(tmp_path):
    cfg = GenesisRNAConfig.from_preset("base", position_type="learned", dropout=0.0)
    cfg.save_yaml(tmp_path / "m.yaml")
    assert GenesisRNAConfig.load_yaml(tmp_path / "m.yaml") == cfg
    cfg.save_json(tmp_path / "m.json")
    assert GenesisRNAConfig.load_json(tmp_path / "m.json") == cfg
    tcfg = TrainingConfig(use_ast=True, ast_target_activation=0.3, max_steps=10)
    tcfg.save_yaml(tmp_path / "t.yaml")
    assert TrainingConfig.load_yaml(tmp_path / "t.yaml") == tcfg


def test_training_config_validation():
    with pytest.raises(ConfigError, match="ast_target_activation"):
        TrainingConfig(ast_target_activation=1.5)
    with pytest.raises(ConfigError, match="model_size"):
        TrainingConfig(model_size="tiny")
    assert TrainingConfig(max_seq_len=300).model_config().max_len == 302


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_experiment_configs_load(size):
    cfg = TrainingConfig.load_yaml(REPO / "experiments" / f"config_pretrain_{size}.yaml")
    assert cfg.model_size == size
