"""Encoder v2 ablation: architectures trained for the same CPU time, scored on held-out Rfam families.

    python benchmarks/v2_ablation.py --store /work/stores/v2 --output /work/runs/v2_ablation \
        --cpu-minutes 10 --arms v1 bias bias_conv medium_bias_conv --parallel 2

Every arm trains from scratch on the store's training split (the v2 corpus) with the same recipe (dense, no AST,
token-budget batches, cosine schedule annealed to the end) for the same *process CPU time* on one thread: a short
calibration measures each arm's CPU seconds per step and sets its step count, so a slower architecture gets
fewer steps. Arms run as separate processes (``--parallel`` at once, one torch thread each), so contention on a
shared machine changes wall time, not the budget. Scores on the *validation* split (the test split is kept for the
final model), restricted to records of Rfam families (the transcript windows have no family):

- masked-nucleotide loss and accuracy, fixed masks (15 %), on up to ``--mlm-records`` records;
- zero-shot pair-head F1 on up to ``--pair-records`` records with an Rfam structure (families of ArchiveII's kinds
  excluded, as in training), decoded exactly as ``genesis-rna fold`` decodes a pair head (nested MEA decode of
  the symmetrised probabilities, canonical + GU pairs, hairpin >= 3, threshold 0.5).

Results: ``OUTPUT/results.json`` and ``OUTPUT/summary.md``; each arm's run folder stays under ``OUTPUT/runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: arm -> (model_size, GenesisRNAConfig overrides)
ARMS = {
    "v1": ("small", ""),
    "bias": ("small", "pair_bias=true"),
    "bias_conv": ("small", "pair_bias=true,pair_conv_layers=3"),
    "conv": ("small", "pair_conv_layers=3"),
    "medium_bias_conv": ("small", "d_model=384,n_heads=6,n_layers=6,dim_ff=1536,pair_bias=true,pair_conv_layers=3"),
}
RECIPE = {"tokens_per_batch": 8192, "max_seq_len": 512, "learning_rate": 1e-3, "use_ast": False,
          "max_records_per_family": 1000, "structure_exclude_families": "archiveii", "precision": "auto",
          "log_every": 1, "save_every": 100000, "eval_every": 0, "flops_every": 0, "seed": 0}


# ----------------------------------------------------------------------------------------------- evaluation

def heldout_samples(store_path: str, split: str) -> tuple[list, list]:
    """(MLM samples, pair samples) of ``split``: Rfam-family records; pair ones with a given structure, no
    ArchiveII-kind family."""
    from genesis_rna.data.store import ShardStore, archiveii_kind_families

    store = ShardStore(store_path, split=split)
    hidden = set(store.family_codes(archiveii_kind_families(store)))
    fam = store.family_column()
    index = np.asarray(store._index if store._index is not None else np.arange(store.n_total))
    family_records = [i for i, g in enumerate(index) if fam[g] >= 0]
    mlm, pair = [], []
    for i in family_records:
        s = store[i]
        mlm.append(s)
        if s.structure_source == "input" and s.family not in hidden and (s.partner >= 0).any():
            pair.append(s)
    return mlm, pair


def spread(items: list, n: int) -> list:
    """``n`` items spread evenly over the list (deterministic, covers every family's range)."""
    if len(items) <= n:
        return items
    return [items[int(k)] for k in np.linspace(0, len(items) - 1, n).astype(int)]


def mlm_scores(model, samples: list, max_len: int = 514) -> dict:
    """Token-weighted masked-nucleotide loss and accuracy with fixed masks (seed 0)."""
    import torch

    from genesis_rna.data.dataset import RNAPretrainDataset, collate_pretrain
    from genesis_rna.data.batching import TokenBudgetBatchSampler
    from genesis_rna.training.losses import mlm_loss

    ds = RNAPretrainDataset(samples, max_len=max_len, seed=0, fixed_masks=True, crop="start")
    sampler = TokenBudgetBatchSampler(ds.lengths, 8192, shuffle=False, max_len=max_len)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_pretrain)
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["input_ids"], batch["attention_mask"], return_pair_logits=False)["mlm_logits"]
            loss, counts = mlm_loss(logits.float(), batch["mlm_labels"], reduction="sum", return_counts=True)
            total += float(loss)
            labels = batch["mlm_labels"]
            valid = labels != -100
            correct += int((logits.argmax(-1)[valid] == labels[valid]).sum())
            n += int(valid.sum())
    return {"mlm_loss": total / n, "mlm_acc": correct / n, "mlm_tokens": n}


def pair_head_probs(model, sequence: str) -> np.ndarray:
    """Symmetrised sigmoid of the pair head, as ``genesis-rna fold --model ENCODER`` computes it."""
    import torch

    from genesis_rna.tokenization import RNATokenizer

    ids = RNATokenizer()([sequence])["input_ids"]
    with torch.no_grad():
        z = model(ids)["pair_logits"][0, 1:len(sequence) + 1, 1:len(sequence) + 1].float()
    p = torch.sigmoid(z).numpy()
    return ((p + p.T) / 2).astype(np.float32)


def pair_scores(model, samples: list, threshold: float = 0.5, max_nt: int = 512) -> dict:
    """Mean per-sequence exact-pair F1 of the pair head through fold's decoder."""
    from genesis_rna.structure.decode import decode
    from genesis_rna.structure.pairs import pair_metrics

    nt = "ACGUN"
    f1 = []
    for s in samples:
        seq = "".join(nt[int(t) - 4] for t in s.tokens[:max_nt])
        true = np.asarray(s.partner[:max_nt], dtype=np.int64)
        true = np.where((true >= len(seq)), -1, true)
        true = np.where(true >= 0, true, -1)
        pred = decode(pair_head_probs(model, seq), seq, threshold=threshold)
        f1.append(pair_metrics(pred, true)["f1"])
    return {"pair_f1": float(np.mean(f1)), "pair_n": len(f1)}


# ----------------------------------------------------------------------------------------------- one arm

def _train_config(arm: str, store: str, run_dir: Path, steps: int):
    from genesis_rna.config import TrainingConfig

    size, overrides = ARMS[arm]
    return TrainingConfig(model_size=size, model_overrides=overrides, data_path=store, output_dir=os.fspath(run_dir),
                          max_steps=steps, warmup_steps=max(10, steps // 10), **RECIPE)


def calibrate(arm: str, store: str, run_dir: Path, steps: int = 8) -> float:
    """Median CPU seconds per step of ``arm`` over a few steps after warm-up."""
    from genesis_rna.training.checkpoints import read_metrics
    from genesis_rna.training.pretrain import run

    run(_train_config(arm, store, run_dir, steps), resume=False, progress=False)
    cpu = [r["step_cpu_seconds"] for r in read_metrics(run_dir) if r.get("kind", "train") == "train"
           and "step_cpu_seconds" in r][2:]
    return float(np.median(cpu))


def run_arm(arm: str, store: str, out: Path, cpu_minutes: float, mlm_records: int, pair_records: int) -> dict:
    """Calibrate, train for the CPU budget, score on the validation split; results cached in ``arm.json``."""
    import torch

    from genesis_rna.model.encoder import GenesisRNAModel
    from genesis_rna.training.pretrain import run

    torch.set_num_threads(1)
    cached = out / f"{arm}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    sec_per_step = calibrate(arm, store, out / "calibrate" / arm)
    steps = max(20, int(cpu_minutes * 60 / sec_per_step))
    start = time.process_time()
    result = run(_train_config(arm, store, out / "runs" / arm, steps), progress=False)
    train_cpu = time.process_time() - start
    model = GenesisRNAModel.from_pretrained(result.final_dir).eval()
    mlm, pair = heldout_samples(store, "validation")
    res = {"arm": arm, "model_size": ARMS[arm][0], "overrides": ARMS[arm][1], "parameters": model.num_parameters(),
           "cpu_seconds_per_step": sec_per_step, "steps": steps, "train_cpu_seconds": train_cpu,
           **mlm_scores(model, spread(mlm, mlm_records)), **pair_scores(model, spread(pair, pair_records))}
    cached.write_text(json.dumps(res, indent=1) + "\n")
    return res


# ----------------------------------------------------------------------------------------------- driver

def summary(results: list[dict], cpu_minutes: float) -> str:
    lines = [f"Equal CPU budget per arm: {cpu_minutes:g} CPU-minutes (one thread), validation split, Rfam families.",
             "", "| arm | parameters | steps | CPU s/step | MLM loss | MLM acc | pair-head F1 (fold decoder) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['arm']} ({r['overrides'] or 'preset'}) | {r['parameters']:,} | {r['steps']} | "
                     f"{r['cpu_seconds_per_step']:.2f} | {r['mlm_loss']:.4f} | {r['mlm_acc']:.4f} | "
                     f"{r['pair_f1']:.3f} (n={r['pair_n']}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--cpu-minutes", type=float, default=10.0)
    parser.add_argument("--arms", nargs="+", default=["v1", "bias", "bias_conv"], choices=sorted(ARMS))
    parser.add_argument("--parallel", type=int, default=1, help="arms trained at once (one thread each)")
    parser.add_argument("--mlm-records", type=int, default=2000)
    parser.add_argument("--pair-records", type=int, default=300)
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.arm:
        run_arm(args.arm, args.store, out, args.cpu_minutes, args.mlm_records, args.pair_records)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending = list(args.arms)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            arm = pending.pop(0)
            cmd = [sys.executable, __file__, "--store", args.store, "--output", args.output, "--cpu-minutes",
                   str(args.cpu_minutes), "--mlm-records", str(args.mlm_records), "--pair-records",
                   str(args.pair_records), "--arm", arm]
            running.append(subprocess.Popen(cmd, env=env, stdout=open(out / f"{arm}.log", "w"),
                                            stderr=subprocess.STDOUT))
        time.sleep(5)
        for p in [p for p in running if p.poll() is not None]:
            running.remove(p)
            if p.returncode:
                print(f"arm failed (exit {p.returncode}): {' '.join(p.args[-1:])}; see its log", file=sys.stderr)
    results = [json.loads((out / f"{a}.json").read_text()) for a in args.arms if (out / f"{a}.json").exists()]
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "summary.md").write_text(summary(results, args.cpu_minutes))
    print(summary(results, args.cpu_minutes))
    return 0 if len(results) == len(args.arms) else 1


if __name__ == "__main__":
    sys.exit(main())
