"""RNA design (inverse folding) on ArchiveII target structures: genesis-rna design vs ViennaRNA's RNAinverse.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/rna_design.py \
        --model /work/runs/genesis-rna-small/checkpoints/step-0001200          # default: about 20-30 min, 2 workers
    python benchmarks/rna_design.py --model genesis-rna-small --full             # every usable target, longer limits
    python benchmarks/rna_design.py --per-bin 5 --time-limit 3                   # smoke run

Targets: ArchiveII structures (../shared/data/structure/archiveII_csv/ArchiveII.csv), pseudoknots removed with
``genesis_rna.structure.pairs.nested_subset``, duplicates and targets ViennaRNA cannot realise (a hairpin under 3 nt)
dropped, then a seeded sample per length bin: short (<= 100 nt), medium (101-200), long (201-400).

Both methods get the same per-target CPU-time budget (CPU, not wall time: the machine is shared), split evenly
over ``--designs`` designs (random starts); times reported are CPU seconds:
- genesis-rna: ``genesis_rna.design.inverse.design_one`` (LM-proposed moves, annealing on ensemble defect / MFE distance);
- RNAinverse: ``RNA.inverse_fold`` from uniform random starts, restarted until solved or out of time, in a
  forked child killed when its CPU time reaches the limit (the best sequence it reported so far counts).

A design is solved when ``RNA.fold`` of the sequence gives the target (checked here for both methods). Reported per
bin and method: solve rate (targets with at least one solved design), fraction of designs solved, mean wall time
per target, diversity (mean pairwise Hamming distance / L between the solved designs of a target), GC content and,
for the first solved design of each target up to 200 nt, the LM's pseudo-log-likelihood per nucleotide
(naturalness).
Results: benchmarks/results/rna_design/results.json and results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import multiprocessing as mp
import os
import platform
import select
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "structure" / "archiveII_csv" / "ArchiveII.csv"
OUT = ROOT / "benchmarks" / "results" / "rna_design"
PLL_MAX_LEN = 200  # naturalness costs L masked forwards per design: measured on short and medium targets only
BINS = {"short": (1, 100), "medium": (101, 200), "long": (201, 400)}

_MODEL = None  # per worker process


def load_targets(per_bin: int | None, seed: int, path: Path = DATA) -> list[dict]:
    """Nested, realisable, de-duplicated ArchiveII targets; ``per_bin`` sampled per bin (None = all)."""
    from genesis_rna.structure.pairs import nested_subset, pairs_to_partners, partners_to_dotbracket

    seen, by_bin = set(), {b: [] for b in BINS}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            n = int(row["len"])
            b = next((k for k, (lo, hi) in BINS.items() if lo <= n <= hi), None)
            if b is None:
                continue
            pairs = [(i - 1, j - 1) for i, j in json.loads(row["base_pairs"])]
            db = partners_to_dotbracket(nested_subset(pairs_to_partners(pairs, n)))
            partner = nested_subset(pairs_to_partners(pairs, n))
            if db in seen or "(" not in db or any(j > i and j - i - 1 < 3 for i, j in enumerate(partner)):
                continue
            seen.add(db)
            by_bin[b].append({"id": row["id"], "bin": b, "length": n, "target": db})
    rng = np.random.default_rng(seed)
    out = []
    for items in by_bin.values():
        take = len(items) if per_bin is None else min(per_bin, len(items))
        out += [items[i] for i in sorted(rng.choice(len(items), size=take, replace=False))]
    return out


def _init_worker(model_spec: str | None) -> None:
    import torch

    global _MODEL
    torch.set_num_threads(1)
    if model_spec:
        from genesis_rna import pretrained

        _MODEL = (pretrained.random_model(model_spec.split(":", 1)[1], seed=0)[0] if model_spec.startswith("random:")
                  else pretrained.load(model_spec)[0])


def _pll_per_nt(seq: str) -> float | None:
    if _MODEL is None:
        return None
    from genesis_rna.design.inverse import pseudo_log_likelihood

    return pseudo_log_likelihood(_MODEL, seq) / len(seq)


def _run_ours(target: str, seed: int, time_limit: float, lm_weight: float) -> tuple[str, float]:
    """One design under a CPU-time limit; returns (sequence, CPU seconds)."""
    from genesis_rna.design.inverse import design_one

    t0 = time.process_time()
    d = design_one(target, model=_MODEL if lm_weight > 0 else None, seed=seed, time_limit=time_limit,
                   max_iter=100000, lm_weight=lm_weight, naturalness=False, defect=False, clock=time.process_time)
    return d.sequence, time.process_time() - t0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _inverse_restarts(target: str, seed: int, fd: int) -> None:
    """Child process: RNA.inverse_fold from random starts, each improvement written to ``fd``, until solved."""
    import RNA

    rng = np.random.default_rng(seed)
    best = float("inf")
    with os.fdopen(fd, "w") as out:
        while best > 0:
            seq, dist = RNA.inverse_fold("".join(rng.choice(list("ACGU"), len(target))), target)
            if dist < best:
                best = dist
                out.write(f"{seq.upper()} {dist}\n")
                out.flush()


def _run_inverse(target: str, seed: int, time_limit: float) -> tuple[str, float]:
    """RNAinverse with random restarts under a hard CPU-time limit: it runs in a forked child that is killed when
    its CPU time reaches the limit (one inverse_fold call cannot be interrupted otherwise); the best sequence it
    reported wins. Returns (sequence, CPU seconds of the child)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _inverse_restarts(target, seed, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    best, buffer, used = "", "", 0.0
    with os.fdopen(read_fd) as reader:
        while True:
            with contextlib.suppress(OSError, IndexError, ValueError):
                used = _cpu_seconds(pid)
            if used >= time_limit:
                break
            ready, _, _ = select.select([reader], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(reader.fileno(), 1 << 16).decode()
            if not chunk:  # child finished (solved)
                break
            buffer += chunk
            lines = buffer.split("\n")
            buffer = lines[-1]
            if len(lines) > 1:
                best = lines[-2].split()[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    used = usage.ru_utime + usage.ru_stime
    if not best:  # not even one inverse_fold call finished in time: the random start is what it has
        best = "".join(np.random.default_rng(seed).choice(list("ACGU"), len(target)))
    return best, used


def run_target(job: tuple) -> dict:
    """All designs of one method for one target; solved checked with RNA.fold."""
    import RNA

    item, method, n_designs, budget, seed, lm_weight, pll = job
    target = item["target"]
    seqs, elapsed = [], 0.0
    for k in range(n_designs):
        limit = budget / n_designs
        if method == "genesis-rna":
            seq, cpu = _run_ours(target, seed + k, limit, lm_weight)
        else:
            seq, cpu = _run_inverse(target, seed + k, limit)
        seqs.append(seq)
        elapsed += cpu
    solved = [RNA.fold(s)[0] == target for s in seqs]
    good = [s for s, ok in zip(seqs, solved, strict=True) if ok]
    dists = [np.mean([a != b for a, b in zip(x, y, strict=True)]) for x, y in itertools.combinations(good, 2)]
    return {"id": item["id"], "bin": item["bin"], "length": item["length"], "method": method, "cpu_s": elapsed,
            "n_solved": sum(solved), "n_designs": n_designs, "diversity": float(np.mean(dists)) if dists else None,
            "gc": float(np.mean([(s.count("G") + s.count("C")) / len(s) for s in seqs])),
            "pll_per_nt": _pll_per_nt(good[0]) if good and pll and len(target) <= PLL_MAX_LEN else None, "sequences": seqs}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for b in list(BINS) + ["all"]:
        for method in sorted({r["method"] for r in rows}):
            sel = [r for r in rows if r["method"] == method and (b == "all" or r["bin"] == b)]
            if not sel:
                continue
            div = [r["diversity"] for r in sel if r["diversity"] is not None]
            pll = [r["pll_per_nt"] for r in sel if r["pll_per_nt"] is not None]
            out[f"{b}/{method}"] = {
                "targets": len(sel), "mean_length": float(np.mean([r["length"] for r in sel])),
                "solve_rate": float(np.mean([r["n_solved"] > 0 for r in sel])),
                "designs_solved": float(np.sum([r["n_solved"] for r in sel]) / np.sum([r["n_designs"] for r in sel])),
                "mean_cpu_s": float(np.mean([r["cpu_s"] for r in sel])),
                "median_cpu_s": float(np.median([r["cpu_s"] for r in sel])),
                "diversity": float(np.mean(div)) if div else None, "diversity_targets": len(div),
                "gc": float(np.mean([r["gc"] for r in sel])),
                "pll_per_nt": float(np.mean(pll)) if pll else None, "pll_targets": len(pll)}
    return out


def markdown(results: dict) -> str:
    s = results["summary"]
    lines = ["# RNA design on ArchiveII targets: genesis-rna design vs RNAinverse", "",
             f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}. Budget {results['time_limit']} CPU s per target and method, "
             f"{results['designs']} designs per target. Model: {results['model']}.", "",
             "| bin | method | targets | mean nt | solve rate | designs solved | mean CPU s/target | median CPU s | "
             "diversity (Hamming/L) | GC | PLL/nt |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, v in s.items():
        b, m = key.split("/", 1)
        div = "" if v["diversity"] is None else f"{v['diversity']:.3f}"
        pll = "" if v["pll_per_nt"] is None else f"{v['pll_per_nt']:.3f}"
        lines.append(f"| {b} | {m} | {v['targets']} | {v['mean_length']:.0f} | {v['solve_rate']:.3f} | "
                     f"{v['designs_solved']:.3f} | {v['mean_cpu_s']:.2f} | {v['median_cpu_s']:.2f} | {div} | "
                     f"{v['gc']:.3f} | {pll} |")
    lines += ["", "Solve rate: targets with at least one design whose RNA.fold MFE structure is the target. Diversity: "
              "mean over targets with >= 2 solved designs. PLL/nt: the LM's pseudo-log-likelihood per nucleotide of "
              "the first solved design (higher = more natural-looking to the model)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="genesis-rna-small", help="model dir/name, 'random:small', or 'none'")
    p.add_argument("--per-bin", type=int, default=60, help="targets per length bin (default 60)")
    p.add_argument("--designs", type=int, default=3, help="designs per target (default 3)")
    p.add_argument("--time-limit", type=float, default=6.0, help="seconds per target and method (default 6)")
    p.add_argument("--lm-weight", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-pll", action="store_true", help="skip the naturalness (PLL) of designs")
    p.add_argument("--methods", nargs="+", default=["genesis-rna", "RNAinverse"])
    p.add_argument("--full", action="store_true", help="every usable target, 30 s per target")
    p.add_argument("--output", default=str(OUT))
    args = p.parse_args(argv)
    per_bin, limit = (None, 30.0) if args.full else (args.per_bin, args.time_limit)
    targets = load_targets(per_bin, args.seed)
    model = None if args.model == "none" else args.model
    jobs = [(t, m, args.designs, limit, args.seed, args.lm_weight, not args.no_pll)
            for t in targets for m in args.methods]
    t0 = time.perf_counter()
    rows = []
    with mp.get_context("spawn").Pool(args.workers, initializer=_init_worker, initargs=(model,)) as pool:
        for k, row in enumerate(pool.imap_unordered(run_target, jobs)):
            rows.append(row)
            if (k + 1) % 20 == 0:
                print(f"{k + 1}/{len(jobs)} done, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (r["bin"], r["id"], r["method"]))
    results = {"command": "python benchmarks/rna_design.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": f"{platform.processor() or platform.machine()}, {args.workers} worker processes x 1 thread",
               "model": model or "none", "time_limit": limit, "designs": args.designs, "seed": args.seed,
               "wall_s": time.perf_counter() - t0, "summary": summarise(rows), "targets": rows}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
