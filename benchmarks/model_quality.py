"""Quality of a trained genesis-rna model on held-out data, each number next to its baseline (MODEL_CARD.md).

    python benchmarks/model_quality.py --model /work/runs/genesis-rna-small/final --store /work/stores/rfam_trna
    python benchmarks/model_quality.py --model DIR --store STORE --quick          # small subsets (smoke run)

Measured, on the store's *test* split (whole Rfam families never seen in training), with fixed masks:

- masked-nucleotide accuracy, loss and perplexity, against two baselines estimated on the train split: the
  unigram (base composition) and a 3-mer context model ``P(x | left, right)`` (add-one smoothing) that sees the
  *unmasked* neighbours, which is slightly more than the model sees;
- structure-context accuracy (NONE/STEM/LOOP/BULGE/HAIRPIN) against the majority label;
- zero-shot base-pair F1 (exact pairs, mean per sequence) of the pair head (pairs with p > 0.5, each position in
  at most one pair, most probable first) against ViennaRNA MFE on the same sequences, the targets being the store's
  structures (Rfam consensus projected onto each sequence);
- embedding quality: nRC 13-class accuracy of a logistic-regression probe on frozen mean embeddings (5-fold
  cross-validation on nRC train, and train -> test), against the same probe on k-mer counts (k = 1..4).

- zero-shot base-pair F1 from attention maps, ESM contact-regression style: a logistic regression over the
  symmetrised, APC-corrected attention maps of all layers and heads, fitted on train-family sequences, for the
  trained model and for a randomly initialised model of the same shape (what attention alone gives).

Every pair scorer goes through the same decoder (greedy, canonical + GU pairs, hairpin >= 3, at most a fraction
of L pairs, the fraction tuned on train-family sequences), so the comparison is between scores, not decoders.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
NRC = ROOT.parent / "shared" / "data" / "classification" / "nrc"


# ------------------------------------------------------------------------------------------------ MLM + labels

def _loader(store, n: int, max_len: int):
    from genesis_rna.data.batching import TokenBudgetBatchSampler
    from genesis_rna.data.dataset import RNAPretrainDataset, collate_pretrain

    idx = np.linspace(0, len(store) - 1, min(n, len(store))).astype(int).tolist()
    subset = [store[i] for i in idx]
    ds = RNAPretrainDataset(subset, max_len=max_len, seed=0, fixed_masks=True, crop="start")
    sampler = TokenBudgetBatchSampler(ds.lengths, 8192, shuffle=False, max_len=max_len)
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_pretrain), subset


def kmer_baselines(train_store, loader, n_train: int = 20000) -> dict:
    """Unigram and 3-mer-context predictions of the masked nucleotides in ``loader`` (counts from train)."""
    uni = np.ones(9)
    ctx = np.ones((9, 9, 9))  # [left, right, centre], add-one
    for i in np.linspace(0, len(train_store) - 1, min(n_train, len(train_store))).astype(int):
        t = np.asarray(train_store[int(i)].tokens, dtype=np.int64)
        uni += np.bincount(t, minlength=9)[:9]
        if len(t) >= 3:
            np.add.at(ctx, (t[:-2], t[2:], t[1:-1]), 1)
    uni_p = uni[4:9] / uni[4:9].sum()
    out = {"unigram": [0.0, 0, 0], "3mer": [0.0, 0, 0]}  # nll sum, correct, count
    for batch in loader:
        labels = batch["mlm_labels"]
        orig = torch.where(labels >= 0, labels, batch["input_ids"])  # the unmasked sequence (specials kept)
        for b, t in torch.nonzero(labels >= 0).tolist():
            x = int(labels[b, t])
            if not 4 <= x <= 8:
                continue
            out["unigram"][0] -= math.log(uni_p[x - 4])
            out["unigram"][1] += int(np.argmax(uni_p) + 4 == x)
            out["unigram"][2] += 1
            left, right = int(orig[b, t - 1]), int(orig[b, t + 1])
            p = ctx[left, right, 4:9] / ctx[left, right, 4:9].sum()
            out["3mer"][0] -= math.log(p[x - 4])
            out["3mer"][1] += int(np.argmax(p) + 4 == x)
            out["3mer"][2] += 1
    return {k: {"mlm_loss": v[0] / v[2], "mlm_acc": v[1] / v[2], "perplexity": math.exp(v[0] / v[2])}
            for k, v in out.items()}


# ------------------------------------------------------------------------------------------------- pairs

CANONICAL = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}
# Decoding keeps at most fraction * L pairs: scale-free, so a calibrated head (probabilities ~1/L) and an
# uncalibrated probe are decoded alike; the fraction is tuned per scorer on train-family sequences.
PAIR_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def decode_pairs(prob: np.ndarray, fraction: float = 0.3, min_loop: int = 3, seq: str | None = None) -> np.ndarray:
    """Greedy: highest-scoring pairs first, each position at most once, j - i > min_loop, at most
    ``fraction * L`` pairs, and (given ``seq``) canonical or GU pairs only. One decoder for every scorer."""
    n = prob.shape[0]
    partner = np.full(n, -1, dtype=np.int64)
    i, j = np.triu_indices(n, k=min_loop + 1)
    p = prob[i, j]
    keep = np.ones(len(p), dtype=bool)
    if seq is not None:
        keep = np.array([(seq[a], seq[b]) in CANONICAL for a, b in zip(i, j, strict=True)], dtype=bool)
    budget, made = int(fraction * n), 0
    for k in np.argsort(-p[keep]):
        if made >= budget:
            break
        a, b = i[keep][k], j[keep][k]
        if partner[a] < 0 and partner[b] < 0:
            partner[a], partner[b] = b, a
            made += 1
    return partner


def _structured(samples, max_len: int, limit: int) -> list[tuple[str, np.ndarray]]:
    """(sequence, true partners) of records whose structure came with the data (Rfam SS_cons), at most ``limit``."""
    from genesis_rna.tokenization import RNATokenizer

    tok = RNATokenizer()
    out = []
    for s in samples:
        if s.structure_source != "input" or len(s) > max_len - 2 or (np.asarray(s.partner) < -1).any():
            continue
        seq = tok.decode(torch.as_tensor(np.asarray(s.tokens, dtype=np.int64)))
        out.append((seq, np.asarray(s.partner, dtype=np.int64)))
        if len(out) >= limit:
            break
    return out


@torch.no_grad()
def _forward(model, seq: str, attentions: bool = False) -> dict:
    from genesis_rna.tokenization import RNATokenizer

    ids = torch.tensor([RNATokenizer().encode(seq)])
    return model(ids, need_attentions=attentions)


def apc(x: np.ndarray) -> np.ndarray:
    """Average product correction (Dunn et al. 2008), as ESM's contact regression applies to attention maps."""
    row = x.sum(-1, keepdims=True)
    col = x.sum(-2, keepdims=True)
    return x - row * col / x.sum((-1, -2), keepdims=True)


def attention_features(model, seq: str) -> np.ndarray:
    """[L, L, layers*heads]: symmetrised, APC-corrected attention maps without the special tokens."""
    att = _forward(model, seq, attentions=True)["attentions"][0].float().numpy()  # [layers, heads, T, T]
    att = att[:, :, 1:-1, 1:-1]
    att = apc(att + np.swapaxes(att, -1, -2))
    return att.reshape(-1, *att.shape[-2:]).transpose(1, 2, 0)


def _pair_examples(feats: np.ndarray, partner: np.ndarray, rng: np.random.Generator, neg_per_pos: int = 20):
    n = len(partner)
    i, j = np.triu_indices(n, k=4)
    y = partner[i] == j
    neg = np.flatnonzero(~y)
    neg = rng.choice(neg, size=min(len(neg), max(50, neg_per_pos * int(y.sum()))), replace=False)
    take = np.concatenate([np.flatnonzero(y), neg])
    return feats[i[take], j[take]], y[take].astype(int)


def fit_attention_probe(model, train: list[tuple[str, np.ndarray]], seed: int = 0):
    """ESM-style contact regression: logistic regression from attention maps to base pairs (train families)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    xs, ys = zip(*(_pair_examples(attention_features(model, s), p, rng) for s, p in train), strict=True)
    clf = LogisticRegression(C=0.1, max_iter=2000)
    clf.fit(np.concatenate(xs), np.concatenate(ys))
    return clf


def _probe_prob(model, clf, seq: str) -> np.ndarray:
    f = attention_features(model, seq)
    prob = clf.predict_proba(f.reshape(-1, f.shape[-1]))[:, 1].reshape(f.shape[:2])
    return (prob + prob.T) / 2


def _head_prob(model, seq: str) -> np.ndarray:
    return torch.sigmoid(_forward(model, seq)["pair_logits"][0, 1:-1, 1:-1].float()).numpy()


def _best_fraction(score_fn, tune: list[tuple[str, np.ndarray]]) -> float:
    """The decoding pair fraction with the best mean F1 on the tuning (train-family) sequences."""
    from genesis_rna.structure.pairs import pair_metrics

    probs = [(score_fn(s), s, p) for s, p in tune]
    f1 = [np.mean([pair_metrics(decode_pairs(q, t, seq=s), p)["f1"] for q, s, p in probs]) for t in PAIR_FRACTIONS]
    return float(PAIR_FRACTIONS[int(np.argmax(f1))])


def _mean_f1(score_fn, test, fraction: float) -> float:
    from genesis_rna.structure.pairs import pair_metrics

    return float(np.mean([pair_metrics(decode_pairs(score_fn(s), fraction, seq=s), p)["f1"] for s, p in test]))


def pair_f1(model, test: list[tuple[str, np.ndarray]], train: list[tuple[str, np.ndarray]], seed: int = 0) -> dict:
    """Zero-shot base-pair F1 on held-out families: pair head, attention-map probe (trained model and a random
    model of the same shape), ViennaRNA MFE. Probes are fitted and pair fractions tuned on train-family sequences."""
    import RNA

    from genesis_rna.pretrained import random_model
    from genesis_rna.structure.pairs import pair_metrics

    half = len(train) // 2
    fit, tune = train[:half], train[half:]
    out: dict = {"n_test": len(test), "n_probe_fit": len(fit), "n_fraction_tune": len(tune)}
    if getattr(model, "pair_head", None) is not None:
        t = _best_fraction(lambda s: _head_prob(model, s), tune)
        out["pair_head"] = {"f1": _mean_f1(lambda s: _head_prob(model, s), test, t), "pair_fraction": t}
    rand = random_model(seed=seed, **{k: getattr(model.config, k) for k in ("d_model", "n_layers", "n_heads",
                                                                             "dim_ff", "max_len")})[0]
    for name, m in (("attention_probe", model), ("attention_probe_random_init", rand)):
        clf = fit_attention_probe(m, fit, seed)
        fn = (lambda mm, cc: (lambda s: _probe_prob(mm, cc, s)))(m, clf)
        t = _best_fraction(fn, tune)
        out[name] = {"f1": _mean_f1(fn, test, t), "pair_fraction": t}
    mfe = [pair_metrics(np.asarray(RNA.ptable(RNA.fold(s.replace("N", "A"))[0]), dtype=np.int64)[1:] - 1, p)["f1"]
           for s, p in test]
    out["viennarna_mfe"] = {"f1": float(np.mean(mfe))}
    return out


# ---------------------------------------------------------------------------------------------------- nRC

def _nrc(path: Path, limit: int):
    from genesis_rna.io import read_fasta

    recs = read_fasta(path, allow_duplicates=True)
    recs = recs[:: max(1, len(recs) // limit)] if limit else recs
    return [(r.id, r.sequence) for r in recs], [r.description.split()[-1] for r in recs]


def nrc_probe(model, limit: int) -> dict:
    """Logistic-regression probes on nRC, each with its L2 strength chosen by 5-fold CV on train (same grid).

    The k-mer baseline and the embeddings go through the same :func:`genesis_rna.evaluate.nrc.linear_probe`, so
    neither side gets a better-tuned classifier than the other.
    """
    from genesis_rna.evaluate.nrc import kmer_features, linear_probe
    from genesis_rna.model.embed import embed_sequences

    train, y_train = _nrc(NRC / "train.fa", limit)
    test, y_test = _nrc(NRC / "test.fa", limit // 2 if limit else 0)

    layers = list(range(1, model.config.n_layers + 1))

    def embed(recs) -> dict[str, np.ndarray]:
        got = {r.id: r for r in embed_sequences(model, recs, repr_layers=layers, include=("mean",))}
        last = np.stack([got[i].mean[layers[-1]] for i, _ in recs])
        every = np.stack([np.concatenate([got[i].mean[k] for k in layers]) for i, _ in recs])
        return {"last": last, "all": every}

    etr, ete = embed(train), embed(test)
    out = {}
    for name, xtr, xte in (("genesis_rna_mean_embedding", etr["last"], ete["last"]),
                           ("genesis_rna_mean_embedding_all_layers", etr["all"], ete["all"]),
                           ("kmer_counts_k1-4", kmer_features([s for _, s in train]),
                            kmer_features([s for _, s in test]))):
        probe = linear_probe(xtr, y_train, xte, y_test)
        out[name] = {"cv5_acc": probe["cv_accuracy"], "test_acc": probe["test_accuracy"],
                     "test_macro_f1": probe["test_macro_f1"], "C": probe["C"]}
    out["n_train"], out["n_test"] = len(train), len(test)
    return out


# ---------------------------------------------------------------------------------------------------- report

def markdown(r: dict) -> str:
    """The model card's tables, each number beside its baseline."""
    lines = [f"Model `{r['model']}`, store `{r['store']}`, split `{r['split']}` ({r['n_records']} records of "
             f"families never seen in training), {r['seconds']:.0f} s.", ""]
    if "model_mlm" in r:
        lines += _mlm_lines(r)
    if "pairs" in r:
        lines += _pair_lines(r["pairs"])
    if "nrc" in r:
        lines += _nrc_lines(r["nrc"])
    return "\n".join(lines) + "\n"


def _mlm_lines(r: dict) -> list[str]:
    m, b = r["model_mlm"], r["baselines_mlm"]
    lines = ["| masked nucleotides | accuracy | loss (nats) | perplexity |", "|---|---|---|---|",
             f"| genesis-rna | {m['val_mlm_acc']:.3f} | {m['val_mlm_loss']:.3f} | {math.exp(m['val_mlm_loss']):.3f} |"]
    for name, label in (("unigram", "unigram (train composition)"),
                        ("3mer", "3-mer context (sees both unmasked neighbours)")):
        lines.append(f"| {label} | {b[name]['mlm_acc']:.3f} | {b[name]['mlm_loss']:.3f} | "
                     f"{b[name]['perplexity']:.3f} |")
    lines += ["", "| structure context (5 labels) | accuracy |", "|---|---|",
              f"| genesis-rna structure head | {m.get('val_struct_acc', float('nan')):.3f} |",
              f"| majority label | {r['structure_majority_acc']:.3f} |", ""]
    return lines


def _pair_lines(p: dict) -> list[str]:
    lines = [f"| zero-shot base pairs ({p['n_test']} held-out sequences with Rfam structures) | mean F1 | "
             "pair budget (x L) |", "|---|---|---|"]
    for key, label in (("pair_head", "pair head"), ("attention_probe", "attention-map probe, trained model"),
                       ("attention_probe_random_init", "attention-map probe, random-init model")):
        if key in p:
            lines.append(f"| {label} | {p[key]['f1']:.3f} | {p[key]['pair_fraction']} |")
    lines.append(f"| ViennaRNA MFE | {p['viennarna_mfe']['f1']:.3f} | - |")
    return lines + [""]


def _nrc_lines(n: dict) -> list[str]:
    lines = [f"| nRC 13 classes, logistic-regression probe ({n['n_train']} train / {n['n_test']} test) | "
             "5-fold CV on train | test | C (chosen by the CV) |", "|---|---|---|---|"]
    for key, label in (("genesis_rna_mean_embedding", "frozen mean embedding (last layer)"),
                       ("genesis_rna_mean_embedding_all_layers", "frozen mean embeddings, all layers concatenated"),
                       ("kmer_counts_k1-4", "k-mer counts, k = 1..4")):
        lines.append(f"| {label} | {n[key]['cv5_acc']:.3f} | {n[key]['test_acc']:.3f} | {n[key]['C']:g} |")
    return lines


# ---------------------------------------------------------------------------------------------------- main

PARTS = ("mlm", "pairs", "nrc")
PART_KEYS = {"mlm": ("model_mlm", "baselines_mlm", "structure_majority_acc"), "pairs": ("pairs",), "nrc": ("nrc",)}


def merged_with_earlier(path: Path, new: dict, parts: list[str]) -> dict:
    """The earlier full results at ``path`` with the parts just re-measured replaced (same model, store, split).

    Lets one part be re-measured (e.g. after a probe fix) without re-running the hour of the others; each run's
    parts and seconds stay listed in ``seconds_by_run``. A different model, store or split is refused.
    """
    if not path.is_file():
        return new
    old = json.loads(path.read_text())
    for key in ("model", "store", "split"):
        if old.get(key) != new[key]:
            raise SystemExit(f"model_quality: {path} holds {key}={old.get(key)!r}, not {new[key]!r}; "
                             "use another --output or re-run all parts")
    merged = dict(old)
    for part in parts:
        for key in PART_KEYS[part]:
            if key in new:
                merged[key] = new[key]
    earlier = old.get("seconds_by_run") or [{"parts": [p for p in PARTS if PART_KEYS[p][0] in old],
                                              "seconds": old.get("seconds")}]
    merged["seconds_by_run"] = earlier + new["seconds_by_run"]
    merged["seconds"] = sum(r["seconds"] or 0 for r in merged["seconds_by_run"])
    return merged


def main(argv: list[str] | None = None) -> int:
    from genesis_rna import load
    from genesis_rna.data.store import ShardStore
    from genesis_rna.training.loop import evaluate_pretrain
    from genesis_rna.training.losses import MultiTaskLoss

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory or shipped name")
    parser.add_argument("--store", required=True, help="shard store with family-disjoint splits")
    parser.add_argument("--split", default="test")
    parser.add_argument("--quick", action="store_true", help="small subsets (smoke run)")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--output", default=None, help="directory for results.json + results.md "
                        "(benchmarks/results/model_quality for the model card)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default all; the model card needs all)")
    args = parser.parse_args(argv)
    n_eval, n_pairs, n_nrc = (300, 40, 600) if args.quick else (5000, 300, 0)
    start = time.perf_counter()
    model, _ = load(args.model)
    max_len = model.config.max_len
    test_store = ShardStore(args.store, split=args.split)
    loader, subset = _loader(test_store, n_eval, max_len)
    results: dict = {"model": args.model, "store": args.store, "split": args.split, "n_records": len(subset)}
    if "mlm" in args.parts:
        results["model_mlm"] = evaluate_pretrain(model, loader, MultiTaskLoss(), device=torch.device("cpu"))
        results["baselines_mlm"] = kmer_baselines(ShardStore(args.store, split="train"), loader)
        labels = np.concatenate([np.asarray(s.struct) for s in subset])
        labels = labels[labels >= 0]
        results["structure_majority_acc"] = float(np.bincount(labels).max() / len(labels)) if len(labels) else None
    if "pairs" in args.parts:
        train_store = ShardStore(args.store, split="train")
        pick = np.random.default_rng(0).permutation(len(train_store))[:4 * n_pairs]
        train_pick = [train_store[int(i)] for i in pick]
        results["pairs"] = pair_f1(model, _structured(subset, max_len, n_pairs),
                                   _structured(train_pick, max_len, n_pairs // 2))
    if "nrc" in args.parts and NRC.exists():
        results["nrc"] = nrc_probe(model, n_nrc)
    results["seconds"] = time.perf_counter() - start
    results["seconds_by_run"] = [{"parts": list(args.parts), "seconds": results["seconds"]}]
    if args.output and set(args.parts) != set(PARTS):
        results = merged_with_earlier(Path(args.output) / "results.json", results, args.parts)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / "results.md").write_text(markdown(results))
        print(f"wrote {out}/results.json and results.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
