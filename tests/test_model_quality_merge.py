"""benchmarks/model_quality.py: re-measuring one part merges into the earlier results without touching the others."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import model_quality  # noqa: E402

FULL = {"model": "m", "store": "s", "split": "test", "n_records": 3, "seconds": 100.0,
        "model_mlm": {"val_mlm_acc": 0.4, "val_mlm_loss": 1.3}, "baselines_mlm": {"3mer": {}},
        "structure_majority_acc": 0.5, "pairs": {"pair_head": {"f1": 0.04}},
        "nrc": {"genesis_rna_mean_embedding": {"test_acc": 0.70}}}


def test_one_part_replaced_others_kept(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(FULL))
    new = {"model": "m", "store": "s", "split": "test", "seconds": 10.0,
           "nrc": {"genesis_rna_mean_embedding": {"test_acc": 0.77}},
           "seconds_by_run": [{"parts": ["nrc"], "seconds": 10.0}]}
    merged = model_quality.merged_with_earlier(path, new, ["nrc"])
    assert merged["nrc"]["genesis_rna_mean_embedding"]["test_acc"] == 0.77
    assert merged["model_mlm"] == FULL["model_mlm"] and merged["pairs"] == FULL["pairs"]
    assert [r["parts"] for r in merged["seconds_by_run"]] == [["mlm", "pairs", "nrc"], ["nrc"]]
    assert merged["seconds"] == pytest.approx(110.0)


def test_other_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(FULL))
    new = {"model": "other", "store": "s", "split": "test", "seconds_by_run": []}
    with pytest.raises(SystemExit, match="model"):
        model_quality.merged_with_earlier(path, new, ["nrc"])


def test_no_earlier_file_keeps_the_new_results(tmp_path: Path) -> None:
    new = {"model": "m", "store": "s", "split": "test", "seconds_by_run": []}
    assert model_quality.merged_with_earlier(tmp_path / "missing.json", new, ["nrc"]) is new
