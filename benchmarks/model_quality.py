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

Not yet: the ESM-style attention-map contact probe (issue 6 asks for it against a randomly initialised model).
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
    from genesis_rna.data import RNAPretrainDataset, TokenBudgetBatchSampler, collate_pretrain

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

def decode_pairs(prob: np.ndarray, threshold: float = 0.5, min_loop: int = 3) -> np.ndarray:
    """Greedy: most probable pairs first, each position at most once, |i - j| > min_loop, p > threshold."""
    n = prob.shape[0]
    partner = np.full(n, -1, dtype=np.int64)
    i, j = np.triu_indices(n, k=min_loop + 1)
    p = prob[i, j]
    keep = p > threshold
    for k in np.argsort(-p[keep]):
        a, b = i[keep][k], j[keep][k]
        if partner[a] < 0 and partner[b] < 0:
            partner[a], partner[b] = b, a
    return partner


@torch.no_grad()
def pair_f1(model, samples, max_len: int) -> dict:
    import RNA

    from genesis_rna.structure import pair_metrics
    from genesis_rna.tokenization import RNATokenizer

    tok = RNATokenizer()
    head, vienna = [], []
    for s in samples:
        if s.structure_source != "input" or len(s) > max_len - 2:
            continue
        seq = tok.decode(torch.as_tensor(np.asarray(s.tokens, dtype=np.int64)))
        ids = torch.tensor([tok.encode(seq)])
        prob = torch.sigmoid(model(ids)["pair_logits"][0, 1:-1, 1:-1].float()).numpy()
        true = np.asarray(s.partner, dtype=np.int64)
        head.append(pair_metrics(decode_pairs(prob), true)["f1"])
        mfe = np.asarray(RNA.ptable(RNA.fold(seq.replace("N", "A"))[0]), dtype=np.int64)[1:] - 1
        vienna.append(pair_metrics(mfe, true)["f1"])
    return {"n": len(head), "pair_head_f1": float(np.mean(head)), "viennarna_mfe_f1": float(np.mean(vienna))}


# ---------------------------------------------------------------------------------------------------- nRC

def _nrc(path: Path, limit: int):
    from genesis_rna.io import read_fasta

    recs = read_fasta(path, allow_duplicates=True)
    recs = recs[:: max(1, len(recs) // limit)] if limit else recs
    return [(r.id, r.sequence) for r in recs], [r.description.split()[-1] for r in recs]


def kmer_features(seqs: list[str], ks=(1, 2, 3, 4)) -> np.ndarray:
    from itertools import product

    cols = {"".join(p): i for i, p in enumerate(q for k in ks for q in product("ACGU", repeat=k))}
    x = np.zeros((len(seqs), len(cols)))
    for r, s in enumerate(seqs):
        for k in ks:
            for i in range(len(s) - k + 1):
                c = cols.get(s[i:i + k])
                if c is not None:
                    x[r, c] += 1
        x[r] /= max(1, len(s))
    return x


def nrc_probe(model, limit: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from genesis_rna.inference import embed_sequences

    train, y_train = _nrc(NRC / "train.fa", limit)
    test, y_test = _nrc(NRC / "test.fa", limit // 2 if limit else 0)

    def embed(recs):
        got = {r.id: r.mean[model.config.n_layers] for r in embed_sequences(model, recs, include=("mean",))}
        return np.stack([got[i] for i, _ in recs])

    out = {}
    for name, xtr, xte in (("genesis_rna_mean_embedding", embed(train), embed(test)),
                           ("kmer_counts_k1-4", kmer_features([s for _, s in train]),
                            kmer_features([s for _, s in test]))):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        cv = cross_val_score(clf, xtr, y_train, cv=5)
        clf.fit(xtr, y_train)
        out[name] = {"cv5_acc": float(cv.mean()), "cv5_sd": float(cv.std()),
                     "test_acc": float((clf.predict(xte) == np.asarray(y_test)).mean())}
    out["n_train"], out["n_test"] = len(train), len(test)
    return out


# ---------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    from genesis_rna import load
    from genesis_rna.data import ShardStore
    from genesis_rna.losses import MultiTaskLoss
    from genesis_rna.training import evaluate_pretrain

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory or shipped name")
    parser.add_argument("--store", required=True, help="shard store with family-disjoint splits")
    parser.add_argument("--split", default="test")
    parser.add_argument("--quick", action="store_true", help="small subsets (smoke run)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    n_eval, n_pairs, n_nrc = (300, 60, 600) if args.quick else (5000, 500, 0)
    start = time.perf_counter()
    model, _ = load(args.model)
    max_len = model.config.max_len
    test_store = ShardStore(args.store, split=args.split)
    loader, subset = _loader(test_store, n_eval, max_len)
    results: dict = {"model": args.model, "store": args.store, "split": args.split, "n_records": len(subset)}
    results["model_mlm"] = evaluate_pretrain(model, loader, MultiTaskLoss(), device=torch.device("cpu"))
    results["baselines_mlm"] = kmer_baselines(ShardStore(args.store, split="train"), loader)
    labels = np.concatenate([np.asarray(s.struct) for s in subset])
    labels = labels[labels >= 0]
    results["structure_majority_acc"] = float(np.bincount(labels).max() / len(labels)) if len(labels) else None
    results["pairs"] = pair_f1(model, subset[:n_pairs], max_len)
    if NRC.exists():
        results["nrc"] = nrc_probe(model, n_nrc)
    results["seconds"] = time.perf_counter() - start
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
