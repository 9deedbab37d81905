"""ArchiveII secondary-structure table (issue 9): ViennaRNA baselines and the learned heads, per fold.

A thin wrapper over ``genesis-rna evaluate archiveii`` (genesis_rna/evaluate/archiveii.py) that writes into
benchmarks/results/structure_archiveii/<split>[_<tag>]/ (results.json + results.md + one JSON per fold and
method); the ViennaRNA cache goes to --cache (default /tmp/genesis_rna_archiveii_vienna, ~25 MB, outside the
repository). Every option of ``genesis-rna evaluate`` passes through. Examples (the runs in docs/structure.md):

    # ViennaRNA baselines on every test sequence of both splits (no training; ~25 CPU-min for the cache)
    python benchmarks/structure_archiveii.py --split famfold --methods vienna_mfe vienna_mea vienna_bpp
    python benchmarks/structure_archiveii.py --split kfold --methods vienna_mfe vienna_mea vienna_bpp
    # learned heads under a CPU budget (seeded subsets; the caps are recorded in every fold JSON)
    python benchmarks/structure_archiveii.py --split famfold --tag sub --methods vienna_mfe vienna_bpp \\
        genesis_hybrid vienna_head --encoder genesis-rna-small --max-train 600 --max-valid 30 --max-test 100 \\
        --epochs 3 --steps-per-epoch 300 --max-train-len 128 --patience 1
"""

from __future__ import annotations

import sys
from pathlib import Path

from genesis_rna.cli.evaluate import evaluate_main as main

RESULTS = Path(__file__).resolve().parent / "results" / "structure_archiveii"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "structure" / "archiveII_csv"


def _argv(argv: list[str]) -> list[str]:
    args = list(argv)
    tag = ""
    if "--tag" in args:
        k = args.index("--tag")
        tag = "_" + args[k + 1]
        del args[k:k + 2]
    split = args[args.index("--split") + 1] if "--split" in args else "famfold"
    if "--output" not in args and "-o" not in args:
        args += ["--output", str(RESULTS / f"{split}{tag}")]
    if "--data" not in args:
        args += ["--data", str(DATA)]
    if "--cache" not in args:
        args += ["--cache", "/tmp/genesis_rna_archiveii_vienna"]
    return ["archiveii", *args]


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
