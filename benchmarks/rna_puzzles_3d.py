"""RNA-Puzzles 3D benchmark (issue 26): sequence in -> model out, C4' RMSD and TM-score against the 22 natives.

Rows: ours (genesis_rna.structure3d.fold3d on the 2D of genesis_rna's fold predictor), baseline 1 (an ideal A-form
single helix of the whole chain), baseline 2 (the same builder on ViennaRNA's MFE 2D); published RNAGym monomer
TM-scores as anchors (other methods, other scoring: context, not a head-to-head). Then design from 3D: the
native's canonical pairs -> genesis_rna's designer and ViennaRNA's RNAinverse -> native sequence recovery and
refold F1 against those pairs.

    python benchmarks/rna_puzzles_3d.py [DATA_DIR] [--designs 3] [--design-time 5] [--out DIR]

DATA_DIR defaults to ../shared/data relative to the repository root; the natives are read from
DATA_DIR/structure3d/rna_puzzles/rpNN*_native.pdb.gz. Writes results.json and results.md to
benchmarks/results/rna_puzzles_3d/. Times: process CPU seconds (the table) and wall seconds (results.json) on
this machine, whose 2 cores are shared with other jobs, so wall time overstates the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small dense algebra: one thread is fastest when shared

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genesis_rna._fileutil import atomic_write  # noqa: E402
from genesis_rna.structure3d import check_geometry, fold3d, read_structure, rmsd, tm_score  # noqa: E402
from genesis_rna.structure3d._compat import fold_module  # noqa: E402
from genesis_rna.structure3d.design3d import design_from_pdb  # noqa: E402

#: RNAGym (monomer 3D task) mean TM-scores, as published; other test set and scorer.
ANCHORS = {"RhoFold+": 0.367, "trRosettaRNA": 0.382, "AlphaFold3": 0.386}
OUT = ROOT / "benchmarks" / "results" / "rna_puzzles_3d"


def natives(data: Path) -> list[Path]:
    """The gzip PDB natives; a clear error when the folder is not there."""
    folder = data / "structure3d" / "rna_puzzles"
    files = sorted(folder.glob("rp*_native.pdb.gz"))
    if not files:
        raise SystemExit(f"error: no RNA-Puzzles natives (rp*_native.pdb.gz) in {folder}; pass the data folder "
                         "(the one holding structure3d/) as the first argument")
    return files


def confidence_spearman(model, native) -> float:
    """Spearman correlation of the B-factor confidence with minus the per-residue C4' error after superposition
    (positive: confident residues are the accurate ones)."""
    from scipy.stats import spearmanr

    from genesis_rna.structure3d.geometry import kabsch

    x, y = model.trace("C4'"), native.trace("C4'")
    ok = ~(np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1))
    rot, t = kabsch(x[ok], y[ok])
    err = np.linalg.norm(x[ok] @ rot.T + t - y[ok], axis=1)
    conf = model.confidence()[ok]
    if np.ptp(conf) == 0:
        return float("nan")
    return float(spearmanr(conf, -err).statistic)


def score(model, native, seconds: float, cpu: float) -> dict:
    """C4' RMSD, TM-score (normalised by the native), geometry validity and time (wall, process CPU)."""
    report = check_geometry(model)
    return {"confidence_spearman": confidence_spearman(model, native),"rmsd": rmsd(model.trace("C4'"), native.trace("C4'")),
            "tm": tm_score(model.trace("C4'"), native.trace("C4'"), model.sequence, native.sequence),
            "time_s": seconds, "cpu_s": cpu, "valid": report.ok, "geometry": report.summary(), "structure": model.structure}


def predict_puzzle(path: Path, predictor) -> dict:
    """The three model rows for one native."""
    native = read_structure(path)
    chains = [c.sequence for c in native.chains]
    ids = [c.id for c in native.chains]
    out = {"puzzle": path.name.replace("_native.pdb.gz", ""), "length": len(native.residues),
           "chains": len(chains)}
    runs = {"ours": dict(predictor=predictor), "aform_helix": dict(structure="." * sum(map(len, chains))),
            "vienna_mfe": dict(method="mfe")}
    for name, kwargs in runs.items():
        start, cpu = time.perf_counter(), time.process_time()
        model = fold3d(chains, chain_ids=ids, **kwargs)
        out[name] = score(model, native, time.perf_counter() - start, time.process_time() - cpu)
    return out


def design_puzzle(path: Path, n: int, seconds: float) -> dict:
    """Designer and RNAinverse on the native's pairs: per-chain means, then length-weighted over chains."""
    out = {}
    for method in ("genesis", "rnainverse"):
        kwargs = {"time_limit": seconds} if method == "genesis" else {}
        start = time.perf_counter()
        chains = design_from_pdb(path, n=n, seed=0, method=method, **kwargs)
        w = np.array([len(c.native) for c in chains], dtype=float)
        out[method] = {"recovery": float(np.average([c.mean_recovery for c in chains], weights=w)),
                       "refold_f1": float(np.average([c.mean_f1 for c in chains], weights=w)),
                       "time_s": time.perf_counter() - start,
                       "targets": [c.target for c in chains]}
    return out


def table(rows: list[dict], n_designs: int) -> str:
    """The markdown table of results.md."""
    lines = ["| puzzle | nt | chains | ours TM | ours RMSD | A-form TM | A-form RMSD | MFE TM | MFE RMSD | "
             "ours CPU s | design rec | design F1 | RNAinverse rec | RNAinverse F1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["design"]
        lines.append(f"| {r['puzzle']} | {r['length']} | {r['chains']} | {r['ours']['tm']:.3f} | "
                     f"{r['ours']['rmsd']:.1f} | {r['aform_helix']['tm']:.3f} | {r['aform_helix']['rmsd']:.1f} | "
                     f"{r['vienna_mfe']['tm']:.3f} | {r['vienna_mfe']['rmsd']:.1f} | {r['ours']['cpu_s']:.1f} | "
                     f"{d['genesis']['recovery']:.3f} | {d['genesis']['refold_f1']:.3f} | "
                     f"{d['rnainverse']['recovery']:.3f} | {d['rnainverse']['refold_f1']:.3f} |")
    m = summary(rows)
    conf = np.nanmean([r["ours"]["confidence_spearman"] for r in rows])
    lines.append(f"| **mean** | | | **{m['ours']['tm']:.3f}** | **{m['ours']['rmsd']:.1f}** | "
                 f"{m['aform_helix']['tm']:.3f} | {m['aform_helix']['rmsd']:.1f} | {m['vienna_mfe']['tm']:.3f} | "
                 f"{m['vienna_mfe']['rmsd']:.1f} | {m['ours']['cpu_s']:.1f} | {m['genesis']['recovery']:.3f} | "
                 f"{m['genesis']['refold_f1']:.3f} | {m['rnainverse']['recovery']:.3f} | "
                 f"{m['rnainverse']['refold_f1']:.3f} |")
    lines.append("")
    lines.append(f"Confidence (B-factor) vs per-residue C4' error of ours: mean Spearman {conf:.3f} "
                 "(correlation with minus the error; 0 = no information).")
    lines.append("Published anchors (RNAGym monomer TM-score, other set and scorer): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in ANCHORS.items()) + ".")
    valid = {k: sum(r[k]["valid"] for r in rows) for k in ("ours", "aform_helix", "vienna_mfe")}
    lines.append(f"Geometry checks passed (models of {len(rows)}): " + ", ".join(f"{k} {v}" for k, v in valid.items())
                 + f". Designs: {n_designs} per chain, seeds 0..{n_designs - 1}.")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> dict:
    """Means over puzzles."""
    out = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("tm", "rmsd", "time_s", "cpu_s")}
           for k in ("ours", "aform_helix", "vienna_mfe")}
    for k in ("genesis", "rnainverse"):
        out[k] = {m: float(np.mean([r["design"][k][m] for r in rows])) for m in ("recovery", "refold_f1", "time_s")}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--designs", type=int, default=3)
    parser.add_argument("--design-time", type=float, default=5.0, help="seconds per genesis design (time_limit)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--limit", type=int, default=None, help="first N puzzles only (smoke runs)")
    parser.add_argument("--reuse-design", default=None,
                        help="results.json of an earlier run whose design rows to keep (design code and seeds "
                             "unchanged; RNAinverse takes most of the time)")
    args = parser.parse_args(argv)
    files = natives(Path(args.data))[: args.limit]
    predictor, note = fold_module().load_predictor()
    reused = {}
    if args.reuse_design:
        earlier = json.loads(Path(args.reuse_design).read_text())
        reused = {r["puzzle"]: r["design"] for r in earlier["puzzles"]}
        args.designs = earlier["designs_per_chain"]
        args.design_time = earlier["design_time_limit_s"]
    rows = []
    for path in files:
        row = predict_puzzle(path, predictor)
        name = path.name.replace("_native.pdb.gz", "")
        row["design"] = reused[name] if name in reused else design_puzzle(path, args.designs, args.design_time)
        rows.append(row)
        print(f"{row['puzzle']}: ours TM {row['ours']['tm']:.3f} RMSD {row['ours']['rmsd']:.1f} "
              f"({row['ours']['cpu_s']:.1f} s CPU) | A-form {row['aform_helix']['tm']:.3f} | MFE "
              f"{row['vienna_mfe']['tm']:.3f} | design rec {row['design']['genesis']['recovery']:.3f}", flush=True)
    out = Path(args.out)
    result = {"predictor": predictor.name, "predictor_note": note, "anchors_rnagym_tm": ANCHORS,
              "metric": "C4' RMSD after superposition (residue k on k); TM-score by TM-align (tmtools) on C4', "
                        "normalised by the native length", "designs_per_chain": args.designs,
              "design_time_limit_s": args.design_time, "design_reused_from": args.reuse_design,
              "mean": summary(rows), "puzzles": rows}
    with atomic_write(out / "results.json") as fh:
        json.dump(result, fh, indent=1)
    with atomic_write(out / "results.md") as fh:
        fh.write(f"# RNA-Puzzles 3D (22 natives)\n\nPredictor for ours: {predictor.name}.\n\n")
        fh.write(table(rows, args.designs))
    print(json.dumps(result["mean"], indent=1))


if __name__ == "__main__":
    main()
