"""The fold model on its own Rfam validation records (family-disjoint from its training) vs ViennaRNA.

Rebuilds the validation split exactly as ``python -m genesis_rna.structure_model train`` does (same sampling
seed and sizes) and scores ViennaRNA MFE, our MEA decoder on ViennaRNA's bpp (threshold 0.5) and the model.

    python benchmarks/structure_rfam_valid.py --store /work/stores/rfam_trna --model genesis-rna-fold-small
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genesis_rna.structure.decode import decode
from genesis_rna.structure.model import load_structure_model, predict_proba
from genesis_rna.structure.pairs import dotbracket_to_partners, pair_metrics
from genesis_rna.structure.train import rfam_training_examples
from genesis_rna.structure.vienna import vienna_prior

OUT = Path(__file__).resolve().parent / "results" / "structure_archiveii" / "rfam_valid_compare.json"


def main() -> None:
    import RNA

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", default="genesis-rna-fold-small")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-valid", type=int, default=120)
    ap.add_argument("--max-len", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(OUT))
    a = ap.parse_args()
    ex, _ = rfam_training_examples(a.store, n=a.n_train + a.n_valid, max_len=a.max_len, seed=a.seed)
    fams = sorted({e.family for e in ex})
    rng = np.random.default_rng(a.seed)
    held = set(rng.choice(fams, size=max(1, len(fams) // 10), replace=False).tolist())
    valid = [e for e in ex if e.family in held][: a.n_valid]
    model = load_structure_model(a.model)
    res: dict[str, list[float]] = {"vienna_mfe": [], "vienna_bpp_mea05": [], "model": []}
    for e in valid:
        prior = vienna_prior(e.sequence)
        res["vienna_mfe"].append(pair_metrics(dotbracket_to_partners(RNA.fold(e.sequence)[0]), e.partner)["f1"])
        res["vienna_bpp_mea05"].append(pair_metrics(decode(prior[0], e.sequence, threshold=0.5), e.partner)["f1"])
        p = predict_proba(model, e.sequence, prior)
        res["model"].append(pair_metrics(decode(p, e.sequence, threshold=model.config.threshold), e.partner)["f1"])
    out = {k: float(np.mean(v)) for k, v in res.items()} | {"n": len(valid), "model_path": str(a.model)}
    Path(a.output).write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
