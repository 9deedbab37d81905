"""Run a command; sample the RSS/PSS of its whole process tree every 0.2 s; report wall time, CPU time (all
processes, from wait4) and memory peaks (main process, largest worker, whole tree). Linux only (/proc).
Produces the numbers of docs/preprocessing.md, e.g.::

    python benchmarks/preprocess_memwatch.py rfam -- genesis-rna preprocess Rfam.seed.gz -o /tmp/rfam --quiet

Prints one JSON line; with ``MEMWATCH_LOG=file.jsonl`` also appends it (with RSS samples over time) there.
"""
import json
import os
import subprocess
import sys
import time


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def mem(pid):
    """(rss_kb, pss_kb) of one process from smaps_rollup."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main():
    label = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak_tree_rss = peak_tree_pss = peak_main_rss = peak_child_rss = 0
    samples = []
    rusage = None
    while True:
        pid_done, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid_done:
            rusage, proc.returncode = ru, os.waitstatus_to_exitcode(status)
            break
        pids = tree(proc.pid)
        m = {p: mem(p) for p in pids}
        tr = sum(v[0] for v in m.values())
        tp = sum(v[1] for v in m.values())
        main_rss = m.get(proc.pid, (0, 0))[0]
        child = max([v[0] for p, v in m.items() if p != proc.pid] or [0])
        peak_tree_rss, peak_tree_pss = max(peak_tree_rss, tr), max(peak_tree_pss, tp)
        peak_main_rss, peak_child_rss = max(peak_main_rss, main_rss), max(peak_child_rss, child)
        samples.append((round(time.perf_counter() - t0, 2), main_rss // 1024, tp // 1024, len(pids)))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    res = {"label": label, "cmd": cmd, "rc": proc.returncode, "wall_s": round(wall, 2),
           "cpu_user_s": round(rusage.ru_utime, 2), "cpu_sys_s": round(rusage.ru_stime, 2),
           "maxrss_rusage_mb": rusage.ru_maxrss // 1024,
           "loadavg_end": open("/proc/loadavg").read().split()[:3],
           "peak_main_rss_mb": peak_main_rss // 1024, "peak_worker_rss_mb": peak_child_rss // 1024,
           "peak_tree_rss_mb": peak_tree_rss // 1024, "peak_tree_pss_mb": peak_tree_pss // 1024,
           "samples_t_mainRssMB_treePssMB_nproc": samples[:: max(1, len(samples) // 40)]}
    if os.environ.get("MEMWATCH_LOG"):
        with open(os.environ["MEMWATCH_LOG"], "a") as fh:
            fh.write(json.dumps(res) + "\n")
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("samples")}))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
