"""Copy a finished pretraining run into the package as the shipped ``genesis-rna-small`` model.

    python experiments/ship_small.py /work/runs/genesis-rna-small-v2            # the run's best/ checkpoint
    python experiments/ship_small.py RUN --checkpoint final --name genesis-rna-small

Writes ``genesis_rna/weights/<name>/``: ``config.json`` + ``model.safetensors`` (bf16: half the size, and the
model computes in bf16 on CPUs that support it anyway; loading casts to fp32 by default), and ``training.json``
with what the model card needs: the command, the training config, steps, wall-clock, executed FLOPs, and the
store's family split (validation/test family accessions), so the card's numbers can be traced to their data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def training_summary(run: Path, checkpoint: str) -> dict:
    """Budget and provenance of the run, from its own files (nothing estimated here)."""
    rows = _metrics(run)
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    flops = [r for r in train if "flops_executed_total" in r]
    info = json.loads((run / "run_info.json").read_text())
    store = Path(info["data"])
    manifest = json.loads((store / "manifest.json").read_text())
    splits = {k: manifest["splits"][k].get("families", []) for k in ("validation", "test")}
    # elapsed restarts at 0 after each resume: sum the last elapsed of every segment
    segments, wall = [], 0.0
    for r in rows:
        if r.get("kind") in ("start", "resume"):
            segments.append(0.0)
        elif r.get("kind") == "train" and segments:
            segments[-1] = max(segments[-1], float(r.get("elapsed", 0.0)))
    wall = sum(segments)
    return {
        "run_dir": str(run), "checkpoint": checkpoint, "command": info.get("command"),
        "config": yaml.safe_load((run / "config.yaml").read_text()),
        "steps": max((r["step"] for r in train), default=0), "wall_clock_seconds_sum_of_segments": wall,
        "resumes": sum(1 for r in rows if r.get("kind") == "resume"),
        "flops_executed_total": flops[-1]["flops_executed_total"] if flops else None,
        "flops_dense_total": flops[-1]["flops_dense_total"] if flops else None,
        "flops_measured_at_step": flops[-1]["step"] if flops else None,
        "final_eval": evals[-1] if evals else None, "evals": evals,
        "data": {"store": str(store), "store_command": manifest.get("command"), "n_records": manifest["n_records"],
                 "n_train_used": info.get("n_train"), "n_validation": info.get("n_validation"),
                 "split_method": manifest["splits"].get("method"), "split_seed": manifest["splits"].get("seed"),
                 "validation_families": splits["validation"], "test_families": splits["test"],
                 "structure_excluded_families": info.get("structure_excluded_families", [])},
    }


def main(argv: list[str] | None = None) -> int:
    from genesis_rna.model.encoder import GenesisRNAModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="pretraining run directory")
    parser.add_argument("--checkpoint", default="best", help="best | final | checkpoints/step-NNNNNNN")
    parser.add_argument("--name", default="genesis-rna-small")
    args = parser.parse_args(argv)
    src = args.run / args.checkpoint
    model = GenesisRNAModel.from_pretrained(src)
    out = ROOT / "genesis_rna" / "weights" / args.name
    model.save_pretrained(out, dtype=torch.bfloat16)
    (out / "training.json").write_text(json.dumps(training_summary(args.run, args.checkpoint), indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"shipped {src} -> {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
