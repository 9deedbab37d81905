"""Golden outputs of the user-facing commands on the shipped examples (issue 24: "identical before and after").

Runs ``embed``, ``fold``, ``score-mutations`` (scan and inline variants), ``design`` (seeded) and a 20-step
``pretrain`` (the README quick start's data, with AST) as subprocesses, each with one BLAS/OpenMP thread, fp32 and
the CPU, and reduces every output to a compact record:

- text outputs (CSV, FASTA, .ct/.bpseq/.dbn): numbers parsed out and kept as floats, the rest kept as text;
- arrays (embeddings, base-pair probabilities, model weights): shape, dtype, SHA-256 of the bytes, and a
  fingerprint (sum, sum of |x|, 32 values at fixed positions) that can be compared with a tolerance.

``python tests/golden/make_golden.py --write`` records ``tests/golden/reference.json`` from the current code;
``--check`` compares and says whether every output is bitwise identical (same machine) or only within tolerance
(another CPU). ``tests/test_golden_outputs.py`` runs the check in the default test suite (tolerance).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "well_known_rnas.fa"
REFERENCE = Path(__file__).resolve().parent / "reference.json"
TRNA = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGGUCCUGUGUUCGAUCCACAGAAUUCGCACCA"
RTOL, ATOL = 1e-4, 1e-5
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
# fields whose values are wall-clock times, not outputs
_TIMING = re.compile(r"(time_s=)[-+0-9.eE]+")


def _env() -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env.update(MKL_CBWR="AUTO,STRICT", MKL_DYNAMIC="FALSE", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    return env


def _run(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "genesis_rna", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def array_record(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    flat = a.reshape(-1).astype(np.float64)
    idx = np.linspace(0, max(flat.size - 1, 0), num=min(32, flat.size)).astype(int) if flat.size else []
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
            "sum": float(flat.sum()), "abs_sum": float(np.abs(flat).sum()),
            "values": [float(flat[i]) for i in idx]}


def text_record(text: str) -> dict:
    text = _TIMING.sub(r"\1?", text)
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "text": _NUMBER.sub("#", text),
            "numbers": [float(x) for x in _NUMBER.findall(text)]}


def _npz(path: Path) -> dict:
    with np.load(path) as z:
        return {k: array_record(z[k]) for k in sorted(z.files)}


def _safetensors(path: Path) -> dict:
    from safetensors.numpy import load_file
    tensors = load_file(str(path))
    return {k: array_record(v) for k, v in sorted(tensors.items())}


def generate(work: Path) -> dict:
    """Run every command in ``work`` and return the records, keyed by output name."""
    out: dict = {}
    ex = str(EXAMPLES)
    _run(["embed", ex, "-o", "emb.npz", "--repr-layers", "-1", "0", "--include", "mean", "per_tok", "bos",
          "--device", "cpu", "--dtype", "fp32", "-q"], work)
    out["embed"] = _npz(work / "emb.npz")

    _run(["fold", ex, "-o", "fold", "--dtype", "fp32", "-q"], work)
    fold = {}
    for p in sorted((work / "fold").iterdir()):
        fold[p.name] = array_record(np.load(p)) if p.suffix == ".npy" else text_record(p.read_text())
    out["fold"] = fold

    (work / "wt.fa").write_text(f">tRNA-Phe\n{TRNA}\n")
    _run(["score-mutations", "wt.fa", "--scan", "-o", "scan.csv", "--device", "cpu", "--dtype", "fp32", "-q"], work)
    _run(["score-mutations", "wt.fa", "G1A C2U:G3A U8C", "--method", "wt-marginal", "-o", "wt.csv",
          "--device", "cpu", "--dtype", "fp32", "-q"], work)
    out["score-mutations"] = {n: text_record((work / n).read_text()) for n in ("scan.csv", "wt.csv")}

    (work / "targets.txt").write_text("hairpin ((((((...))))))....\nthreeway ((((...))))((((...))))..((((...))))\n")
    _run(["design", "--targets", "targets.txt", "-n", "2", "--max-iter", "60", "--time-limit", "600", "--seed", "7",
          "-o", "designs.fa", "--device", "cpu", "--dtype", "fp32", "-q"], work)
    out["design"] = {"designs.fa": text_record((work / "designs.fa").read_text())}

    _run(["pretrain", "--data_path", ex, "--use_ast", "--max_steps", "20", "--log_every", "1", "--output_dir", "pt",
          "--preprocess_workers", "1", "--device", "cpu", "--quiet"], work)
    losses = []
    for line in (work / "pt" / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "train":
            losses.append({k: row[k] for k in ("step", "loss", "mlm_loss", "structure_loss", "pair_loss",
                                               "grad_norm", "n_selected", "lr") if k in row})
    out["pretrain"] = {"losses": losses, "final": _safetensors(work / "pt" / "final" / "model.safetensors"),
                       "config.json": json.loads((work / "pt" / "final" / "config.json").read_text())}
    return out


def compare(ref, new, path: str = "") -> tuple[list[str], list[str]]:
    """(differences beyond tolerance, outputs that match only within tolerance) between two record trees."""
    errors: list[str] = []
    inexact: list[str] = []
    if isinstance(ref, dict) and "sha256" in ref:
        if not isinstance(new, dict) or "sha256" not in new:
            return [f"{path}: missing"], []
        if ref["sha256"] == new["sha256"]:
            return [], []
        inexact.append(path)
        if "text" in ref:
            if ref["text"] != new["text"]:
                errors.append(f"{path}: text differs")
            elif not np.allclose(ref["numbers"], new["numbers"], rtol=RTOL, atol=ATOL):
                errors.append(f"{path}: numbers differ beyond tolerance")
        else:
            if ref["shape"] != new["shape"] or ref["dtype"] != new["dtype"]:
                errors.append(f"{path}: shape/dtype {ref['shape']} {ref['dtype']} -> {new['shape']} {new['dtype']}")
            else:
                a = np.array([ref["sum"], ref["abs_sum"], *ref["values"]])
                b = np.array([new["sum"], new["abs_sum"], *new["values"]])
                scale = max(1.0, abs(ref["abs_sum"]) / max(1, np.prod(ref["shape"])))
                if not np.allclose(a, b, rtol=RTOL, atol=ATOL * scale * max(1, int(np.prod(ref["shape"])) ** 0.5)):
                    errors.append(f"{path}: values differ beyond tolerance (max |d| {np.abs(a - b).max():.3g})")
        return errors, inexact
    if isinstance(ref, dict):
        if not isinstance(new, dict) or set(ref) != set(new):
            return [f"{path}: keys {sorted(ref) if isinstance(ref, dict) else ref} -> "
                    f"{sorted(new) if isinstance(new, dict) else new}"], []
        for k in ref:
            e, i = compare(ref[k], new[k], f"{path}/{k}")
            errors += e
            inexact += i
        return errors, inexact
    if isinstance(ref, list):
        if not isinstance(new, list) or len(ref) != len(new):
            return [f"{path}: length differs"], []
        for k, (r, n) in enumerate(zip(ref, new, strict=True)):
            e, i = compare(r, n, f"{path}[{k}]")
            errors += e
            inexact += i
        return errors, inexact
    if isinstance(ref, float) and isinstance(new, (int, float)):
        if ref != new:
            inexact.append(path)
            if not np.isclose(ref, new, rtol=RTOL, atol=ATOL):
                errors.append(f"{path}: {ref} -> {new}")
        return errors, inexact
    if ref != new:
        errors.append(f"{path}: {ref!r} -> {new!r}")
    return errors, inexact


def check(work: Path | None = None) -> tuple[list[str], list[str]]:
    ref = json.loads(REFERENCE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        new = generate(Path(work or tmp))
    return compare(ref, json.loads(json.dumps(new)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="record tests/golden/reference.json from the current code")
    p.add_argument("--check", action="store_true", help="compare the current code with the reference")
    args = p.parse_args(argv)
    if args.write:
        with tempfile.TemporaryDirectory() as tmp:
            records = generate(Path(tmp))
        REFERENCE.write_text(json.dumps(records, indent=0, sort_keys=True) + "\n")
        print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} KiB)")
        return 0
    errors, inexact = check()
    if errors:
        print("\n".join(["DIFFERENT:", *errors]))
        return 1
    print("bitwise identical" if not inexact else f"identical within tolerance ({len(inexact)} outputs not bitwise: "
          + ", ".join(inexact[:10]) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
