"""Mutation effects on the yeast tRNA-Arg(CCU) fitness landscape (Li et al. 2016; 207 single + 12,985 double
mutants; ../shared/data/downstream/mutation): Spearman correlation with measured fitness.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/mutation_effects.py \
        --model random:small /work/runs/genesis-rna-small/checkpoints/step-0001200
    python benchmarks/mutation_effects.py --model genesis-rna-small          # the shipped model

Scores compared (higher = predicted fitter):

zero-shot (no fitness data used), on all 13,192 variants and on the test split:
- LM masked-marginal (ESM-1v) and wild-type-marginal log-likelihood ratios (genesis_rna.design.mutations);
- ViennaRNA folding-energy change: -(dG_mut - dG_wt) of the MFE, and the same for the energy of the wild type's
  MFE structure (the cloverleaf) evaluated on the mutant sequence.

supervised, trained on the data set's fixed random split (train 10,568 / valid 1,307 / test 1,317, `split` column,
Random(42)), hyper-parameters chosen on valid, Spearman on test:
- one-hot ridge: 72 x 4 one-hot of the mutant sequence (an additive site model), sklearn Ridge;
- LM-embedding ridge: frozen final-layer features of the mutant and wild type (mean over the sequence and mean
  over the mutated sites: [m_mut - m_wt, s_mut, s_mut - s_wt]) plus the zero-shot score;
- MutationEffectHead (genesis_rna.model.heads) trained on the same frozen features (encoder not fine-tuned: CPU only);
- one-hot + LM features in one ridge;
- with `--finetuned DIR` (a `genesis-rna finetune --mode full` directory trained on the same split, command in
  docs/mutations.md): that model's test Spearman, and its blend with the one-hot ridge (z-scored predictions,
  weight chosen on valid from 0, 0.05, ..., 1), with a paired bootstrap of blend minus ridge on the test set.

Results: benchmarks/results/mutation_effects/results.json and results.md (one section per model).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "downstream" / "mutation" / "trna_li2016.csv.gz"
OUT = ROOT / "benchmarks" / "results" / "mutation_effects"
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def load_data(path: Path = DATA) -> dict:
    """Rows of the fitness table and the wild type, rebuilt from the mutant strings (and checked on every row)."""
    from genesis_rna.design.variants import Substitution, apply_variant

    with gzip.open(path, "rt") as fh:
        rows = list(csv.DictReader(fh))
    seq0 = list(rows[0]["sequence"])
    for part in rows[0]["mutant"].split(","):
        seq0[int(part[1:-1]) - 1] = part[0]
    wt = "".join(seq0)
    variants = []
    for r in rows:
        subs = tuple(Substitution(int(p[1:-1]) - 1, p[0], p[-1]) for p in r["mutant"].split(","))
        assert apply_variant(wt, subs) == r["sequence"], r["mutant"]
        variants.append((r["mutant"], subs))
    return {"wt": wt, "variants": variants, "fitness": np.array([float(r["fitness"]) for r in rows]),
            "split": np.array([r["split"] for r in rows]), "seqs": [r["sequence"] for r in rows]}


def rho(x: np.ndarray, y: np.ndarray) -> float:
    return float(spearmanr(x, y).statistic)


# ------------------------------------------------------------------------------------------------ baselines
def vienna_scores(data: dict) -> dict[str, np.ndarray]:
    """-(dG_mut - dG_wt) of the MFE, and of the wild type's MFE structure evaluated on the mutant."""
    import RNA

    wt_ss, wt_mfe = RNA.fold(data["wt"])
    wt_eval = RNA.fold_compound(data["wt"]).eval_structure(wt_ss)  # = wt_mfe
    d_mfe, d_eval = [], []
    for s in data["seqs"]:
        fc = RNA.fold_compound(s)
        d_mfe.append(-(fc.mfe()[1] - wt_mfe))
        d_eval.append(-(fc.eval_structure(wt_ss) - wt_eval))
    return {"vienna_dMFE": np.array(d_mfe), "vienna_dE_wt_structure": np.array(d_eval)}


def one_hot(seqs: list[str]) -> np.ndarray:
    idx = np.array([["ACGU".index(c) for c in s] for s in seqs])
    out = np.zeros((len(seqs), idx.shape[1], 4), dtype=np.float32)
    np.put_along_axis(out, idx[..., None], 1.0, axis=2)
    return out.reshape(len(seqs), -1)


def ridge_fit_eval(x: np.ndarray, y: np.ndarray, split: np.ndarray) -> dict:
    """Ridge with alpha chosen by valid Spearman; features standardised on train. sklearn if present."""
    tr, va, te = split == "train", split == "valid", split == "test"
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
    z = (x - mu) / sd
    best = None
    for alpha in ALPHAS:
        pred = _ridge(z[tr], y[tr], alpha)(z)
        r = rho(pred[va], y[va])
        if best is None or r > best[0]:
            best = (r, alpha, pred)
    return {"alpha": best[1], "valid_spearman": best[0], "test_spearman": rho(best[2][te], y[te]), "pred": best[2]}


def without_preds(fit: dict) -> dict:
    """A ridge_fit_eval result without its prediction array, for results.json."""
    return {k: v for k, v in fit.items() if k != "pred"}


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float):
    try:
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=alpha).fit(x, y)
        return model.predict
    except ImportError:  # closed form with an unpenalised intercept
        ym = y.mean()
        w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ (y - ym))
        return lambda z: z @ w + ym


# ------------------------------------------------------------------------------------------------ LM features
def load_model(spec: str):
    from genesis_rna import pretrained

    if spec.startswith("random:"):
        return pretrained.random_model(spec.split(":", 1)[1], seed=0)[0]
    return pretrained.load(spec)[0]


def lm_features(model, data: dict, batch: int = 256) -> dict[str, np.ndarray]:
    """Final-layer mean and mutated-site mean of every mutant, and the wild type's, from frozen forwards."""
    from genesis_rna.tokenization import CLS_ID, NUCLEOTIDE_IDS, SEP_ID

    def forward(seqs):
        ids = torch.tensor([[CLS_ID] + [NUCLEOTIDE_IDS[c] for c in s] + [SEP_ID] for s in seqs])
        with torch.no_grad():
            return model(ids, return_logits=False)["last_hidden_state"][:, 1:-1].float()

    wt_h = forward([data["wt"]])[0]
    means, sites, wt_sites = [], [], []
    for k in range(0, len(data["seqs"]), batch):
        h = forward(data["seqs"][k : k + batch])
        means.append(h.mean(1).numpy())
        for b, (_, subs) in enumerate(data["variants"][k : k + batch]):
            pos = [s.position for s in subs]
            sites.append(h[b, pos].mean(0).numpy())
            wt_sites.append(wt_h[pos].mean(0).numpy())
    return {"wt_mean": wt_h.mean(0).numpy(), "mean": np.concatenate(means), "site": np.stack(sites),
            "wt_site": np.stack(wt_sites)}


def train_effect_head(feats: dict, y: np.ndarray, split: np.ndarray, seed: int = 0, epochs: int = 80,
                      patience: int = 15) -> dict:
    """MutationEffectHead (site features, antisymmetric) on frozen features; best epoch by valid Spearman.

    The head pools ``[B, T, d]`` rows itself; frozen features are handed to it as two rows per sequence (row 0 the
    whole-sequence mean, row 1 the site mean) with masks selecting each, which is exactly what it computes from
    full per-token states.
    """
    from genesis_rna.model.heads import MutationEffectHead

    torch.manual_seed(seed)
    n, d = feats["mean"].shape
    wt = np.stack([np.broadcast_to(feats["wt_mean"], (n, d)), feats["wt_site"]], 1)
    mut = np.stack([feats["mean"], feats["site"]], 1)
    # one affine map per feature dimension, fitted on the train mutants and applied to wild type and mutant alike
    # (keeps the head's antisymmetry); frozen LM features have arbitrary scale
    ref = mut[split == "train"].reshape(-1, d)
    mu, sd = ref.mean(0), ref.std(0) + 1e-6
    wt = torch.tensor((wt - mu) / sd, dtype=torch.float32)
    mut = torch.tensor((mut - mu) / sd, dtype=torch.float32)
    whole = torch.tensor([[True, False]]).expand(n, 2)
    site = torch.tensor([[False, True]]).expand(n, 2)
    target = torch.tensor((y - y[split == "train"].mean()) / y[split == "train"].std(), dtype=torch.float32)
    head = MutationEffectHead(d, hidden_dim=128, dropout=0.1, use_site_features=True)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    tr = np.nonzero(split == "train")[0]
    rng = np.random.default_rng(seed)
    best = (-2.0, None, 0)
    for epoch in range(epochs):
        head.train()
        order = rng.permutation(tr)
        for k in range(0, len(tr), 256):
            b = torch.tensor(order[k : k + 256])
            loss = torch.nn.functional.mse_loss(head(wt[b], mut[b], whole[b], whole[b], site[b]), target[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            pred = head(wt, mut, whole, whole, site).numpy()
        r = rho(pred[split == "valid"], y[split == "valid"])
        if r > best[0]:
            best = (r, pred, epoch + 1)
        elif epoch + 1 - best[2] >= patience:
            break
    te = split == "test"
    return {"valid_spearman": best[0], "test_spearman": rho(best[1][te], y[te]), "epochs": best[2]}


def evaluate_model(spec: str, data: dict, baselines: dict, cache_dir: str | None = None) -> dict:
    from genesis_rna.design.mutations import score_variants

    y, split = data["fitness"], data["split"]
    te = split == "test"
    model = load_model(spec)
    out: dict = {"model": spec}
    for method in ("masked-marginal", "wt-marginal"):
        t0 = time.process_time()
        scores = np.array([s.score for s in score_variants(model, data["wt"], data["variants"], method=method)])
        out[f"zero_shot_{method}"] = {"all_spearman": rho(scores, y), "test_spearman": rho(scores[te], y[te]),
                                      "cpu_s": time.process_time() - t0}
        if method == "masked-marginal":
            zero = scores
    t0 = time.process_time()
    cache = Path(cache_dir) / (spec.strip("/").replace("/", "_") + ".npz") if cache_dir else None
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            feats = {k: z[k] for k in z.files}
    else:
        feats = lm_features(model, data)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **feats)
    out["feature_cpu_s"] = time.process_time() - t0
    x_lm = np.concatenate([feats["mean"] - feats["wt_mean"], feats["site"], feats["site"] - feats["wt_site"],
                           zero[:, None]], axis=1)
    out["ridge_lm_embeddings"] = without_preds(ridge_fit_eval(x_lm, y, split))
    out["ridge_onehot_plus_lm"] = without_preds(ridge_fit_eval(np.concatenate([baselines["onehot_x"], x_lm], 1),
                                                               y, split))
    t0 = time.process_time()
    out["mutation_effect_head"] = train_effect_head(feats, y, split)
    out["mutation_effect_head"]["cpu_s"] = time.process_time() - t0
    return out


def finetuned_rows(model_dir: str, data: dict, ridge_pred: np.ndarray, n_boot: int = 2000) -> dict:
    """Test Spearman of a fully fine-tuned model, and of its valid-weighted blend with the one-hot ridge.

    The blend is a two-model ensemble: each prediction z-scored on valid, ``w * finetuned + (1 - w) * ridge`` with
    w picked by valid Spearman; the paired bootstrap over test rows says whether blend - ridge is above noise.
    """
    from genesis_rna.finetune.predict import predict_sequences

    y, split = data["fitness"], data["split"]
    va, te = split == "valid", split == "test"
    rows = np.nonzero(va | te)[0]
    t0 = time.process_time()
    preds, _ = predict_sequences(model_dir, [data["seqs"][i] for i in rows], device="cpu", dtype="fp32")
    ft = np.full(len(y), np.nan)
    ft[rows] = [float(p[0]) for p in preds]
    return {"model_dir": model_dir, "predict_cpu_s": time.process_time() - t0,
            "finetuned": {"valid_spearman": rho(ft[va], y[va]), "test_spearman": rho(ft[te], y[te])},
            "blend_with_onehot_ridge": blend_with_ridge(ft, ridge_pred, y, split, n_boot)}


def blend_with_ridge(ft: np.ndarray, ridge_pred: np.ndarray, y: np.ndarray, split: np.ndarray,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """``w * z(ft) + (1 - w) * z(ridge)`` (z-scored on valid), w in 0, 0.05, ..., 1 by valid Spearman; test
    Spearman and a paired bootstrap over test rows of blend minus ridge. Only valid and test rows of ``ft`` are read.
    """
    va, te = split == "valid", split == "test"

    def z(a: np.ndarray) -> np.ndarray:
        return (a - a[va].mean()) / a[va].std()

    weights = np.round(np.linspace(0.0, 1.0, 21), 2)
    valid_rho = [rho((w * z(ft) + (1 - w) * z(ridge_pred))[va], y[va]) for w in weights]
    w = float(weights[int(np.argmax(valid_rho))])
    blend = w * z(ft) + (1 - w) * z(ridge_pred)
    rng = np.random.default_rng(seed)
    test_rows = np.nonzero(te)[0]
    diffs = []
    for _ in range(n_boot):
        s = rng.choice(test_rows, len(test_rows))
        diffs.append(rho(blend[s], y[s]) - rho(ridge_pred[s], y[s]))
    diffs = np.array(diffs)
    return {"weight_finetuned": w, "valid_spearman": max(valid_rho), "test_spearman": rho(blend[te], y[te]),
            "bootstrap_test_diff_vs_ridge": {"mean": float(diffs.mean()),
                                             "ci95": np.percentile(diffs, [2.5, 97.5]).tolist(),
                                             "p_le_0": float((diffs <= 0).mean()), "n": n_boot}}


def markdown(results: dict) -> str:
    b = results["baselines"]
    lines = ["# Mutation effects: yeast tRNA-Arg fitness (Li et al. 2016), Spearman vs fitness", "",
             f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']}; {results['n_variants']} variants (test split {results['n_test']}).", "",
             "| score | kind | all variants | test split |", "|---|---|---|---|",
             f"| ViennaRNA -(dMFE) | zero-shot baseline | {b['vienna_dMFE']['all_spearman']:.3f} | "
             f"{b['vienna_dMFE']['test_spearman']:.3f} |",
             f"| ViennaRNA -(dE of WT structure) | zero-shot baseline | {b['vienna_dE_wt_structure']['all_spearman']:.3f}"
             f" | {b['vienna_dE_wt_structure']['test_spearman']:.3f} |",
             f"| one-hot ridge | supervised baseline | | {b['ridge_onehot']['test_spearman']:.3f} |"]
    for m in results["models"]:
        name = m["model"]
        lines += [f"| {name}: masked-marginal LLR | zero-shot | {m['zero_shot_masked-marginal']['all_spearman']:.3f} | "
                  f"{m['zero_shot_masked-marginal']['test_spearman']:.3f} |",
                  f"| {name}: wt-marginal LLR | zero-shot | {m['zero_shot_wt-marginal']['all_spearman']:.3f} | "
                  f"{m['zero_shot_wt-marginal']['test_spearman']:.3f} |",
                  f"| {name}: ridge on frozen LM features | supervised | | "
                  f"{m['ridge_lm_embeddings']['test_spearman']:.3f} |",
                  f"| {name}: MutationEffectHead on frozen features | supervised | | "
                  f"{m['mutation_effect_head']['test_spearman']:.3f} |",
                  f"| {name}: ridge on one-hot + LM features | supervised | | "
                  f"{m['ridge_onehot_plus_lm']['test_spearman']:.3f} |"]
    ft = results.get("finetuned")
    if ft:
        b2 = ft["blend_with_onehot_ridge"]
        boot = b2["bootstrap_test_diff_vs_ridge"]
        lines += [f"| full fine-tune (`{ft['model_dir']}`) | supervised | | {ft['finetuned']['test_spearman']:.3f} |",
                  f"| blend: {b2['weight_finetuned']:.2f} x full fine-tune + {1 - b2['weight_finetuned']:.2f} x "
                  f"one-hot ridge (weight on valid) | supervised | | {b2['test_spearman']:.4f} |",
                  "", f"Blend minus one-hot ridge on test, paired bootstrap ({boot['n']} resamples): "
                  f"{boot['mean']:+.4f} (95% CI {boot['ci95'][0]:+.4f} .. {boot['ci95'][1]:+.4f}; "
                  f"share <= 0: {boot['p_le_0']:.3f}); one-hot ridge alone {b['ridge_onehot']['test_spearman']:.4f}."]
    lines += ["", "Zero-shot scores use no fitness data; supervised ones are fitted on the train split "
              "(hyper-parameters on valid). Except the full fine-tune and its blend, the encoder is frozen: the head "
              "and the ridges see its final-layer features. Masked-marginal scoring of all variants costs 72 masked forwards."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", default=["genesis-rna-small"],
                   help="model directories or shipped names; 'random:small' for a random-init baseline")
    p.add_argument("--output", default=str(OUT))
    p.add_argument("--cache", default=None, help="directory to keep frozen LM features in (reused when present)")
    p.add_argument("--finetuned", default=None,
                   help="a `genesis-rna finetune --mode full` directory trained on this split (docs/mutations.md): "
                        "adds its test row and its blend with the one-hot ridge")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_data()
    y, split = data["fitness"], data["split"]
    te = split == "test"
    t0 = time.process_time()
    vienna = vienna_scores(data)
    baselines = {k: {"all_spearman": rho(v, y), "test_spearman": rho(v[te], y[te])} for k, v in vienna.items()}
    baselines["vienna_cpu_s"] = time.process_time() - t0
    x_oh = one_hot(data["seqs"])
    ridge = ridge_fit_eval(x_oh, y, split)
    baselines["ridge_onehot"] = without_preds(ridge)
    print(json.dumps(baselines, indent=1), flush=True)
    models = []
    results = {"command": "python benchmarks/mutation_effects.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
               "n_variants": len(y), "n_test": int(te.sum()), "baselines": baselines, "models": models}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.finetuned:
        results["finetuned"] = finetuned_rows(args.finetuned, data, ridge["pred"])
        print(json.dumps(results["finetuned"], indent=1), flush=True)
    for spec in args.model:  # results are rewritten after each model, so a long run keeps what it has
        res = evaluate_model(spec, data, {"onehot_x": x_oh}, args.cache)
        print(json.dumps(res, indent=1), flush=True)
        models.append(res)
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
