"""The training loop: schedule, AST step (only selected rows in the backward), FLOP accounting, exact resume,
controller settling, DDP on CPU, and the pretrain command end to end.

Independent references: the schedule by hand; the AST step's gradient against a separate model that back-
propagates the gathered rows by hand; FLOP counts against the analytic matmul count; resumed weights against an
uninterrupted run of the same steps (bitwise-close in fp32); DDP ranks against each other.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genesis_rna.ast import ASTSampleSelector
from genesis_rna.config import GenesisRNAConfig, TrainingConfig
from genesis_rna.data.loader import pretrain_dataloader
from genesis_rna.model.encoder import GenesisRNAModel
from genesis_rna.training.checkpoints import read_metrics
from genesis_rna.training.flops import FlopMeter, analytic_step_flops
from genesis_rna.training.loop import lr_lambda, train
from genesis_rna.training.losses import MultiTaskLoss
from genesis_rna.training.steps import ASTStep, dense_step_flops

TINY = {"d_model": 32, "n_heads": 2, "n_layers": 2, "dim_ff": 64, "pair_head_dim": 16, "dropout": 0.1}


def _cfg(tmp_path: Path, **kw) -> TrainingConfig:
    base = dict(use_dummy_data=True, max_steps=12, batch_size=8, max_seq_len=48, warmup_steps=2, eval_every=6,
                save_every=4, log_every=2, flops_every=2, precision="fp32", device="cpu", output_dir=str(tmp_path / "run"),
                seed=3)
    base.update(kw)
    return TrainingConfig(**base)


def _tiny_model(cfg: TrainingConfig, seed: int = 0) -> GenesisRNAModel:
    torch.manual_seed(seed)
    return GenesisRNAModel(GenesisRNAConfig(max_len=cfg.max_seq_len + 2, **TINY))


def _loaders(cfg: TrainingConfig):
    return (pretrain_dataloader(cfg, "train", dummy_size=96),
            pretrain_dataloader(cfg, "validation", dummy_size=32, rank=0, world_size=1))


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "model.safetensors"))


# --------------------------------------------------------------------------------------------- schedule

def test_lr_schedule_by_hand():
    # warmup 4 of 20 steps, min ratio 0.1: linear to 1, then cosine to 0.1
    values = [lr_lambda(s, 4, 20, 0.1) for s in range(21)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # halfway: 0.55
    assert values[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:], strict=False))


# -------------------------------------------------------------------------------------------- AST step

def _batch(cfg: TrainingConfig, n: int = 8):
    loader = pretrain_dataloader(cfg, "train", dummy_size=n)
    return next(iter(loader))


def test_ast_step_backpropagates_only_selected_rows(tmp_path):
    """The gradient of an AST step equals the gradient of the loss on the selected rows alone, computed by hand
    on a copy of the model: unselected rows contribute nothing, and nothing of theirs is in the graph."""
    cfg = _cfg(tmp_path)
    model = _tiny_model(cfg).eval()  # no dropout: the two forwards must agree exactly
    reference = copy.deepcopy(model)
    loss_fn = MultiTaskLoss()
    batch = _batch(cfg)
    selector = ASTSampleSelector("loss", target_activation=0.4, generator=torch.Generator().manual_seed(0))
    step = ASTStep(selector)
    seen_batch_sizes = []
    hook = model.encoder.embed_tokens.register_forward_hook(
        lambda m, i, o: seen_batch_sizes.append((torch.is_grad_enabled(), o.shape[0])))
    out = step(model, batch, loss_fn, autocast=lambda: torch.autocast("cpu", enabled=False),
               backward=lambda loss: loss.backward(), meter=FlopMeter(False))
    hook.remove()
    assert 1 <= out.n_selected < out.batch_size == 8
    # one no-grad scoring forward over all rows, then one grad forward over the selected rows only
    assert seen_batch_sizes == [(False, 8), (True, out.n_selected)]
    # the rows the selector picked: the highest per-sample losses (quantile threshold on an empty window)
    with torch.no_grad():
        scores = loss_fn(reference(batch["input_ids"], batch["attention_mask"]), batch, per_sample=True).per_sample
    picked = torch.topk(scores, out.n_selected).indices.sort().values
    sub = {k: v[picked] if isinstance(v, torch.Tensor) and v.dim() else v for k, v in batch.items()}
    loss_fn(reference(sub["input_ids"], sub["attention_mask"]), sub).total.backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_random_ast_skips_the_scoring_forward(tmp_path):
    cfg = _cfg(tmp_path)
    model = _tiny_model(cfg)
    calls = []
    hook = model.encoder.embed_tokens.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    step = ASTStep(ASTSampleSelector("random", target_activation=0.5, generator=torch.Generator().manual_seed(1)))
    meter = FlopMeter(True)
    out = step(model, _batch(cfg), MultiTaskLoss(), autocast=lambda: torch.autocast("cpu", enabled=False),
               backward=lambda loss: loss.backward(), meter=meter)
    hook.remove()
    assert calls == [out.n_selected] and "score" not in meter.counts


def test_infobatch_step_needs_no_scoring_forward_and_remembers_trained_losses(tmp_path):
    """InfoBatch through the AST step: one grad forward on the kept rows only (no scoring forward), and the
    remembered loss of each trained row is its per-sample loss of that forward; an epoch later, below-mean rows
    are pruned and the kept ones up-weighted."""
    from genesis_rna.ast import make_selector

    cfg = _cfg(tmp_path, batch_size=16)
    model = _tiny_model(cfg).eval()
    loss_fn = MultiTaskLoss()
    batch = _batch(cfg, 16)
    selector = make_selector("infobatch", target_activation=0.5, generator=torch.Generator().manual_seed(0),
                             total_steps=100)
    step = ASTStep(selector)
    calls = []
    hook = model.encoder.embed_tokens.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    kwargs = dict(autocast=lambda: torch.autocast("cpu", enabled=False), backward=lambda loss: loss.backward())
    meter = FlopMeter(True)
    out = step(model, batch, loss_fn, meter=meter, **kwargs)
    assert out.n_selected == 16 and calls == [16] and "score" not in meter.counts  # first epoch: full data
    with torch.no_grad():
        expected = loss_fn(model(batch["input_ids"], batch["attention_mask"]), batch, per_sample=True).per_sample
    torch.testing.assert_close(selector.memory[batch["indices"]], expected.double(), rtol=1e-5, atol=1e-6)
    calls.clear()
    out = step(model, batch, loss_fn, meter=FlopMeter(False), **kwargs)
    hook.remove()
    assert calls == [out.n_selected] and out.n_selected < 16
    assert out.selection["threshold"] > 0  # the prune ratio r used for this step


def test_token_dropping_matches_running_the_middle_blocks_on_the_kept_tokens_alone():
    """model(..., token_keep): kept tokens go through the middle blocks as a sequence of their own (at their
    original rotary positions), dropped tokens skip them and rejoin for the last block; all kept = plain forward."""
    from genesis_rna.model.layers import key_padding_mask

    torch.manual_seed(0)
    model = GenesisRNAModel(GenesisRNAConfig(**{**TINY, "n_layers": 4, "dropout": 0.0}, max_len=40)).eval()
    ids = torch.randint(4, 8, (3, 20))
    ids[:, 0], ids[:, -1] = 2, 3
    am = torch.ones_like(ids)
    am[2, 15:], ids[2, 15:] = 0, 0
    real = am.bool()
    plain = model(ids, am)["mlm_logits"]
    all_kept = model(ids, am, token_keep=torch.ones_like(ids, dtype=torch.bool))["mlm_logits"]
    torch.testing.assert_close(all_kept[real], plain[real])  # padding never enters the packed blocks
    keep = torch.rand(3, 20, generator=torch.Generator().manual_seed(1)) < 0.5
    keep[:, 0] = True
    out = model(ids, am, token_keep=keep)["mlm_logits"]
    enc = model.encoder
    first, last = enc.token_drop_layers()
    assert (first, last) == (2, 3)
    x, _ = enc.layers[0](enc.embed(ids), key_padding_mask(am))
    mixed = x.clone()
    for b in range(3):
        kept = (keep[b] & am[b].bool()).nonzero().squeeze(1)
        h = x[b:b + 1, kept]
        for block in enc.layers[1:3]:
            h, _ = block(h, None, False, kept[None])
        mixed[b, kept] = h[0]
    x, _ = enc.layers[3](mixed, key_padding_mask(am))
    expected = model.mlm_head(enc.final_norm(x))
    torch.testing.assert_close(out[real], expected[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_token_dropping_without_a_middle_block_is_a_clear_error(n_layers):
    """With fewer than 3 blocks there is nothing to skip; it was an UnboundLocalError from deep inside forward."""
    from genesis_rna.errors import InputError

    model = GenesisRNAModel(GenesisRNAConfig(**{**TINY, "n_layers": n_layers}, max_len=40))
    ids = torch.randint(4, 8, (2, 12))
    with pytest.raises(InputError, match="at least 3 blocks"):
        model(ids, torch.ones_like(ids), token_keep=torch.ones_like(ids, dtype=torch.bool))


def test_token_ast_step_saves_middle_block_flops(tmp_path):
    from genesis_rna.training.steps import TokenASTStep, make_step_strategy

    cfg = _cfg(tmp_path, use_ast=True, ast_strategy="tokens", ast_target_activation=0.4, batch_size=16)
    step = make_step_strategy(cfg)
    assert isinstance(step, TokenASTStep)
    torch.manual_seed(0)
    model = GenesisRNAModel(GenesisRNAConfig(max_len=cfg.max_seq_len + 2, **{**TINY, "n_layers": 4}))
    batch = _batch(cfg, 16)
    loss_fn = MultiTaskLoss()
    dense = dense_step_flops(model, batch, loss_fn, lambda: torch.autocast("cpu", enabled=False))
    meter = FlopMeter(True)
    out = step(model, batch, loss_fn, autocast=lambda: torch.autocast("cpu", enabled=False),
               backward=lambda loss: loss.backward(), meter=meter)
    assert out.n_selected == out.batch_size == 16 and out.selection["packed_width"] < batch["input_ids"].shape[1]
    assert sum(meter.counts.values()) < 0.85 * sum(dense.values())
    assert all(p.grad is not None for p in model.encoder.layers[1].parameters())


def test_dense_flops_match_analytic_count(tmp_path):
    """Measured forward/backward FLOPs of a dense step (CPU attention included) against the matmul formula."""
    cfg = _cfg(tmp_path)
    model = _tiny_model(cfg)
    batch = _batch(cfg)
    counts = dense_step_flops(model, batch, MultiTaskLoss(), lambda: torch.autocast("cpu", enabled=False))
    b, t = batch["input_ids"].shape
    expected = analytic_step_flops(model.config, b, t)
    assert counts["forward"] == pytest.approx(expected["forward"], rel=0.02)
    # backward: 2x forward for matmuls; the flash-attention backward recomputes QK^T (10 vs 8 B H T^2 Dh)
    assert expected["backward"] <= counts["backward"] <= expected["backward"] * 1.1


def test_ast_backward_flops_scale_with_selected_rows(tmp_path):
    cfg = _cfg(tmp_path)
    model = _tiny_model(cfg)
    batch = _batch(cfg, 16)
    loss_fn = MultiTaskLoss()
    dense = dense_step_flops(model, batch, loss_fn, lambda: torch.autocast("cpu", enabled=False))
    meter = FlopMeter(True)
    step = ASTStep(ASTSampleSelector("loss", target_activation=0.25, generator=torch.Generator().manual_seed(0)))
    out = step(model, batch, loss_fn, autocast=lambda: torch.autocast("cpu", enabled=False),
               backward=lambda loss: loss.backward(), meter=meter)
    ratio = out.n_selected / out.batch_size
    # rows keep the batch's padded width, so every FLOP is linear in the number of rows
    assert meter.get("backward") == pytest.approx(dense["backward"] * ratio, rel=1e-6)
    assert meter.get("forward") == pytest.approx(dense["forward"] * ratio, rel=1e-6)
    assert meter.get("score") == pytest.approx(dense["forward"], rel=1e-6)


# ----------------------------------------------------------------------------------------------- loop

def _run(cfg, *, stop_after=None, resume=True, model_seed=0):
    train_loader, val_loader = _loaders(cfg)
    model = _tiny_model(cfg, model_seed)
    return train(model, MultiTaskLoss.from_training_config(cfg), train_loader, cfg, val_loader=val_loader,
                 resume=resume, progress=False, stop_after=stop_after)


@pytest.mark.parametrize("use_ast,strategy", [(False, "loss"), (True, "loss"), (True, "infobatch")])
def test_interrupted_run_resumes_to_identical_weights(tmp_path, use_ast, strategy):
    """Stop after 6 of 12 steps (checkpoint at 4: steps 5-6 are lost, as in a crash), resume, compare with an
    uninterrupted run: same weights, same logged losses, same AST state (InfoBatch: its remembered losses)."""
    straight = _cfg(tmp_path / "a", use_ast=use_ast, ast_strategy=strategy)
    full = _run(straight)
    interrupted = _cfg(tmp_path / "b", use_ast=use_ast, ast_strategy=strategy)
    first = _run(interrupted, stop_after=6)
    assert first.final_dir is None and first.step == 6
    resumed = _run(interrupted, model_seed=123)  # a different init: everything must come from the checkpoint
    assert resumed.resumed_from.endswith("step-0000004") and resumed.step == 12
    wa, wb = _weights(full.final_dir), _weights(resumed.final_dir)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)
    rows_a = {r["step"]: r for r in read_metrics(straight.output_dir) if r["kind"] in ("train", "eval")}
    rows_b = {r["step"]: r for r in read_metrics(interrupted.output_dir) if r["kind"] in ("train", "eval")}
    assert rows_a.keys() == rows_b.keys()
    for s, ra in rows_a.items():
        for key in ("loss", "val_loss", "activation", "n_selected"):
            if key in ra:
                assert rows_b[s][key] == pytest.approx(ra[key], abs=1e-6), (s, key)


def test_run_folder_contents(tmp_path):
    cfg = _cfg(tmp_path, use_ast=True)
    result = _run(cfg)
    out = Path(cfg.output_dir)
    assert (out / "config.yaml").is_file() and (out / "training_curves.png").stat().st_size > 1000
    assert TrainingConfig.load_yaml(out / "config.yaml") == cfg
    assert result.best_dir is not None and (result.best_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step-0000008", "step-0000012"]
    assert not list(out.rglob("*.tmp*"))
    rows = read_metrics(out)
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [6, 12]
    for key in ("val_mlm_loss", "val_mlm_acc", "val_perplexity", "val_struct_acc", "val_pair_f1"):
        assert key in evals[-1]
    assert evals[-1]["val_perplexity"] == pytest.approx(math.exp(evals[-1]["val_mlm_loss"]))
    measured = [r for r in rows if r["kind"] == "train" and "flops_dense" in r]
    assert measured and all(r["flops_executed"] == r.get("flops_score", 0) + r["flops_forward"] + r["flops_backward"]
                            for r in measured)


def test_ast_activation_settles_at_target_and_saves_backward_flops(tmp_path):
    """target 0.4: the realised activation settles within 0.4 +/- 0.05 and the measured backward FLOPs per step
    are about 40% of a dense step's on the same batch."""
    cfg = _cfg(tmp_path, use_ast=True, ast_strategy="loss", ast_target_activation=0.4, max_steps=120, batch_size=32, eval_every=0,
               save_every=0, log_every=1, max_seq_len=32)
    train_loader = pretrain_dataloader(cfg, "train", dummy_size=1024)
    model = _tiny_model(cfg)
    train(model, MultiTaskLoss.from_training_config(cfg), train_loader, cfg, progress=False, flops_every=5)
    rows = [r for r in read_metrics(cfg.output_dir) if r["kind"] == "train"]
    late = [r for r in rows if r["step"] > 40]
    activation = float(np.mean([r["activation"] for r in late]))
    assert abs(activation - 0.4) <= 0.05, activation
    measured = [r for r in late if "flops_dense_backward" in r]
    ratio = sum(r["flops_backward"] for r in measured) / sum(r["flops_dense_backward"] for r in measured)
    assert abs(ratio - 0.4) <= 0.05, ratio


# ------------------------------------------------------------------------------------------------- CLI

def _pretrain_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "genesis_rna.train_pretrain", "--use_dummy_data", "--output_dir", str(out),
            "--model_size", "small", "--max_seq_len", "48", "--batch_size", "4", "--precision", "fp32",
            "--device", "cpu", "--eval_every", "0", "--log_every", "5", "--quiet", *extra]


def test_pretrain_flags_take_dashes_too():
    """``--output-dir`` (as every other command spells flags) is ``--output_dir`` (the TrainingConfig field)."""
    import argparse

    from genesis_rna.cli.training import add_pretrain_arguments, config_from_args

    parser = add_pretrain_arguments(argparse.ArgumentParser())
    under = parser.parse_args(["--output_dir", "x", "--max_steps", "3", "--use_ast", "--no_resume"])
    dashed = parser.parse_args(["--output-dir", "x", "--max-steps", "3", "--use-ast", "--no-resume"])
    assert vars(under) == vars(dashed)
    assert config_from_args(dashed).output_dir == "x" and dashed.no_resume


def test_pretrain_flags_and_config_precedence(tmp_path):
    from genesis_rna.cli.training import add_pretrain_arguments as add_arguments
    from genesis_rna.cli.training import config_from_args

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("batch_size: 7\nlearning_rate: 1e-3\nuse_ast: true\n")
    import argparse

    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--config", str(yaml_file), "--learning_rate", "2e-4", "--use_ast", "false",
                              "--model_size", "base", "--num_epochs", "3", "--ast_target_activation", "0.3",
                              "--output_dir", "x", "--data_path", "y", "--use_dummy_data"])
    cfg = config_from_args(args)
    assert (cfg.batch_size, cfg.learning_rate, cfg.use_ast, cfg.model_size, cfg.num_epochs) == (7, 2e-4, False,
                                                                                                "base", 3)
    assert (cfg.ast_target_activation, cfg.output_dir, cfg.data_path, cfg.use_dummy_data) == (0.3, "x", "y", True)


def test_pretrain_bad_input_is_one_line(tmp_path):
    from genesis_rna.cli import main

    bad = tmp_path / "protein.fa"
    bad.write_text(">p1\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n")
    proc = subprocess.run([sys.executable, "-m", "genesis_rna", "pretrain", "--data_path", str(bad),
                           "--output_dir", str(tmp_path / "r"), "--max_steps", "2", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert main(["pretrain", "--output_dir", str(tmp_path / "r2"), "--max_steps", "2"]) == 2


# Bitwise-reproducible BLAS for runs compared across processes. With MKL's defaults (conditional numerical
# reproducibility off, dynamic threading on) two processes running the same steps may round differently (CI saw
# one such failure at atol 1e-6); the AST's per-sample keep/skip decisions can then amplify an ulp into a visible
# weight difference. One thread and MKL_CBWR make every GEMM the same in every process.
REPRODUCIBLE_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MKL_DYNAMIC": "FALSE",
                    "MKL_CBWR": "AUTO,STRICT"}
# Measured on this test's run (20 steps, resume at 10): flipping 1 ulp in 1% of the checkpoint's weights moves the
# final weights by <= 1.2e-7; a resume that loses the torch RNG moves them by up to 7.9e-4 (median tensor 2.5e-4),
# one that resets Adam's step count by up to 2.6e-4. 1e-5 is far from both.
RESUME_ATOL = 1e-5


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path):
    """The acceptance test: a real SIGKILL after the step-10 checkpoint, the same command again, and the final
    weights equal those of an uninterrupted run of the same 20 steps."""
    extra = ("--max_steps", "20", "--save_every", "10", "--use_ast")
    straight = tmp_path / "straight"
    subprocess.run(_pretrain_cmd(straight, *extra), check=True, capture_output=True, timeout=300,
                   env=REPRODUCIBLE_ENV)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_pretrain_cmd(killed, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=REPRODUCIBLE_ENV)
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 240
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest.exists(), "no checkpoint was written before the kill"
    assert not (killed / "final").exists(), "the run finished before it could be killed"
    done = subprocess.run(_pretrain_cmd(killed, *extra), check=True, capture_output=True, text=True, timeout=300,
                          env=REPRODUCIBLE_ENV)
    assert "resumed from" in done.stdout
    wa, wb = _weights(straight / "final"), _weights(killed / "final")
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=RESUME_ATOL, msg=key)
    last = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()][-1]
    ref = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["step"] == ref["step"] == 20 and last["loss"] == pytest.approx(ref["loss"], abs=RESUME_ATOL)


DDP_SCRIPT = '''
import sys, torch, torch.distributed as dist
from safetensors.torch import save_file
from genesis_rna.training import loop as training, pretrain as train_pretrain
from genesis_rna.config import TrainingConfig

captured = {}
real_train = training.train

def spy(model, *args, **kwargs):
    captured["model"] = model
    captured["rank"] = dist.get_rank()
    captured["world"] = dist.get_world_size()
    captured["batches"] = [b["indices"].tolist() for b in args[1]][:3]
    return real_train(model, *args, **kwargs)

training.train = spy
cfg = TrainingConfig(use_dummy_data=True, max_steps=6, batch_size=4, max_seq_len=32, use_ast=True,
                     eval_every=3, save_every=3, log_every=1, precision="fp32", device="cpu",
                     output_dir=sys.argv[1], model_size="small")
train_pretrain.run(cfg, progress=False)
state = {k: v.contiguous() for k, v in captured["model"].state_dict().items()}
state.pop("mlm_head.decoder.weight", None)
save_file(state, f"{sys.argv[1]}/rank{captured['rank']}.safetensors")
with open(f"{sys.argv[1]}/rank{captured['rank']}.batches", "w") as fh:
    fh.write(repr((captured["world"], captured["batches"])))
'''


def test_ddp_two_processes_on_cpu_hold_identical_weights(tmp_path):
    """torchrun --nproc_per_node 2 (gloo): each rank reads different batches and selects its own AST subset,
    yet after the all-reduced steps both ranks hold the same weights, equal to what rank 0 saved."""
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(29500 + os.getpid() % 1000), str(script), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    for key in w0:
        torch.testing.assert_close(w0[key], w1[key], rtol=0, atol=0, msg=key)
    saved = _weights(out / "final")
    for key in w0:
        torch.testing.assert_close(saved[key], w0[key], rtol=0, atol=0, msg=key)
    world0, batches0 = eval((out / "rank0.batches").read_text())
    world1, batches1 = eval((out / "rank1.batches").read_text())
    assert world0 == world1 == 2
    assert not set(map(tuple, batches0)) & set(map(tuple, batches1)), "ranks read the same batches"
    rows = read_metrics(out)
    assert rows[0]["world_size"] == 2 and max(r["step"] for r in rows) == 6


RFAM_SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain" / "rfam14.2_seed" / "Rfam.seed.gz"


def _rfam_slice(path: Path, n_families: int) -> Path:
    """The first ``n_families`` Stockholm blocks of the Rfam seed file, as a small .sto file."""
    import gzip

    lines, done = [], 0
    with gzip.open(RFAM_SEED, "rt", encoding="latin-1") as fh:
        for line in fh:
            lines.append(line)
            if line.startswith("//"):
                done += 1
                if done == n_families:
                    break
    path.write_text("".join(lines), encoding="latin-1")
    return path


@pytest.mark.integration
def test_small_model_learns_on_held_out_rfam_families(tmp_path):
    """The small preset, 200 AST steps on CPU on 400 Rfam families: the validation MLM loss (on families never
    seen in training, fixed masks) falls below the unigram entropy of the training data, the loss of a model
    that knows only base composition.

    Measured (2-core EPYC, heavily shared): 300 steps at max_seq_len 256 gave val MLM loss 1.365 / 1.330 / 1.328
    at steps 100 / 200 / 300 against an entropy of 1.385 nats; this lighter setting keeps the margin."""
    if not RFAM_SEED.exists():
        pytest.skip(f"real data not found at {RFAM_SEED}")
    from genesis_rna.data.preprocess import preprocess
    from genesis_rna.training.pretrain import run

    store = tmp_path / "store"
    preprocess([_rfam_slice(tmp_path / "slice.sto", 400)], store, split=(0.8, 0.1, 0.1), progress=False)
    cfg = TrainingConfig(data_path=str(store), output_dir=str(tmp_path / "run"), model_size="small",
                         max_steps=200, batch_size=16, max_seq_len=192, learning_rate=1e-3, warmup_steps=20,
                         eval_every=100, save_every=100, log_every=20, use_ast=True, ast_target_activation=0.5)
    result = run(cfg, progress=False)
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    entropy = info["unigram_entropy_train"]
    assert 1.2 < entropy <= math.log(4) + 1e-9
    assert result.last_eval["val_mlm_loss"] < entropy - 0.02, (result.last_eval, entropy)
    assert result.last_eval["val_struct_acc"] > 0.3


def test_pretrain_cli_records_its_command_once(tmp_path, monkeypatch):
    """run_info.json's command is what the user typed: `genesis-rna pretrain ARGS`, the subcommand not doubled."""
    import json

    from genesis_rna.cli import main

    args = ["pretrain", "--use_dummy_data", "--output_dir", str(tmp_path / "r"), "--max_steps", "1",
            "--max_seq_len", "32", "--batch_size", "2", "--precision", "fp32", "--device", "cpu", "--quiet",
            "--eval_every", "0"]
    monkeypatch.setattr(sys, "argv", ["genesis-rna", *args])
    assert main(args) == 0
    command = json.loads((tmp_path / "r" / "run_info.json").read_text())["command"]
    assert command.startswith("genesis-rna pretrain --use_dummy_data ") and "pretrain pretrain" not in command
