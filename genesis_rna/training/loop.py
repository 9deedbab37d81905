"""The training loop shared by pretraining and fine-tuning, with Adaptive Sparse Training as a pluggable step.

Read it top to bottom like nanoGPT's ``train.py``: :func:`train` builds the optimiser and schedule, resumes from
the latest checkpoint of the run directory if there is one, then loops over batches. What happens inside one
step is a *step strategy* (:class:`DenseStep` or :class:`ASTStep`), not a fork of the loop:

* ``DenseStep``: forward and backward on the whole batch.
* ``ASTStep``: a no-grad forward scores every sample, the selector picks the rows that still teach something,
  and only those rows are gathered into a smaller batch that goes through forward + backward. Unselected
  samples take no part in the backward pass, so the saved compute is real; the scoring forward is counted.

Executed FLOPs are *measured* (``FlopCounterMode`` with the CPU attention formulas of :mod:`genesis_rna.training.flops`)
on every ``flops_every``-th step, section by section (scoring forward, forward, backward), together with the
FLOPs that a dense step on the same batch executes (a throw-away forward + ``autograd.grad`` on the full batch,
only on those measured steps). Wall-clock and process CPU time of every step are logged as well.

Run directory (``cfg.output_dir``)::

    config.yaml                   the TrainingConfig (and model config) of the run
    metrics.jsonl                 one JSON object per logged step / evaluation
    checkpoints/step-000200/      model (config.json + model.safetensors) and trainer_state.pt
    checkpoints/latest            name of the newest complete checkpoint (written atomically)
    best/                         model with the best validation loss
    final/                        model at the end of training
    training_curves.png           losses, activation rate and FLOPs saved

Exact resume: a checkpoint holds model, optimiser, scheduler, GradScaler, every RNG (Python, NumPy, torch CPU
and CUDA), the data position (epoch, batches consumed) and the AST selector (controller, score window,
generator). A run that is killed and started again with the same command continues from its latest checkpoint
and ends with the same weights as an uninterrupted run (bit for bit where the BLAS is reproducible across
processes, e.g. one thread and ``MKL_CBWR=AUTO,STRICT``; otherwise up to rounding, which AST decisions can amplify).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .._fileutil import atomic_write
from ..data.loader import world
from ..errors import ConfigError
from ..model.device import autocast_context, resolve_device, resolve_dtype
from ..vocab import IGNORE_INDEX
from .checkpoints import (
    METRICS,
    MetricsLog,
    _rng_state,
    _save_model_dir,
    _set_rng_state,
    latest_checkpoint,
    load_trainer_state,
    plot_training_curves,
    save_checkpoint,
)
from .flops import FlopMeter
from .losses import mlm_accuracy, perplexity, structure_accuracy
from .steps import ASTStep, DenseStep, _forward, _unwrap, dense_step_flops, make_step_strategy, move_batch

__all__ = ["train", "TrainResult", "lr_lambda", "evaluate_pretrain"]


# ------------------------------------------------------------------------------------------------- schedule

def lr_lambda(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup to 1 over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(model: nn.Module, cfg: Any) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases, norms and embeddings (the BERT/GPT convention)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if param.dim() < 2 or "embed" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2))


# ---------------------------------------------------------------------------------------------- evaluation

def _pair_f1_from_logits(pair_logits: Tensor, pair_matrix: Tensor, min_loop: int = 3) -> list[float]:
    """Per-sequence exact-pair F1 of ``sigmoid(logit) > 0.5`` on the known upper-triangle entries."""
    scores = []
    t = pair_logits.shape[-1]
    upper = torch.triu(torch.ones(t, t, dtype=torch.bool, device=pair_logits.device), diagonal=min_loop + 1)
    for logits, target in zip(pair_logits, pair_matrix, strict=True):
        valid = (target != IGNORE_INDEX) & upper
        if not bool(valid.any()):
            continue
        pred = (logits > 0) & valid
        true = (target > 0.5) & valid
        tp = int((pred & true).sum())
        n_pred, n_true = int(pred.sum()), int(true.sum())
        if n_pred == 0 and n_true == 0:
            scores.append(1.0)
        else:
            scores.append(2 * tp / (n_pred + n_true))
    return scores


@torch.no_grad()
def evaluate_pretrain(model: nn.Module, loader: Iterable[Mapping[str, Any]], loss_fn: Callable, *,
                      device: torch.device, autocast=contextlib.nullcontext, max_batches: int = 0
                      ) -> dict[str, float]:
    """Validation metrics over a whole loader (token-weighted sums, so batches add up exactly).

    ``val_mlm_loss`` / ``val_mlm_acc`` / ``val_perplexity`` on the masked positions, ``val_struct_acc`` on
    known structure labels, ``val_pair_f1`` (mean per-sequence F1 of the pair head at p > 0.5), ``val_loss``
    (the weighted multi-task loss, token-weighted over batches).
    """
    core = _unwrap(model)
    was_training = core.training
    core.eval()
    sums = {"loss": 0.0, "mlm_nll": 0.0}
    counts = {"batches": 0, "mlm_tok": 0, "mlm_ok": 0, "st_tok": 0, "st_ok": 0}
    f1s: list[float] = []
    for k, batch in enumerate(loader):
        if max_batches and k >= max_batches:
            break
        batch = move_batch(batch, device)
        with autocast():
            out = _forward(core, batch)
        out = {key: v.float() for key, v in out.items() if key.endswith("logits")}
        loss = loss_fn(out, batch)
        sums["loss"] += float(loss.total) * int(batch["input_ids"].shape[0])
        counts["batches"] += int(batch["input_ids"].shape[0])
        if "mlm_logits" in out:
            labels = batch["mlm_labels"]
            n = int((labels != IGNORE_INDEX).sum())
            if n:
                nll = torch.nn.functional.cross_entropy(out["mlm_logits"].flatten(0, 1), labels.flatten(),
                                                        ignore_index=IGNORE_INDEX, reduction="sum")
                sums["mlm_nll"] += float(nll)
            ok, tot = mlm_accuracy(out["mlm_logits"], labels)
            counts["mlm_ok"] += ok
            counts["mlm_tok"] += tot
        if "struct_logits" in out:
            ok, tot = structure_accuracy(out["struct_logits"], batch["struct_labels"])
            counts["st_ok"] += ok
            counts["st_tok"] += tot
        if "pair_logits" in out and "pair_matrix" in batch:
            f1s.extend(_pair_f1_from_logits(out["pair_logits"], batch["pair_matrix"]))
    core.train(was_training)
    metrics: dict[str, float] = {}
    if counts["batches"]:
        metrics["val_loss"] = sums["loss"] / counts["batches"]
    if counts["mlm_tok"]:
        metrics["val_mlm_loss"] = sums["mlm_nll"] / counts["mlm_tok"]
        metrics["val_perplexity"] = perplexity(metrics["val_mlm_loss"])
        metrics["val_mlm_acc"] = counts["mlm_ok"] / counts["mlm_tok"]
    if counts["st_tok"]:
        metrics["val_struct_acc"] = counts["st_ok"] / counts["st_tok"]
    if f1s:
        metrics["val_pair_f1"] = float(np.mean(f1s))
    return metrics


# ----------------------------------------------------------------------------------------------- the loop

@dataclass
class TrainResult:
    """What :func:`train` returns: the final step, the last metrics and where things were written."""

    step: int
    epoch: int
    output_dir: Path
    final_dir: Path | None
    best_dir: Path | None
    last_train: dict[str, Any]
    last_eval: dict[str, float]
    best_val_loss: float
    elapsed_seconds: float
    resumed_from: str | None = None


def _total_steps(cfg: Any, steps_per_epoch: int) -> int:
    if cfg.max_steps > 0:
        return int(cfg.max_steps)
    return int(cfg.num_epochs) * max(1, steps_per_epoch)


def _progress(total: int, initial: int, enabled: bool):
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr,
                disable=not (enabled and sys.stderr.isatty()), dynamic_ncols=True)


def train(
    model: nn.Module,
    loss_fn: nn.Module,
    train_loader: Any,
    cfg: Any,
    *,
    val_loader: Any | None = None,
    step_strategy: DenseStep | ASTStep | None = None,
    evaluate: Callable[..., dict[str, float]] = evaluate_pretrain,
    resume: bool = True,
    progress: bool = True,
    keep_checkpoints: int = 2,
    flops_every: int | None = None,
    stop_after: int | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` with ``loss_fn`` on ``train_loader`` as ``cfg`` (a :class:`TrainingConfig`) says.

    ``train_loader`` must offer ``set_epoch``, ``state_dict`` and ``load_state_dict`` (see
    :class:`genesis_rna.data.dataset.PretrainDataLoader`). Under ``torchrun`` (an initialised process group) the model is
    wrapped in DDP, each rank reads its own batches and selects its own AST subset, and only rank 0 writes.
    ``stop_after`` ends the loop after that many optimiser steps in *this* call without finishing the run (as a
    kill would; for tests). ``flops_every`` (0 = never) defaults to ``cfg.flops_every``: a measured step also runs a
    dense forward + backward for the reference count, so measuring every step would cost more than it shows.
    """
    start_time = time.perf_counter()
    rank, world_size = world()
    main = rank == 0
    out_dir = Path(cfg.output_dir)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.precision, device)
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError("fp16 training needs a CUDA device; use bf16 or fp32 on CPU")
    model.to(device)
    loss_fn.to(device)
    if getattr(cfg, "gradient_checkpointing", False) and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                    else None)

    def autocast():
        return autocast_context(device, dtype)

    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError("the training data produced no batch (is the train split empty?)")
    total_steps = _total_steps(cfg, steps_per_epoch)
    # A warmup longer than a tenth of the run would leave a short run (a smoke test, the quick start) at a
    # fraction of its learning rate throughout; cap it, and say so in the metrics.
    warmup = min(int(cfg.warmup_steps), total_steps // 10)
    step_strategy = step_strategy or make_step_strategy(cfg, steps_per_epoch, total_steps)
    optimizer = _optimizer(_unwrap(model), cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, warmup, total_steps, cfg.min_lr_ratio))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    flops_every = int(getattr(cfg, "flops_every", cfg.log_every)) if flops_every is None else flops_every

    step, epoch, best_val = 0, 0, math.inf
    totals = {"flops_executed": 0, "flops_dense": 0, "seen": 0, "selected": 0, "cpu_time": 0.0, "wall": 0.0}
    resumed_from = None
    ckpt = latest_checkpoint(out_dir) if resume else None
    if ckpt is not None:
        state = load_trainer_state(ckpt)
        from ..model.encoder import GenesisRNAModel

        loaded = GenesisRNAModel.from_pretrained(ckpt)
        _unwrap(model).load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step_strategy.load_state_dict(state["step_strategy"])
        train_loader.load_state_dict(state["loader"])
        step, epoch, best_val = int(state["step"]), int(state["epoch"]), float(state["best_val_loss"])
        totals.update(state["totals"])
        rng = state["rng"][rank] if isinstance(state["rng"], list) else state["rng"]
        _set_rng_state(rng)
        resumed_from = os.fspath(ckpt)
    elif main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save_yaml(out_dir / "config.yaml")
        if extra_config:
            with atomic_write(out_dir / "run_info.json") as fh:
                json.dump(dict(extra_config), fh, indent=1)
    log = MetricsLog(out_dir / METRICS, main, step if resumed_from else None)
    if main and resumed_from:
        log.write({"kind": "resume", "step": step, "from": resumed_from})
    elif main:
        log.write({"kind": "start", "step": 0, "total_steps": total_steps, "steps_per_epoch": steps_per_epoch,
                   "warmup_steps": warmup, "world_size": world_size, "device": str(device), "dtype": str(dtype)})

    def backward(loss: Tensor) -> None:
        scaler.scale(loss).backward()

    model.train()
    bar = _progress(total_steps, step, progress and main)
    last_train: dict[str, Any] = {}
    last_eval: dict[str, float] = {}
    best_dir = out_dir / "best" if (out_dir / "best").exists() else None
    steps_this_call = 0
    window = {"loss": 0.0, "n": 0}
    finished = step >= total_steps
    while not finished:
        train_loader.set_epoch(epoch)
        for batch in train_loader:
            batch = move_batch(batch, device)
            measure = flops_every > 0 and (step + 1) % flops_every == 0
            meter = FlopMeter(enabled=measure)
            t0, c0 = time.perf_counter(), time.process_time()
            out = step_strategy(model, batch, loss_fn, autocast=autocast, backward=backward, meter=meter)
            scaler.unscale_(optimizer)
            grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                         if cfg.max_grad_norm > 0 else torch.tensor(0.0))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            step += 1
            steps_this_call += 1
            totals["seen"] += out.batch_size
            totals["selected"] += out.n_selected
            totals["wall"] += wall
            totals["cpu_time"] += cpu
            window["loss"] += float(out.loss.total.detach())
            window["n"] += 1
            record: dict[str, Any] = {}
            if measure:
                executed = sum(meter.counts.values())
                dense_parts = dense_step_flops(model, batch, loss_fn, autocast)
                dense = sum(dense_parts.values())
                totals["flops_executed"] += executed
                totals["flops_dense"] += dense
                record.update({f"flops_{k}": v for k, v in meter.counts.items()})
                record.update({f"flops_dense_{k}": v for k, v in dense_parts.items()})
                record.update({"flops_executed": executed, "flops_dense": dense,
                               "flops_executed_total": totals["flops_executed"],
                               "flops_dense_total": totals["flops_dense"]})
            if main and (step % max(1, cfg.log_every) == 0 or measure or step == total_steps):
                record.update({"kind": "train", "step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                               **out.loss.to_dict(), "loss_avg": window["loss"] / window["n"],
                               "grad_norm": float(grad_norm), "batch_size": out.batch_size,
                               "n_selected": out.n_selected, **out.selection,
                               "activation_cumulative": totals["selected"] / max(1, totals["seen"]),
                               "step_seconds": wall, "step_cpu_seconds": cpu, "elapsed": totals["wall"]})
                log.write(record)
                last_train = record
                window = {"loss": 0.0, "n": 0}
                bar.set_postfix(loss=f"{record['loss']:.3f}", act=f"{record['activation_cumulative']:.2f}")
            bar.update(1)
            if val_loader is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == total_steps):
                if main:
                    last_eval = evaluate(model, val_loader, loss_fn, device=device, autocast=autocast)
                    log.write({"kind": "eval", "step": step, "epoch": epoch, **last_eval,
                               "train_cpu_seconds": totals["cpu_time"], "train_wall_seconds": totals["wall"],
                               "samples_seen": totals["seen"], "samples_selected": totals["selected"]})
                    val = last_eval.get("val_loss", math.inf)
                    if val < best_val:
                        best_val = val
                        best_dir = out_dir / "best"
                        _save_model_dir(model, best_dir)
                if world_size > 1:
                    dist.barrier()
            if (cfg.save_every and step % cfg.save_every == 0) or step == total_steps:
                _checkpoint(out_dir, step, epoch, model, optimizer, scheduler, scaler, step_strategy,
                            train_loader, best_val, totals, keep_checkpoints, main, world_size)
            if step >= total_steps:
                finished = True
                break
            if stop_after is not None and steps_this_call >= stop_after:
                bar.close()
                return TrainResult(step, epoch, out_dir, None, best_dir, last_train, last_eval, best_val,
                                   time.perf_counter() - start_time, resumed_from)
        else:
            epoch += 1
    bar.close()
    final_dir = None
    if main:
        final_dir = out_dir / "final"
        _save_model_dir(model, final_dir)
        plot_training_curves(out_dir)
    if world_size > 1:
        dist.barrier()
    return TrainResult(step, epoch, out_dir, final_dir, best_dir, last_train, last_eval, best_val,
                       time.perf_counter() - start_time, resumed_from)


def _checkpoint(out_dir: Path, step: int, epoch: int, model: nn.Module, optimizer, scheduler, scaler,
                step_strategy, train_loader, best_val: float, totals: dict, keep: int, main: bool,
                world_size: int) -> None:
    """Gather every rank's RNG and AST state, then let rank 0 write the checkpoint."""
    rng = _rng_state()
    strategy_state = step_strategy.state_dict()
    if world_size > 1:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, rng)
        rng = gathered
    if main:
        state = {"step": step, "epoch": epoch, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                 "step_strategy": strategy_state, "loader": train_loader.state_dict(),
                 "best_val_loss": best_val, "totals": dict(totals), "rng": rng, "world_size": world_size}
        save_checkpoint(out_dir, step, model, state, keep)
    if world_size > 1:
        dist.barrier()
