"""benchmarks/ast_efficiency.py's bookkeeping: the 'reach' interpolation and the cross-budget goal, on runs whose
answers are computed by hand (the benchmark itself is too slow for a unit test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ast_efficiency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ast_efficiency_under_test", PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules[spec.name]


def _run(arm, seed, budget, loss, flops, cpu):
    return {"arm": arm, "seed": seed, "budget": budget, "final_val_mlm_loss": loss, "flops": flops, "cpu": cpu,
            "curve": [{"val_mlm_loss": 2.0, "flops": 0.0, "cpu": 0.0}, {"val_mlm_loss": loss, "flops": flops,
                                                                      "cpu": cpu}]}


def test_reach_interpolates_linearly_between_evaluations(bench):
    curve = [{"val_mlm_loss": 2.0, "flops": 0.0}, {"val_mlm_loss": 1.5, "flops": 10.0},
             {"val_mlm_loss": 1.0, "flops": 20.0}]
    assert bench.reach(curve, 1.25, "flops") == pytest.approx(15.0)  # halfway between 1.5 and 1.0
    assert bench.reach(curve, 0.9, "flops") is None


def test_cross_budget_compares_finished_small_runs_with_dense_at_the_large_budget(bench):
    runs = []
    for seed in (0, 1):
        runs += [_run("dense", seed, 300, 1.30, 100.0, 50.0), _run("dense", seed, 600, 1.28, 200.0, 100.0)]
    # 'good' beats dense@600 on both seeds at half its FLOPs and 0.6 of its CPU; 'slow' matches only at 0.8 CPU
    runs += [_run("good", 0, 300, 1.27, 100.0, 60.0), _run("good", 1, 300, 1.279, 100.0, 60.0)]
    runs += [_run("slow", 0, 300, 1.27, 100.0, 80.0), _run("slow", 1, 300, 1.27, 100.0, 80.0)]
    runs += [_run("half", 0, 300, 1.27, 100.0, 60.0), _run("half", 1, 300, 1.29, 100.0, 60.0)]
    cross = bench.cross_budget(runs, ["dense", "good", "slow", "half"])
    assert (cross["small_budget"], cross["large_budget"]) == (300, 600)
    dense = cross["rows"]["dense"]
    assert dense["loss_minus_dense_large"][0] == pytest.approx(0.02) and dense["n_matched"] == 0
    good = cross["rows"]["good"]
    assert good["loss_minus_dense_large"][0] == pytest.approx((-0.01 - 0.001) / 2)
    assert good["flops_ratio"][0] == pytest.approx(0.5) and good["cpu_ratio"][0] == pytest.approx(0.6)
    assert bench.cross_budget_goal(cross, "good")["met"] is True
    slow = bench.cross_budget_goal(cross, "slow")
    assert slow["matched_every_seed"] and not slow["cpu_le_0.7"] and not slow["met"]
    half = bench.cross_budget_goal(cross, "half")
    assert cross["rows"]["half"]["n_matched"] == 1 and not half["met"]
    assert bench.cross_budget_goal(cross, "absent") is None
    assert bench.cross_budget([r for r in runs if r["budget"] == 300], ["dense"]) == {}
    table = bench.cross_budget_markdown(cross)
    assert "| good | -0.0055 ± 0.0064 | 0.50 ± 0.00 | 0.60 ± 0.00 | 2/2 |" in table


def test_step_plans_spend_the_budget(bench):
    dense, small = bench.ARMS["dense"], bench.ARMS["dense_small"]
    assert bench.plan_steps(dense, 300, 0.4, 0.33, 10_000) == 300
    assert bench.plan_steps(small, 300, 13 / 32, 0.33, 10_000) == round(300 * 32 / 13)  # 738 steps of 13 rows
    random, scored = bench.ARMS["random"], bench.ARMS["random_scored"]
    assert bench.plan_steps(random, 300, 0.4, 0.33, 10_000) == 750
    assert bench.plan_steps(scored, 300, 0.4, 0.33, 10_000) == round(300 / 0.73)
    info = bench.ARMS["infobatch"]
    # 100-step epochs: 100 full steps, then pruned at 0.4, the last 12.5 % full again; by hand s = 240 / 0.475
    s = bench.plan_steps(info, 300, 0.4, 0.33, 100)
    assert s == 505
    assert 100 + 0.125 * s + 0.4 * (0.875 * s - 100) == pytest.approx(300, abs=0.5)
    # a run inside its first epoch never prunes (nothing remembered yet): a dense run of the same length
    assert bench.plan_steps(info, 300, 0.4, 0.33, 1_641) == 300
    assert bench.plan_steps(info, 300, 0.4, 0.33, 290) == 300  # pruning phase would be empty


def test_flop_measurements_leave_the_training_rng_alone(bench):
    """The FLOP table measures new batch widths in the middle of an arm's run; its model's dropout must not
    consume the global RNG, or an arm's result would depend on which widths earlier arms had measured."""
    import torch

    from genesis_rna.config import GenesisRNAConfig, TrainingConfig
    from genesis_rna.training.losses import MultiTaskLoss

    mc = GenesisRNAConfig(d_model=32, n_layers=4, n_heads=2, dim_ff=64, max_len=40, dropout=0.1)
    table = bench.FlopTable(mc, MultiTaskLoss.from_training_config(TrainingConfig()))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    forward, backward = table(17)
    table.tokens(17, 9)
    assert forward > 0 and backward > forward  # backward costs about twice the forward
    assert torch.equal(torch.rand(3), expected)
