"""Bounded load test of ``genesis-rna serve`` on loopback: N concurrent clients for a fixed time.

    python benchmarks/serve_load.py                                   # shipped model, 20 clients, 60 s
    python benchmarks/serve_load.py --model /path/to/model_dir --clients 20 --seconds 60
    python benchmarks/serve_load.py --random-init small --seconds 10  # smoke run

The server runs as its own process (``python -m genesis_rna serve ... --port 0``), exactly as a user starts it,
so the clients (asyncio + httpx in this process) do not share its interpreter. Each client loops over a fixed
mix of requests on the real RNAs of ``examples/well_known_rnas.fa`` (22-120 nt): ``/fold`` (ViennaRNA MFE + pair
probabilities + layout), ``/embed`` of all four records, ``/attention`` of one record and ``/health``. A request
fails when it raises (connection error, timeout) or answers anything but 200; 503 (queue full) is counted
separately. Reported: requests, throughput, failures, latency p50/p90/p99/max overall and per endpoint, and the
server's CPU time (utime + stime from /proc) over the run. Results: benchmarks/results/serve_load/ (JSON + MD).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "benchmarks" / "results" / "serve_load"
sys.path.insert(0, str(ROOT))

from genesis_rna.io import read_fasta  # noqa: E402


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    model = ["--random-init", args.random_init] if args.random_init else ["--model", args.model]
    cmd = [sys.executable, "-m", "genesis_rna", "serve", *model, "--port", "0", "--quiet",
           "--workers", str(args.workers), "--queue", str(args.queue), "--device", "cpu", "--dtype", args.dtype]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("serving"):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split(" on ")[1].split("/ ")[0]


def cpu_name() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_mix(records: list[tuple[str, str]]) -> list[tuple[str, str, dict | None]]:
    everything = [{"id": rid, "sequence": seq} for rid, seq in records]
    mix: list[tuple[str, str, dict | None]] = []
    for rid, seq in records:
        mix.append(("fold", "/fold", {"id": rid, "sequence": seq}))
        mix.append(("embed", "/embed", {"records": everything}))
    mix.append(("attention", "/attention", {"id": records[0][0], "sequence": records[0][1], "layer": -1}))
    mix.append(("health", "/health", None))
    return mix


async def client(http, mix, offset: int, stop_at: float, log: list) -> None:
    import httpx

    k = offset
    while time.monotonic() < stop_at:
        name, path, body = mix[k % len(mix)]
        k += 1
        t0 = time.perf_counter()
        try:
            r = await (http.get(path) if body is None else http.post(path, json=body))
            status = r.status_code
        except httpx.HTTPError as exc:
            status = f"error: {type(exc).__name__}"
        log.append((name, status, time.perf_counter() - t0))


async def run_load(url: str, mix, clients: int, seconds: float) -> tuple[list, float]:
    import httpx

    log: list = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        t0 = time.monotonic()
        await asyncio.gather(*(client(http, mix, i, t0 + seconds, log) for i in range(clients)))
        return log, time.monotonic() - t0


def summarise(log: list, wall: float) -> dict:
    def stats(rows):
        lat = np.array([r[2] for r in rows]) * 1000
        return {"requests": len(rows), "failed": sum(r[1] != 200 for r in rows),
                "status_503": sum(r[1] == 503 for r in rows),
                "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
                "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}

    out = {"overall": stats(log), "per_endpoint": {}}
    out["overall"]["requests_per_s"] = len(log) / wall
    for name in sorted({r[0] for r in log}):
        out["per_endpoint"][name] = stats([r for r in log if r[0] == name])
    errors = sorted({str(r[1]) for r in log if r[1] != 200})
    out["failure_kinds"] = errors
    return out


def markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"# serve load test: {cfg['clients']} clients, {cfg['seconds']} s, model {cfg['model']}", "",
             f"Machine: {result['machine']}. Server: {cfg['workers']} worker thread(s), queue {cfg['queue']}, "
             f"dtype {cfg['dtype']}; server CPU time {result['server_cpu_s']:.1f} s over {result['wall_s']:.1f} s "
             f"wall. Command: `{result['command']}`", "",
             "| endpoint | requests | failed | 503 | p50 ms | p90 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|---|"]
    rows = {**result["summary"]["per_endpoint"], "**all**": result["summary"]["overall"]}
    for name, s in rows.items():
        lines.append(f"| {name} | {s['requests']} | {s['failed']} | {s['status_503']} | {s['p50_ms']:.0f} | "
                     f"{s['p90_ms']:.0f} | {s['p99_ms']:.0f} | {s['max_ms']:.0f} |")
    lines += ["", f"Throughput: {result['summary']['overall']['requests_per_s']:.1f} requests/s; "
              f"failure kinds: {result['summary']['failure_kinds'] or 'none'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="genesis-rna-small")
    p.add_argument("--random-init", default=None)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--queue", type=int, default=32)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--output-dir", type=Path, default=OUT_DIR)
    args = p.parse_args(argv)

    records = [(r.id, r.sequence) for r in read_fasta(ROOT / "examples" / "well_known_rnas.fa")]
    proc, url = start_server(args)
    try:
        cpu0 = cpu_seconds(proc.pid)
        log, wall = asyncio.run(run_load(url, request_mix(records), args.clients, args.seconds))
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "config": {"clients": args.clients, "seconds": args.seconds, "workers": args.workers, "queue": args.queue,
                   "dtype": args.dtype, "model": f"random {args.random_init}" if args.random_init else args.model},
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, load average before "
                   f"{os.getloadavg()[0]:.1f} (shared with other jobs)",
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *(argv or sys.argv[1:])]),
        "wall_s": wall, "server_cpu_s": cpu, "summary": summarise(log, wall),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "serve_load.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.output_dir / "serve_load.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["summary"]["overall"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
