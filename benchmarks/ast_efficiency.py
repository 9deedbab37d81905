"""Does Adaptive Sparse Training save compute on RNA masked-language-model pretraining? An equal-compute study.

One command (default settings: 1 seed, 1 budget, well under an hour on a 2-core CPU)::

    python benchmarks/ast_efficiency.py                 # default study
    python benchmarks/ast_efficiency.py --full --jobs 2 # 3 seeds x 2 budgets, 2 processes
    python benchmarks/ast_efficiency.py --smoke         # a minute: checks that every arm runs

Protocol (every arm, every seed):

* Data: Rfam 14.2 seed (all families by default; ``--families N`` takes the first N), preprocessed once (``genesis_rna.data.preprocess``,
  consensus structures from the alignments) into ``--store_dir`` outside the repository; train / validation are
  family-disjoint (whole Rfam families, split 0.8/0.1/0.1). Validation uses fixed masks with seed 0 for every
  arm and seed, so every evaluation of every arm scores the same masked positions.
* Model: one small encoder (``--d_model/--n_layers/--n_heads/--dim_ff``; default 128/4/4/512, a reduced
  ``small`` preset so that the study fits the CPU budget), same initialisation (``torch.manual_seed(seed)``), same
  batches in the same order (batch size 32 sequences, 128 tokens at most), fp32, one torch thread.
* Budget: ``B`` dense steps. Dense runs ``B`` steps with its cosine schedule fully decayed (min LR 0) at ``B``.
  Every other arm gets the same executed-FLOP budget: its step count is ``B / c`` where ``c`` is its nominal
  cost per step relative to dense (scoring forward + selected share of forward and backward), and its own
  schedule decays fully at its own last step. The realised compute is measured and reported, not assumed.
* Compute, two ways: executed FLOPs, exact because the model's FLOPs are linear in the rows at fixed batch
  width: ``forward(T)`` and ``backward(T)`` per row are measured once per width with FlopCounterMode (CPU
  attention included, see ``genesis_rna.training.flops``) and checked against a measured dense step; each step then adds
  ``scored_rows * forward(T) + selected_rows * (forward(T) + backward(T))``. And CPU time: ``time.process_time()``
  of the training steps (the loop's per-step count: forward, backward, selection, optimiser), evaluation
  excluded; the process CPU time including data loading is kept as a second column, wall-clock as a third.
* Reported per arm: final validation MLM loss / accuracy, executed FLOPs and CPU time relative to dense, the
  compute at which the arm's validation curve first reaches the dense arm's final loss (linear interpolation
  between evaluations; "not reached" when it does not), and the activation trace.

Arms: ``dense``; ``ast_loss`` (score every row without grad, PI-controlled loss threshold, the selected rows
gathered into a smaller batch); ``sundew`` (the ``adaptive-sparse-training`` package's algorithm, skipped with a
note when not installed); ``random_scored`` (uniform at the target rate, scoring forward still paid);
``random`` (uniform, no scoring forward); ``infobatch`` (remembered per-sample losses, below-mean rows pruned at
random with 1/(1-r) re-weighting, full data for the last 12.5% of steps, no scoring forward).

Outputs: ``benchmarks/results/ast_efficiency[_full|_smoke]/`` with ``results.json`` (every curve and trace),
``summary.md`` (the table) and ``ast_efficiency.png``. Runs (checkpoints, metrics) go under ``--store_dir``;
an arm whose ``arm_result.json`` exists there is not run again (``--rerun`` to force).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RFAM = Path(os.environ.get("GENESIS_RNA_SHARED", REPO.parent / "shared")) / "data/pretrain/rfam14.2_seed/Rfam.seed.gz"
if not RFAM.exists():
    RFAM = Path("/work/shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz")

ALL_ARMS = ("dense", "dense_small", "ast_loss", "sundew", "random_scored", "random", "infobatch", "ast_tokens")


# ---------------------------------------------------------------------------------------------------- data

def slice_rfam(n_families: int, out: Path) -> Path:
    """The first ``n_families`` Stockholm alignments of Rfam.seed.gz (all of them when ``n_families <= 0``) as a
    plain file (written once)."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    n = 0
    with gzip.open(RFAM, "rt", encoding="latin-1") as src, open(tmp, "w", encoding="latin-1") as dst:
        for line in src:
            dst.write(line)
            if line.startswith("//"):
                n += 1
                if 0 < n_families <= n:
                    break
    tmp.rename(out)
    return out


def train_subset(train_store, n: int) -> Any:
    """The whole train split (``n <= 0``) or ``n`` of its records spread evenly over it: a small fixed training
    set, so a budget covers several epochs (the regime where skipping learned samples should pay)."""
    if n <= 0 or n >= len(train_store):
        return train_store
    return [train_store[int(i)] for i in np.linspace(0, len(train_store) - 1, n).astype(int)]


def prepare_store(store_dir: Path, n_families: int, existing: str = "") -> Path:
    from genesis_rna.data.format import MANIFEST
    from genesis_rna.data.preprocess import preprocess

    if existing:  # a store made elsewhere (e.g. the v2 corpus: Rfam + tRNAs + transcript windows)
        if not (Path(existing) / MANIFEST).is_file():
            raise SystemExit(f"--store {existing}: not a shard store (run genesis-rna preprocess)")
        return Path(existing)
    name = f"rfam_seed_first{n_families}" if n_families > 0 else "rfam_seed_all"
    store = store_dir / name
    if (store / MANIFEST).is_file():
        return store
    sto = slice_rfam(n_families, store_dir / f"{name}.sto")
    report = preprocess([sto], store, workers=1, seed=0, split=(0.8, 0.1, 0.1), progress=False, overwrite=True,
                        command=f"benchmarks/ast_efficiency.py ({name})")
    print(f"preprocessed {report.summary()}", file=sys.stderr)
    return store


# --------------------------------------------------------------------------------------------- FLOP model

class FlopTable:
    """Measured forward / backward FLOPs per row at each batch width (exact: linear in rows at fixed width)."""

    def __init__(self, model_config: Any, loss_fn: Any) -> None:
        from genesis_rna.model.encoder import GenesisRNAModel

        torch.manual_seed(12345)
        self.model = GenesisRNAModel(model_config)
        self.loss_fn = loss_fn
        self.table: dict[int, tuple[float, float]] = {}
        self.token_table: dict[tuple[int, int], float] = {}

    def _batch(self, rows: int, width: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(width)
        ids = torch.randint(4, 8, (rows, width), generator=g)
        ids[:, 0], ids[:, -1] = 2, 3
        labels = torch.full_like(ids, -100)
        labels[:, 1::7] = ids[:, 1::7]
        struct = torch.randint(0, 5, (rows, width), generator=g)
        pair = torch.zeros(rows, width, width)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mlm_labels": labels,
                "struct_labels": struct, "pair_matrix": pair}

    def measure(self, rows: int, width: int) -> dict[str, int]:
        from genesis_rna.training.steps import dense_step_flops

        with torch.random.fork_rng():  # its dropout must not move the global RNG that the arm being trained uses
            return dense_step_flops(self.model, self._batch(rows, width), self.loss_fn, _no_autocast)

    def tokens(self, width: int, packed: int) -> float:
        """Forward + backward FLOPs per row with the middle blocks on ``packed`` tokens (token-level AST)."""
        key = (width, packed)
        if key not in self.token_table:
            from genesis_rna.training.flops import FlopMeter

            batch = self._batch(2, width)
            keep = torch.zeros(2, width, dtype=torch.bool)
            keep[:, :packed] = True
            params = [p for p in self.model.parameters() if p.requires_grad]
            meter = FlopMeter()
            with torch.random.fork_rng():  # as in measure(): leave the global RNG of the training run alone
                with meter.section("forward"):
                    total = self.loss_fn(self.model(batch["input_ids"], batch["attention_mask"], token_keep=keep),
                                         batch).total
                with meter.section("backward"):
                    torch.autograd.grad(total, params, allow_unused=True)
            self.token_table[key] = sum(meter.counts.values()) / 2
        return self.token_table[key]

    def __call__(self, width: int) -> tuple[float, float]:
        if width not in self.table:
            counts = self.measure(2, width)
            self.table[width] = (counts["forward"] / 2, counts["backward"] / 2)
        return self.table[width]

    def check(self, rows: int = 5, width: int = 97) -> dict[str, float]:
        """A measured dense step on ``rows`` rows against ``rows`` x the per-row table (should agree exactly)."""
        measured = self.measure(rows, width)
        f, b = self(width)
        return {"rows": rows, "width": width, "measured": measured["forward"] + measured["backward"],
                "predicted": rows * (f + b)}


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()


class CountingStep:
    """Wraps a step strategy (DenseStep / ASTStep / TokenASTStep) and adds up the FLOPs it executed.

    Each step only records its shapes (width, packed width, scored and selected rows); they are turned into
    FLOPs with the :class:`FlopTable` when :attr:`flops` is read (at evaluations, outside the timed steps), so
    measuring a new width never counts as training time.
    """

    def __init__(self, inner: Any, table: FlopTable) -> None:
        self.inner, self.table = inner, table
        self.name = inner.name
        self._flops = 0.0
        self._pending: list[tuple[int, int, int, int, int]] = []

    @property
    def flops(self) -> float:
        for width, packed, rows, scored, selected in self._pending:
            if packed:  # token-level AST: rows x measured FLOPs at (width, packed width)
                self._flops += rows * self.table.tokens(width, packed)
            else:
                f, b = self.table(width)
                self._flops += scored * f + selected * (f + b)
        self._pending.clear()
        return self._flops

    def __call__(self, model, batch, loss_fn, **kwargs):
        from genesis_rna.training.steps import ASTStep

        out = self.inner(model, batch, loss_fn, **kwargs)
        scored = 0
        if isinstance(self.inner, ASTStep) and self.inner._needs_scores() and \
                self.inner._steps > self.inner.warmup_steps:
            scored = out.batch_size
        self._pending.append((int(batch["input_ids"].shape[1]), int(out.selection.get("packed_width", 0)),
                              out.batch_size, scored, out.n_selected))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "flops": self.flops}

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state["inner"])
        self._flops, self._pending = float(state["flops"]), []


# ---------------------------------------------------------------------------------------------------- arms

@dataclass
class Arm:
    name: str
    strategy: str | None          # None = dense
    scoring: bool                 # pays a no-grad scoring forward every step
    note: str
    small_batch: bool = False     # dense on batches of round(target x batch_size) rows (the control for `random`)


ARMS = {
    "dense": Arm("dense", None, False, "forward + backward on every row"),
    "dense_small": Arm("dense_small", None, False,
                       "dense on batches of round(target x batch size) rows, more steps for the same FLOPs: what "
                       "`random` does, without AST (the control that tells a batch-size effect from selection)",
                       small_batch=True),
    "ast_loss": Arm("ast_loss", "loss", True, "score all rows (no grad), PI-controlled loss threshold, gather"),
    "sundew": Arm("sundew", "sundew", True, "adaptive-sparse-training SundewAlgorithm on per-sample losses"),
    "random_scored": Arm("random_scored", "random_scored", True, "uniform at the target rate, scoring paid"),
    "random": Arm("random", "random", False, "uniform at the target rate, no scoring forward"),
    "infobatch": Arm("infobatch", "infobatch", False,
                     "remembered losses, below-mean rows pruned with 1/(1-r) weights, full data last 12.5%"),
    "ast_tokens": Arm("ast_tokens", "tokens", False,
                      "token-level: unmasked tokens (random share, PI-held) skip the middle blocks"),
}


def nominal_cost(arm: Arm, target: float, fwd_share: float, anneal: float = 0.125, token_cost: float = 1.0
                 ) -> float:
    """Planned cost of one step relative to a dense step (the realised cost is measured)."""
    if arm.strategy is None:
        return target if arm.small_batch else 1.0
    if arm.strategy == "tokens":
        return token_cost
    act = target
    if arm.strategy == "infobatch":
        act = (1 - anneal) * target + anneal
    return (fwd_share if arm.scoring else 0.0) + act


def plan_steps(arm: Arm, budget: int, target: float, fwd_share: float, steps_per_epoch: int,
               anneal: float = 0.125, token_cost: float = 1.0) -> int:
    """Steps that spend about ``budget`` dense steps of compute. InfoBatch trains on every row of its first epoch
    (nothing is remembered yet) and of its last ``anneal`` share of steps: solve
    ``e + anneal * s + target * ((1 - anneal) * s - e) = budget`` for ``s``. A run that ends inside its first
    epoch (one pass over the data, as in real pretraining) never prunes, so it gets the dense step count."""
    if arm.strategy == "infobatch":
        if budget <= steps_per_epoch:  # the run ends inside the first epoch: it never prunes, a dense run
            return budget
        e = steps_per_epoch
        steps = (budget - e * (1 - target)) / (anneal + (1 - anneal) * target)
        if (1 - anneal) * steps <= e:  # the pruning phase would be empty: full data throughout
            return budget
        return max(2, int(round(steps)))
    return max(2, int(round(budget / nominal_cost(arm, target, fwd_share, token_cost=token_cost))))


# ----------------------------------------------------------------------------------------------------- run

def model_config(args) -> Any:
    """The study's encoder configuration (one place: every arm, the FLOP table and the parameter count use it)."""
    from genesis_rna.config import GenesisRNAConfig

    return GenesisRNAConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads, dim_ff=args.dim_ff,
                            max_len=args.max_len)


def flop_table(args) -> FlopTable:
    from genesis_rna.config import TrainingConfig
    from genesis_rna.training.losses import MultiTaskLoss

    return FlopTable(model_config(args), MultiTaskLoss.from_training_config(TrainingConfig()))


def run_arm(arm: Arm, *, seed: int, budget: int, args, store: Path, table: FlopTable, run_root: Path,
            fwd_share: float) -> dict[str, Any]:
    from genesis_rna.config import TrainingConfig
    from genesis_rna.data.loader import pretrain_dataloader
    from genesis_rna.data.store import ShardStore
    from genesis_rna.model.encoder import GenesisRNAModel
    from genesis_rna.training.checkpoints import read_metrics
    from genesis_rna.training.loop import evaluate_pretrain, train
    from genesis_rna.training.losses import MultiTaskLoss
    from genesis_rna.training.steps import make_step_strategy

    run_dir = run_root / f"budget{budget}" / f"seed{seed}" / arm.name
    done = run_dir / "arm_result.json"
    if done.exists() and not args.rerun:
        return json.loads(done.read_text())
    if args.no_run:
        return None
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train_store = train_subset(ShardStore(store, split="train"), args.train_records)
    per_epoch = math.ceil(len(train_store) / args.batch_size)
    target = args.token_target if arm.strategy == "tokens" else args.target
    batch_size = max(1, round(args.batch_size * target)) if arm.small_batch else args.batch_size
    f, b = table(args.max_len)
    token_cost = table.tokens(args.max_len, min(args.max_len, math.ceil(1.15 * target * args.max_len))) / (f + b)
    steps = plan_steps(arm, budget, batch_size / args.batch_size if arm.small_batch else target, fwd_share,
                       per_epoch, token_cost=token_cost)
    cost = budget / steps
    cfg = TrainingConfig(
        batch_size=batch_size, max_steps=steps, learning_rate=args.lr, warmup_steps=10 ** 6,
        min_lr_ratio=0.0, max_seq_len=args.max_len - 2, use_ast=arm.strategy is not None,
        ast_strategy=arm.strategy or "loss", ast_target_activation=target, precision="fp32", device="cpu",
        eval_every=max(1, steps // args.evals), save_every=0, log_every=max(1, steps // 60), seed=seed,
        output_dir=str(run_dir), data_path=str(store))
    train_loader = pretrain_dataloader(cfg, "train", store=train_store)
    val_cfg = cfg.replace(seed=0)
    val_store = ShardStore(store, split="validation")
    pick = np.unique(np.linspace(0, len(val_store) - 1, min(len(val_store), args.val_size)).astype(int))
    val_samples = [val_store[int(i)] for i in pick]
    val_loader = pretrain_dataloader(val_cfg, "validation", store=val_samples, rank=0, world_size=1)
    torch.manual_seed(seed)
    model = GenesisRNAModel(model_config(args))
    loss_fn = MultiTaskLoss.from_training_config(cfg)
    inner = make_step_strategy(cfg, len(train_loader), steps)
    counting = CountingStep(inner, table)
    clock = {"eval_cpu": 0.0, "eval_wall": 0.0}
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def evaluate(model_, loader, loss_fn_, **kwargs):
        c0, w0 = time.process_time(), time.perf_counter()
        metrics = {"process_cpu_train": c0 - cpu0 - clock["eval_cpu"], "wall_train": w0 - wall0 - clock["eval_wall"],
                   "flops_executed_total": counting.flops}
        metrics.update(evaluate_pretrain(model_, loader, loss_fn_, **kwargs))
        clock["eval_cpu"] += time.process_time() - c0
        clock["eval_wall"] += time.perf_counter() - w0
        return metrics

    init = evaluate_pretrain(model, val_loader, loss_fn, device=torch.device("cpu"))
    result = train(model, loss_fn, train_loader, cfg, val_loader=val_loader, step_strategy=counting,
                   evaluate=evaluate, resume=False, progress=False, keep_checkpoints=1, flops_every=0)
    records = read_metrics(run_dir)
    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    curve = [{"step": 0, "flops": 0.0, "cpu": 0.0, "process_cpu": 0.0, "wall": 0.0,
              "val_mlm_loss": init["val_mlm_loss"], "val_mlm_acc": init["val_mlm_acc"]}]
    curve += [{"step": r["step"], "flops": r["flops_executed_total"], "cpu": r["train_cpu_seconds"],
               "process_cpu": r["process_cpu_train"], "wall": r["wall_train"], "val_mlm_loss": r["val_mlm_loss"],
               "val_mlm_acc": r["val_mlm_acc"], "samples_seen": r["samples_seen"],
               "samples_selected": r["samples_selected"]} for r in evals]
    last = curve[-1]
    out = {
        "arm": arm.name, "seed": seed, "budget": budget, "steps": result.step, "nominal_cost": cost,
        "final_val_mlm_loss": last["val_mlm_loss"], "final_val_mlm_acc": last["val_mlm_acc"],
        "flops": counting.flops, "cpu": last["cpu"], "process_cpu": last["process_cpu"], "wall": last["wall"],
        "activation": (float(np.mean([r.get("activation", 1.0) for r in trains])) if arm.strategy == "tokens"
                       else last.get("samples_selected", 0) / max(1, last.get("samples_seen", 1))),
        "curve": curve,
        "trace": [{"step": r["step"], "activation": r.get("activation", 1.0),
                   "activation_cumulative": r.get("activation_cumulative", 1.0), "lr": r["lr"]} for r in trains],
    }
    with open(done, "w") as fh:
        json.dump(out, fh)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return out


# ------------------------------------------------------------------------------------------------ analysis

def reach(curve: list[dict], target: float, key: str) -> float | None:
    """Compute (``key``) at which the validation curve first reaches ``target`` (linear interpolation)."""
    for prev, cur in zip(curve, curve[1:], strict=False):
        if cur["val_mlm_loss"] <= target:
            lo, hi = prev["val_mlm_loss"], cur["val_mlm_loss"]
            frac = 1.0 if lo == hi else (lo - target) / (lo - hi)
            return prev[key] + min(max(frac, 0.0), 1.0) * (cur[key] - prev[key])
    return None


def _ms(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def summarise(runs: list[dict], arms: list[str]) -> dict[str, Any]:
    budgets = sorted({r["budget"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    out: dict[str, Any] = {}
    for budget in budgets:
        rows = {}
        for arm in arms:
            per_seed = []
            for seed in seeds:
                r = next((x for x in runs if x["arm"] == arm and x["seed"] == seed and x["budget"] == budget), None)
                d = next((x for x in runs if x["arm"] == "dense" and x["seed"] == seed and x["budget"] == budget),
                         None)
                if r is None or d is None:
                    continue
                target = d["final_val_mlm_loss"]
                rf, rc = reach(r["curve"], target, "flops"), reach(r["curve"], target, "cpu")
                per_seed.append({
                    "seed": seed, "loss": r["final_val_mlm_loss"], "acc": r["final_val_mlm_acc"],
                    "flops_ratio": r["flops"] / d["flops"], "cpu_ratio": r["cpu"] / d["cpu"],
                    "process_cpu_ratio": r["process_cpu"] / d["process_cpu"], "wall_ratio": r["wall"] / d["wall"],
                    "reach_flops_ratio": None if rf is None else rf / d["flops"],
                    "reach_cpu_ratio": None if rc is None else rc / d["cpu"],
                    "activation": r["activation"], "steps": r["steps"],
                    "loss_minus_dense": r["final_val_mlm_loss"] - target,
                })
            if not per_seed:
                continue
            agg = {"n_seeds": len(per_seed), "per_seed": per_seed}
            for key in ("loss", "acc", "flops_ratio", "cpu_ratio", "process_cpu_ratio", "wall_ratio", "activation",
                        "steps", "loss_minus_dense"):
                agg[key] = _ms([p[key] for p in per_seed])
            for key in ("reach_flops_ratio", "reach_cpu_ratio"):
                vals = [p[key] for p in per_seed]
                agg[key] = _ms(vals) if all(v is not None for v in vals) else (None, None)
                agg[key + "_reached"] = sum(v is not None for v in vals)
            rows[arm] = agg
        out[str(budget)] = rows
    return out


def cross_budget(runs: list[dict], arms: list[str]) -> dict[str, Any]:
    """Every arm at the smallest budget against the dense arm at the largest, seed by seed.

    The per-budget 'reach' numbers read an arm's loss mid-run, before its learning rate has decayed, which
    favours dense (whose final point is annealed). Here both sides are finished, fully annealed runs: an arm at
    budget 300 that ends at or below dense's final loss at budget 600 has matched dense with half its FLOPs.
    The dense row itself says what doubling the compute buys."""
    budgets = sorted({r["budget"] for r in runs})
    if len(budgets) < 2:
        return {}
    small, large = budgets[0], budgets[-1]
    seeds = sorted({r["seed"] for r in runs})
    rows: dict[str, Any] = {}
    for arm in arms:
        per_seed = []
        for seed in seeds:
            r = next((x for x in runs if x["arm"] == arm and x["seed"] == seed and x["budget"] == small), None)
            d = next((x for x in runs if x["arm"] == "dense" and x["seed"] == seed and x["budget"] == large), None)
            if r is None or d is None:
                continue
            gap = r["final_val_mlm_loss"] - d["final_val_mlm_loss"]
            per_seed.append({"seed": seed, "loss_minus_dense_large": gap, "flops_ratio": r["flops"] / d["flops"],
                             "cpu_ratio": r["cpu"] / d["cpu"], "matched": bool(gap <= 0)})
        if per_seed:
            rows[arm] = {"n_seeds": len(per_seed), "n_matched": sum(p["matched"] for p in per_seed),
                         "per_seed": per_seed,
                         **{k: _ms([p[k] for p in per_seed])
                            for k in ("loss_minus_dense_large", "flops_ratio", "cpu_ratio")}}
    return {"small_budget": small, "large_budget": large, "rows": rows}


def goal_check(summary: dict[str, Any], arm: str) -> dict[str, Any]:
    """The issue's goal for one arm, per budget: reach dense's final loss with <= 0.6 of its FLOPs and <= 0.7 of its
    CPU time (every seed), and a lower final loss than uniform random (no scoring) at equal compute by more than
    the seed spread (the larger of the two arms' standard deviations; unknown with one seed)."""
    checks = {}
    for budget, rows in summary.items():
        if arm not in rows:
            continue
        r = rows[arm]
        per = r["per_seed"]
        flops_ok = all(p["reach_flops_ratio"] is not None and p["reach_flops_ratio"] <= 0.6 for p in per)
        cpu_ok = all(p["reach_cpu_ratio"] is not None and p["reach_cpu_ratio"] <= 0.7 for p in per)
        beat = None
        if "random" in rows and arm != "random":
            gap = rows["random"]["loss"][0] - r["loss"][0]
            spread = max(rows["random"]["loss"][1], r["loss"][1])
            beat = {"loss_gap_vs_random": gap, "seed_spread": spread,
                    "beats_random": None if math.isnan(spread) else bool(gap > spread)}
        checks[budget] = {"reach_flops_le_0.6": flops_ok, "reach_cpu_le_0.7": cpu_ok, "vs_random": beat}
    return checks


def cross_budget_goal(cross: dict[str, Any], arm: str) -> dict[str, Any] | None:
    """The goal read across budgets: on every seed, the arm's finished run at the small budget ends at or below
    dense's at the large budget, with <= 0.6 of its FLOPs and <= 0.7 of its CPU time."""
    row = cross.get("rows", {}).get(arm) if cross else None
    if row is None:
        return None
    per = row["per_seed"]
    return {"matched_every_seed": row["n_matched"] == row["n_seeds"],
            "flops_le_0.6": all(p["flops_ratio"] <= 0.6 for p in per),
            "cpu_le_0.7": all(p["cpu_ratio"] <= 0.7 for p in per),
            "met": all(p["matched"] and p["flops_ratio"] <= 0.6 and p["cpu_ratio"] <= 0.7 for p in per)}


def _fmt(ms: tuple, digits: int = 3) -> str:
    m, s = ms
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "not reached"
    if s is None or math.isnan(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"Command: `{meta['command']}`  ", f"Machine: {meta['machine']}  ",
             f"Seeds: {meta['seeds']}; budgets (dense steps of {meta['batch_size']} sequences): {meta['budgets']}; "
             f"model {meta['model']} ({meta['parameters']:,} parameters); target activation {meta['target']}.  ",
             "Ratios are relative to the dense arm of the same seed and budget (mean ± sd over seeds). "
             "'reach' = compute at which the arm's validation MLM loss first reaches the dense arm's final loss.",
             ""]
    for budget, rows in summary.items():
        lines += [f"**Budget {budget} dense steps**", "",
                  "| arm | val MLM loss | val MLM acc | FLOPs | CPU | CPU incl. data | wall | FLOPs to reach dense"
                  " | CPU to reach dense | activation | steps |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for arm, r in rows.items():
            reached = r["reach_flops_ratio_reached"]
            rf = _fmt(r["reach_flops_ratio"], 2) if reached == r["n_seeds"] else f"{reached}/{r['n_seeds']} seeds"
            rc = _fmt(r["reach_cpu_ratio"], 2) if r["reach_cpu_ratio_reached"] == r["n_seeds"] else \
                f"{r['reach_cpu_ratio_reached']}/{r['n_seeds']} seeds"
            lines.append(f"| {arm} | {_fmt(r['loss'], 4)} | {_fmt(r['acc'], 4)} | {_fmt(r['flops_ratio'], 2)} | "
                         f"{_fmt(r['cpu_ratio'], 2)} | {_fmt(r['process_cpu_ratio'], 2)} | {_fmt(r['wall_ratio'], 2)} | "
                         f"{rf} | {rc} | {_fmt(r['activation'], 2)} | {_fmt(r['steps'], 0)} |")
        lines.append("")
    return "\n".join(lines)


def cross_budget_markdown(cross: dict[str, Any]) -> str:
    if not cross:
        return ""
    small, large = cross["small_budget"], cross["large_budget"]
    lines = [f"**Finished runs at budget {small} against dense at budget {large}** (both fully annealed; "
             f"loss difference < 0 means the arm matched dense with its smaller budget)", "",
             f"| arm (budget {small}) | val MLM loss minus dense@{large} | FLOPs / dense@{large} | "
             f"CPU / dense@{large} | seeds at or below dense@{large} |", "|---|---|---|---|---|"]
    for arm, r in cross["rows"].items():
        lines.append(f"| {arm} | {_fmt(r['loss_minus_dense_large'], 4)} | {_fmt(r['flops_ratio'], 2)} | "
                     f"{_fmt(r['cpu_ratio'], 2)} | {r['n_matched']}/{r['n_seeds']} |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in runs})
    fig, axes = plt.subplots(len(budgets), 3, figsize=(16, 4.2 * len(budgets)), squeeze=False)
    colors = {a: f"C{i}" for i, a in enumerate(ALL_ARMS)}
    for row, budget in zip(axes, budgets, strict=True):
        for arm in arms:
            for k, r in enumerate(x for x in runs if x["arm"] == arm and x["budget"] == budget):
                label = arm if k == 0 else None
                c = r["curve"]
                row[0].plot([p["flops"] / 1e12 for p in c], [p["val_mlm_loss"] for p in c], ".-",
                            color=colors[arm], label=label, alpha=0.8)
                row[1].plot([p["cpu"] for p in c], [p["val_mlm_loss"] for p in c], ".-", color=colors[arm],
                            label=label, alpha=0.8)
                t = r["trace"]
                row[2].plot([p["step"] / max(1, r["steps"]) for p in t], [p["activation"] for p in t],
                            color=colors[arm], label=label, alpha=0.6, lw=0.8)
        dense = [x for x in runs if x["arm"] == "dense" and x["budget"] == budget]
        for ax in row[:2]:
            for d in dense:
                ax.axhline(d["final_val_mlm_loss"], color="k", lw=0.5, ls=":")
            ax.set_ylabel("validation MLM loss (nats)")
            lo = min(min(p["val_mlm_loss"] for p in x["curve"]) for x in runs if x["budget"] == budget)
            ax.set_ylim(lo - 0.01, lo + 0.12)
            ax.legend(fontsize=7)
        row[0].set_xlabel("executed TFLOPs (measured)")
        row[1].set_xlabel("training CPU seconds (process_time)")
        row[2].set_xlabel("fraction of the arm's steps")
        row[2].set_ylabel("activation (rows back-propagated / batch)")
        row[2].set_ylim(0, 1.05)
        row[0].set_title(f"budget {budget} dense steps: loss vs FLOPs")
        row[1].set_title("loss vs CPU time")
        row[2].set_title("activation trace")
        row[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _run_unit(budget: int, seed: int, arms: list[str], args, store: Path, run_root: Path,
              table: FlopTable | None, fwd_share: float, t0: float) -> tuple[list[dict], list[str]]:
    """Every arm of one (budget, seed), in order; a top-level function so that ``--jobs`` workers can run it."""
    if table is None:  # in a worker process
        torch.set_num_threads(args.threads)
        table = flop_table(args)
    runs, notes = [], []
    for name in arms:
        ts = time.perf_counter()
        r = run_arm(ARMS[name], seed=seed, budget=budget, args=args, store=store, table=table,
                    run_root=run_root, fwd_share=fwd_share)
        if r is None:
            notes.append(f"{name} (budget {budget}, seed {seed}) not run: --no_run and no cached result")
            continue
        runs.append(r)
        print(f"[{time.perf_counter() - t0:7.0f}s] budget {budget} seed {seed} {name:14s} steps {r['steps']:5d}"
              f" loss {r['final_val_mlm_loss']:.4f} acc {r['final_val_mlm_acc']:.4f} "
              f"TFLOPs {r['flops'] / 1e12:.3f} cpu {r['cpu']:.0f}s act {r['activation']:.2f} "
              f"({time.perf_counter() - ts:.0f}s)", file=sys.stderr, flush=True)
    return runs, notes


# ---------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="3 seeds x 2 budgets (several hours on 2 CPU cores)")
    p.add_argument("--smoke", action="store_true", help="tiny budget: checks that every arm runs (~2 min)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--budgets", type=int, nargs="+", default=None, help="dense steps per budget")
    p.add_argument("--arms", nargs="+", default=list(ALL_ARMS), choices=ALL_ARMS)
    p.add_argument("--target", type=float, default=0.4, help="AST target activation")
    p.add_argument("--token_target", type=float, default=0.4,
                   help="token-level AST: fraction of real tokens kept in the middle blocks")
    p.add_argument("--families", type=int, default=0,
                   help="the first N Rfam seed families (default 0: all 3,026, so that a run sees each training "
                        "sequence at most about once, as in real pretraining; 150 gives ~6k training sequences, "
                        "which the 600-step budget repeats 3 times and over-fits)")
    p.add_argument("--store", default="", help="train on this existing shard store instead of the Rfam seeds")
    p.add_argument("--train_records", type=int, default=0,
                   help="train on this many records of the train split (spread evenly; 0 = all): with a budget "
                        "larger than one epoch, a multi-epoch study")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_len", type=int, default=128, help="tokens per sequence incl. [CLS]/[SEP]")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--d_model", type=int, default=128)
    p.add_argument("--n_layers", type=int, default=4)
    p.add_argument("--n_heads", type=int, default=4)
    p.add_argument("--dim_ff", type=int, default=512)
    p.add_argument("--evals", type=int, default=10, help="evaluations per arm")
    p.add_argument("--val_size", type=int, default=640,
                   help="validation sequences (evenly spaced over the family-disjoint validation split)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per arm")
    p.add_argument("--jobs", type=int, default=1,
                   help="(budget, seed) units run in parallel processes (2 on a 2-core machine: --full in about "
                        "70 min instead of 2.3 h); CPU times stay per process")
    p.add_argument("--store_dir", default=os.environ.get("AST_BENCH_STORE", "/work/stores/ast_bench"))
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results/ast_efficiency*)")
    p.add_argument("--rerun", action="store_true", help="run arms again even if their results exist")
    p.add_argument("--no_run", action="store_true", help="only summarise the arms whose results are cached")
    args = p.parse_args(argv)
    if args.smoke:
        seeds, budgets, suffix = args.seeds or [0], args.budgets or [12], "_smoke"
        args.evals = min(args.evals, 3)
    elif args.full:
        seeds, budgets, suffix = args.seeds or [0, 1, 2], args.budgets or [300, 600], "_full"
    else:
        seeds, budgets, suffix = args.seeds or [0], args.budgets or [300], ""
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="No artists with labels")
    from genesis_rna.ast import sundew_available
    from genesis_rna.model.encoder import GenesisRNAModel

    arms = [a for a in ALL_ARMS if a in args.arms]
    notes = []
    if "sundew" in arms and not sundew_available():
        arms.remove("sundew")
        notes.append("sundew arm skipped: adaptive-sparse-training is not installed "
                     "(pip install --no-deps adaptive-sparse-training)")
    if "dense" not in arms:
        arms.insert(0, "dense")
    store_dir = Path(args.store_dir)
    store = prepare_store(store_dir, args.families, args.store)
    out_dir = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"ast_efficiency{suffix}"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = flop_table(args)
    check = table.check()
    f, b = table(args.max_len)
    fwd_share = f / (f + b)
    tag = f"d{args.d_model}_l{args.n_layers}_h{args.n_heads}_ff{args.dim_ff}_bs{args.batch_size}_t{args.target}" \
          f"_lr{args.lr}_f{args.families}" + (f"_store-{Path(args.store).name}_n{args.train_records}" if args.store
                                              else "")
    run_root = store_dir / "runs" / tag
    runs = []
    t0 = time.perf_counter()
    units = [(budget, seed) for budget in budgets for seed in seeds]
    if args.jobs > 1 and not args.no_run and len(units) > 1:
        import concurrent.futures
        import multiprocessing

        # the longest units first, so that the workers finish together; each worker measures its own FLOP table
        # (FlopCounterMode counts are deterministic, so every worker's table is the same)
        order = sorted(units, key=lambda u: -u[0])
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_unit, b, s, arms, args, store, run_root, None, fwd_share, t0)
                       for b, s in order]
            done = {u: f.result() for u, f in zip(order, futures, strict=True)}
        for u in units:
            runs += done[u][0]
            notes += done[u][1]
    else:
        for budget, seed in units:
            unit_runs, unit_notes = _run_unit(budget, seed, arms, args, store, run_root, table, fwd_share, t0)
            runs += unit_runs
            notes += unit_notes
    if not runs:
        print(f"ast_efficiency: no arm was run or cached under {run_root} (--no_run summarises cached arms only)",
              file=sys.stderr)
        return 2
    summary = summarise(runs, arms)
    import genesis_rna

    n_params = GenesisRNAModel(model_config(args)).num_parameters()
    from genesis_rna.data.store import ShardStore

    meta = {
        "command": "python benchmarks/ast_efficiency.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                                            if (argv if argv is not None else sys.argv[1:]) else ""),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
                   f"torch {torch.__version__}, {args.threads} torch thread(s), python {platform.python_version()}",
        "seeds": seeds, "budgets": budgets, "batch_size": args.batch_size, "target": args.target,
        "model": f"d_model {args.d_model}, {args.n_layers} layers, {args.n_heads} heads, dim_ff {args.dim_ff}",
        "parameters": n_params, "lr": args.lr, "max_len": args.max_len, "families": args.families,
        "n_train": len(ShardStore(store, split="train")),
        "n_validation": min(args.val_size, len(ShardStore(store, split="validation"))),
        "flop_table": {str(k): v for k, v in sorted(table.table.items())}, "flop_model_check": check,
        "forward_share_of_dense_step": fwd_share, "notes": notes, "genesis_rna_version": genesis_rna.__version__,
        "elapsed_seconds": time.perf_counter() - t0,
        "arms": {a: ARMS[a].note for a in arms},
    }
    cross = cross_budget(runs, arms)
    goals = {arm: goal_check(summary, arm) for arm in arms if arm != "dense"}
    for arm in goals:
        goals[arm]["cross_budget"] = cross_budget_goal(cross, arm)
    result = {"meta": meta, "summary": summary, "cross_budget": cross, "goal": goals, "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(result, indent=1, allow_nan=True))
    table_md = markdown(summary, meta) + ("\n" + cross_budget_markdown(cross) if cross else "")
    if notes:
        table_md += "\n" + "\n".join(f"Note: {n}" for n in notes) + "\n"
    (out_dir / "summary.md").write_text(table_md)
    plot(runs, arms, out_dir / "ast_efficiency.png")
    print(table_md)
    print(json.dumps(goals, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
