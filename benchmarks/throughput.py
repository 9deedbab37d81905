"""Embedding and training throughput, against the machine's own GEMM peak and the ``rna-fm`` reference, in one process.

    python benchmarks/throughput.py                      # everything, a markdown table on stdout
    python benchmarks/throughput.py --quick              # fewer repeats (a smoke run)
    python benchmarks/throughput.py --json out.json      # also the raw numbers

Rows (all measured in this process, the embedding rows and the GEMM roof interleaved in rounds and each kept at
its best round, so ratios are comparable even on a shared machine):

1. GEMM peak: best of several 2048^3 matmuls in fp32 and bf16 (the roof every model row is compared with).
2. Embedding nt/s at RNA-FM's shape (12 layers, 640 wide, 20 heads, FFN 5120, random weights): ``fm.BioBertModel``
   fp32 (when ``rna-fm`` is installed), genesis-rna fp32, bf16 autocast and bf16 weights; on batches of 8 x 256 nt
   and on the real length distribution of the Rfam 14.2 seed (token-budget batches of length-sorted sequences;
   only real nucleotides count, padding excluded). Model FLOP utilisation = analytic forward FLOPs per token x
   tokens / time / GEMM peak of that dtype.
3. Training-step tokens/s of the ``base`` preset (forward + backward + AdamW), batches of a 4,096-token budget with
   and without length bucketing.
4. Peak memory (RSS, in a fresh subprocess) to embed one 8,192-nt sequence with the ``base`` preset (windowed:
   the model's window is 1,022 nt).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RFAM = ROOT.parent / "shared" / "data" / "pretrain" / "rfam14.2_seed" / "Rfam.seed.gz"
RNAFM_SHAPE = {"d_model": 640, "n_layers": 12, "n_heads": 20, "dim_ff": 5120}


# ------------------------------------------------------------------------------------------------- machine

def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        info["flags"] = " ".join(f for f in flags if f.startswith(("avx512_bf16", "amx", "avx512f", "avx2")))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Best wall time of ``repeats`` calls after ``warmup`` calls (best-of: the least disturbed run)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    seconds = timed(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds


# -------------------------------------------------------------------------------------------------- models

def genesis_model(shape: dict, dtype: torch.dtype = torch.float32):
    from genesis_rna.config import GenesisRNAConfig
    from genesis_rna.model.encoder import GenesisRNAModel

    torch.manual_seed(0)
    cfg = GenesisRNAConfig(**shape, max_len=1024, dropout=0.0, mlm_head=False, structure_head=False,
                           pair_head=False)
    return GenesisRNAModel(cfg).eval().to(dtype)


def rnafm_model():
    """``fm.BioBertModel`` at RNA-FM's shape with random weights, or None when rna-fm is not installed."""
    try:
        import fm
    except ImportError:
        return None, None
    alphabet = fm.Alphabet.from_architecture("ESM-1b", theme="rna")
    args = argparse.Namespace(layers=12, embed_dim=640, ffn_embed_dim=5120, attention_heads=20,
                              max_positions=1024, arch="roberta_large", final_bias=True, dropout=0.0,
                              attention_dropout=0.0, activation_dropout=0.0, emb_layer_norm_before=True,
                              token_dropout=False)
    torch.manual_seed(0)
    model = fm.BioBertModel(args, alphabet).eval()
    return model, alphabet


def forward_flops_per_token(shape: dict, length: int) -> float:
    """Matmul FLOPs of one encoder forward per token: 2 x weights (QKV, out, FFN) + attention (4 T d per layer)."""
    d, ff, n = shape["d_model"], shape["dim_ff"], shape["n_layers"]
    return n * (2 * (4 * d * d + 2 * d * ff) + 4 * length * d)


# ---------------------------------------------------------------------------------------------------- data

def rfam_lengths(n: int, seed: int = 0) -> list[int]:
    """Ungapped lengths of ``n`` random Rfam seed sequences (capped at 1,022 nt, the model window)."""
    lengths = []
    with gzip.open(RFAM, "rt", encoding="latin-1") as fh:
        for line in fh:
            if line.strip() and not line.startswith(("#", "//")):
                parts = line.split()
                if len(parts) == 2:
                    seq = parts[1]
                    lengths.append(sum(c not in "-.~" for c in seq))
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(lengths), size=min(n, len(lengths)), replace=False)
    return [min(int(lengths[i]), 1022) for i in picked]


def budget_batches(lengths: list[int], tokens: int, bucket: bool) -> list[list[int]]:
    from genesis_rna.data.batching import token_budget_batches

    if bucket:
        return token_budget_batches([n + 2 for n in lengths], tokens)
    out, cur, width = [], [], 0
    for i, n in enumerate(lengths):  # input order: what a loader without bucketing does
        w = max(width, n + 2)
        if cur and w * (len(cur) + 1) > tokens:
            out.append(cur)
            cur, w = [], n + 2
        cur.append(i)
        width = w
    if cur:
        out.append(cur)
    return out


def random_ids(lengths: list[int], vocab: tuple[int, ...], cls: int, eos: int, pad: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = max(lengths) + 2
    ids = torch.full((len(lengths), t), pad, dtype=torch.long)
    for k, n in enumerate(lengths):
        ids[k, 0] = cls
        ids[k, 1:n + 1] = torch.tensor(vocab)[torch.randint(len(vocab), (n,), generator=g)]
        ids[k, n + 1] = eos
    return ids


# --------------------------------------------------------------------------------------------- embedding

def embed_rate(run_batch, batches_lengths: list[list[int]], repeats: int, warmup: int = 1) -> float:
    """Useful nucleotides per second over all batches (best of ``repeats`` passes)."""
    nt = sum(sum(b) for b in batches_lengths)
    seconds = timed(lambda: [run_batch(b) for b in batches_lengths], repeats, warmup)
    return nt / seconds


def genesis_runner(model, autocast_dtype: torch.dtype | None):
    from genesis_rna.tokenization import CLS_ID, PAD_ID, SEP_ID

    def run(lengths: list[int]) -> None:
        ids = random_ids(lengths, (4, 5, 6, 7), CLS_ID, SEP_ID, PAD_ID)
        ctx = (torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype is not None
               else torch.autocast("cpu", enabled=False))
        with torch.inference_mode(), ctx:
            model(ids, ids != PAD_ID, repr_layers=[-1], return_logits=False)

    return run


def rnafm_runner(model, alphabet):
    nts = tuple(alphabet.get_idx(c) for c in "ACGU")

    def run(lengths: list[int]) -> None:
        ids = random_ids(lengths, nts, alphabet.cls_idx, alphabet.eos_idx, alphabet.padding_idx)
        with torch.inference_mode():
            model(ids, repr_layers=[12])

    return run


def round_robin(runners, workloads, rounds: int) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """GEMM peaks and every (runner, workload) rate, measured in ``rounds`` interleaved rounds; best of each.

    A shared machine has slow stretches lasting minutes. Measuring row after row would let one of them fall on a
    single row and skew its ratio; interleaving puts every row (and the GEMM roof) in every stretch, and the
    best-of keeps each at its least disturbed round. The peak is re-measured each round for the same reason.
    """
    peaks = {"fp32": 0.0, "bf16": 0.0}
    rates: dict[tuple[str, str], float] = {}
    for _name, run, _ in runners:  # warm-up: first-call allocations and kernel selection
        for _, batches in workloads:
            run(batches[0])
    for r in range(rounds):
        peaks = {"fp32": max(peaks["fp32"], gemm_peak(torch.float32)),
                 "bf16": max(peaks["bf16"], gemm_peak(torch.bfloat16))}
        for name, run, _ in runners:
            for label, batches in workloads:
                rate = embed_rate(run, batches, 1, warmup=0)
                rates[name, label] = max(rates.get((name, label), 0.0), rate)
        print(f"round {r + 1}/{rounds}: peaks {({k: round(v / 1e9) for k, v in peaks.items()})}, "
              f"{({f'{n} {w}': round(v) for (n, w), v in rates.items()})}", file=sys.stderr)
    return peaks, rates


# ---------------------------------------------------------------------------------------------- training

def train_rate(lengths: list[int], bucket: bool, steps: int) -> float:
    """Tokens (real, specials included) per second of forward + backward + AdamW steps on the base preset."""
    from genesis_rna.config import GenesisRNAConfig
    from genesis_rna.model.device import bf16_supported
    from genesis_rna.model.encoder import GenesisRNAModel
    from genesis_rna.tokenization import CLS_ID, PAD_ID, SEP_ID, random_mask
    from genesis_rna.training.losses import MultiTaskLoss

    torch.manual_seed(0)
    model = GenesisRNAModel(GenesisRNAConfig.from_preset("base", max_len=1024, pair_head=False)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = MultiTaskLoss(structure_weight=0.0, pair_weight=0.0)
    use_bf16 = bf16_supported(torch.device("cpu"))
    batches = budget_batches(lengths, 4096, bucket)[:steps]
    real = 0

    def step(b: list[int]) -> None:
        nonlocal real
        ids = random_ids([lengths[i] for i in b], (4, 5, 6, 7), CLS_ID, SEP_ID, PAD_ID)
        masked, labels = random_mask(ids, generator=torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            out = model(masked, ids != PAD_ID)
            loss = loss_fn(out, {"mlm_labels": labels}).total
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        real += int((ids != PAD_ID).sum())

    step(batches[0])
    real = 0
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    return real / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ memory

MEMORY_CHILD = """
import sys, time, torch
from genesis_rna.config import GenesisRNAConfig
from genesis_rna.model.embed import embed_sequences
from genesis_rna.model.encoder import GenesisRNAModel
torch.manual_seed(0)
model = GenesisRNAModel(GenesisRNAConfig.from_preset("base"))
def hwm():  # VmHWM of this process (ru_maxrss would carry over the parent's peak across exec on Linux)
    line = [x for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
    return int(line.split()[1])
before = hwm()
seq = "".join("ACGU"[i % 4] for i in range(8192))
t0 = time.perf_counter()
res = list(embed_sequences(model, [("long", seq)], include=("per_tok",), device="cpu"))
rows = res[0].per_tok[model.config.n_layers].shape[0]
peak = hwm()
print(before / 1024, peak / 1024, time.perf_counter() - t0, rows)
"""


def memory_8192() -> dict:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    before, peak, seconds, rows = out.stdout.split()[-4:]
    return {"rss_after_model_mb": float(before), "peak_rss_mb": float(peak), "seconds": float(seconds),
            "rows": int(float(rows))}


# ------------------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sequences (smoke run)")
    parser.add_argument("--json", default=None, help="write the raw numbers here")
    parser.add_argument("--rfam-sequences", type=int, default=256, help="Rfam sequences for the real-length rows")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 3
    results: dict = {"machine": machine()}
    print(f"machine: {results['machine']}", file=sys.stderr)

    fixed = [[256] * 8]
    real_lengths = rfam_lengths(64 if args.quick else args.rfam_sequences) if RFAM.exists() else []
    real = [[real_lengths[i] for i in b] for b in budget_batches(real_lengths, 4096, True)] if real_lengths else []
    runners = []
    fm_model, alphabet = rnafm_model()
    if fm_model is not None:
        runners.append(("rna-fm fp32", rnafm_runner(fm_model, alphabet), "fp32"))
    g32 = genesis_model(RNAFM_SHAPE)
    runners.append(("genesis-rna fp32", genesis_runner(g32, None), "fp32"))
    runners.append(("genesis-rna bf16 autocast", genesis_runner(g32, torch.bfloat16), "bf16"))
    runners.append(("genesis-rna bf16 weights", genesis_runner(genesis_model(RNAFM_SHAPE, torch.bfloat16), None),
                    "bf16"))
    workloads = [(label, batches) for label, batches in (("8x256", fixed), ("rfam", real)) if batches]
    peaks, rates = round_robin(runners, workloads, repeats)
    results["gemm_gflops"] = {k: v / 1e9 for k, v in peaks.items()}
    print(f"GEMM peak GFLOP/s: {results['gemm_gflops']}", file=sys.stderr)
    rows = []
    for name, _, dtype in runners:
        row = {"model": name}
        for label, batches in workloads:
            mean_len = np.mean([n for b in batches for n in b]) + 2
            row[f"{label}_nt_per_s"] = rates[name, label]
            row[f"{label}_mfu"] = rates[name, label] * forward_flops_per_token(RNAFM_SHAPE, int(mean_len)) / peaks[dtype]
        rows.append(row)
        print(f"{row}", file=sys.stderr)
    results["embedding"] = rows

    train_lengths = real_lengths or [256] * 64
    results["training_base_tokens_per_s"] = {
        "bucketed": train_rate(train_lengths, True, 4 if args.quick else 12),
        "unbucketed": train_rate(train_lengths, False, 4 if args.quick else 12),
    }
    print(f"train: {results['training_base_tokens_per_s']}", file=sys.stderr)
    results["memory_8192nt_base"] = memory_8192()
    print(f"memory: {results['memory_8192nt_base']}", file=sys.stderr)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def markdown(results: dict) -> str:
    m = results["machine"]
    g = results["gemm_gflops"]
    lines = [f"Machine: {m.get('cpu')} ({m.get('flags', '')}), {m['threads']} threads, torch {m['torch']}.",
             "", f"GEMM peak (2048^3): fp32 {g['fp32']:.0f} GFLOP/s, bf16 {g['bf16']:.0f} GFLOP/s.", "",
             "| model (RNA-FM shape) | 8x256 nt/s | MFU | Rfam lengths nt/s | MFU | vs rna-fm fp32 (8x256) |",
             "|---|---|---|---|---|---|"]
    base = next((r["8x256_nt_per_s"] for r in results["embedding"] if r["model"] == "rna-fm fp32"), None)
    for r in results["embedding"]:
        ratio = f"{r['8x256_nt_per_s'] / base:.2f}x" if base else "n/a"
        lines.append(f"| {r['model']} | {r['8x256_nt_per_s']:.0f} | {r['8x256_mfu']:.0%} | "
                     f"{r.get('rfam_nt_per_s', float('nan')):.0f} | {r.get('rfam_mfu', float('nan')):.0%} | {ratio} |")
    t = results["training_base_tokens_per_s"]
    mem = results["memory_8192nt_base"]
    lines += ["", f"Training step, base preset, 4,096-token batches: {t['bucketed']:.0f} tokens/s with length "
              f"bucketing, {t['unbucketed']:.0f} without ({t['bucketed'] / t['unbucketed']:.2f}x).",
              f"One 8,192-nt sequence, base preset, windowed (1,022-nt windows): peak RSS {mem['peak_rss_mb']:.0f} MB "
              f"({mem['rss_after_model_mb']:.0f} MB after loading the model), {mem['seconds']:.1f} s, "
              f"{mem['rows']} rows."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
