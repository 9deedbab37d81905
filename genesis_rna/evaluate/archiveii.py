"""``genesis-rna evaluate archiveii``: secondary-structure benchmarks on ArchiveII, per fold and resumable.

Splits (``shared/data/structure/archiveII_csv``): ``famfold`` (9 folds, each tests one RNA family after training
on the other 8: the honest test of generalisation) and ``kfold`` (5 random folds). Methods:

* ``vienna_mfe``: RNAfold MFE structure (no training; does not depend on families);
* ``vienna_mea``: RNAfold ``--MEA`` (gamma 1) on the partition function;
* ``vienna_bpp``: our MEA decoder on ViennaRNA's base-pair probabilities, threshold tuned on the fold's valid set;
* ``onehot``: the 2D ResNet head on one-hot pair features only (no language model, no Vienna);
* ``genesis_frozen``: the head on frozen encoder features (embeddings, attention maps, pair-head logits);
* ``genesis_hybrid``: frozen encoder features plus the ViennaRNA prior channels;
* ``vienna_head``: the head on one-hot + ViennaRNA prior channels (the hybrid without the language model);
* ``genesis_finetune``: the hybrid with the encoder trained too;
* ``template``: homology baseline (:mod:`genesis_rna.structure.homology`): align to the most similar training sequence and
  copy its pairs, mixed with ViennaRNA's bpp; below an identity cut, ViennaRNA alone. Cut, mixing weight and
  threshold are tuned on the fold's valid set. No language model: it measures how much a split rewards having
  seen a relative's structure;
* ``template_hybrid``: the same transfer mixed into a ``genesis_hybrid`` head trained on the fold instead of
  ViennaRNA's bpp (sequences without a close relative get the language-model hybrid);
* ``fold_model``: a structure model directory given by ``--fold-model``, evaluated as is (no training on the
  fold). The shipped default was trained on Rfam families other than all 34 of ArchiveII's kinds, so it has
  seen none of the nine held-out families: for family-fold this is stricter than training on the other 8.

Scores are exact-pair F1 (per-sequence mean, :func:`genesis_rna.structure.pairs.pair_metrics`) and the +-1 flexible
F1 in its own column; per family and the mean over the fold's test set. Each (split, fold, method) result is a
JSON file under ``OUTPUT/folds``; a rerun skips finished ones, so an interrupted run resumes. ``results.json`` and
``results.md`` summarise everything finished so far. ViennaRNA folds of all 3,864 sequences are cached once
under ``OUTPUT/cache/vienna`` (bpp above 1e-4 stored sparse).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._fileutil import safe_filename
from ..errors import InputError

__all__ = ["load_archiveii", "load_split", "vienna_cache", "run_archiveii", "METHODS", "ANCHORS"]

METHODS = ("vienna_mfe", "vienna_mea", "vienna_bpp", "onehot", "vienna_head", "genesis_frozen", "genesis_hybrid",
           "genesis_finetune", "fold_model", "template", "template_hybrid")
LEARNED = {"onehot": dict(encoder=False, vienna=False), "vienna_head": dict(encoder=False, vienna=True),
           "genesis_frozen": dict(encoder=True, vienna=False), "genesis_hybrid": dict(encoder=True, vienna=True),
           "genesis_finetune": dict(encoder=True, vienna=True, finetune=True)}
#: Zablocki et al. 2025 (frozen embeddings + 2D ResNet), mean F1.
ANCHORS = {"famfold": {"RiNALMo": 0.575, "ERNIE-RNA": 0.571, "RNA-FM": 0.311, "one-hot": 0.209},
           "kfold": {"RiNALMo": 0.872, "ERNIE-RNA": 0.877, "RNA-FM": 0.803, "one-hot": 0.513}}


# ----------------------------------------------------------------------------------------------- data
def family_of(record_id: str) -> str:
    """ArchiveII family from the id prefix (``5s_...``, ``tRNA_...``, ``RNaseP_...``)."""
    return record_id.split("_", 1)[0]


def load_archiveii(directory: str | os.PathLike) -> dict:
    """``{id: PairExample}`` from ``ArchiveII.csv`` (1-based ``base_pairs``), sequences normalised to ACGU(N)."""
    import csv

    from ..structure.pairs import pairs_to_partners
    from ..structure.train import PairExample

    path = Path(directory) / "ArchiveII.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found (ArchiveII CSV directory expected)")
    out = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            seq = row["sequence"].upper().replace("T", "U")
            seq = re.sub(r"[^ACGU]", "N", seq)
            pairs = [(i - 1, j - 1) for i, j in json.loads(row["base_pairs"])]
            out[row["id"]] = PairExample(row["id"], seq, pairs_to_partners(pairs, len(seq)), family=family_of(row["id"]))
    return out


def load_split(directory: str | os.PathLike, split: str) -> dict[str, dict[str, list[str]]]:
    """``{fold: {"train"|"valid"|"test": [ids]}}``; famfold folds are named by the held-out family."""
    import csv

    path = Path(directory) / f"split_{split}.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found (split must be famfold or kfold)")
    folds: dict[str, dict[str, list[str]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            name = row.get("fold_name") or row["fold_number"]
            folds.setdefault(name, {"train": [], "valid": [], "test": []})[row["partition"]].append(row["id"])
    return folds


VIENNA_PARAMS = {"turner2004": "Turner2004", "turner1999": "Turner1999", "andronescu2007": "Andronescu2007",
                 "langdon2018": "Langdon2018"}


def use_vienna_params(name: str) -> None:
    """Load one of ViennaRNA's bundled RNA energy parameter sets for every later fold in this process.

    Turner 2004 (RNAfold's default) comes from optical melting experiments. Andronescu 2007 and Langdon 2018 were
    fitted by their authors to known secondary structures (RNA STRAND-type collections that include tRNAs,
    rRNAs and other families of ArchiveII's kinds), so on ArchiveII they are baselines, not unseen-family tests.
    """
    import RNA

    if name not in VIENNA_PARAMS:
        raise InputError(f"unknown ViennaRNA parameter set {name!r}: choose from {', '.join(VIENNA_PARAMS)}")
    getattr(RNA, f"params_load_RNA_{VIENNA_PARAMS[name]}")()


def vienna_cache(examples: dict, cache_dir: str | os.PathLike, ids: Sequence[str] | None = None,
                 progress: bool = False) -> None:
    """Fold every sequence with ViennaRNA once: ``<id>.npz`` with sparse bpp, MFE and MEA partner arrays."""
    import RNA

    from .._fileutil import atomic_path
    from ..structure.vienna import vienna_partition

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    todo = [i for i in (ids or list(examples)) if not (cache / f"{safe_filename(i)}.npz").is_file()]
    for k, rid in enumerate(todo):
        seq = examples[rid].sequence
        t0 = time.process_time()
        fc, ss, _, bpp = vienna_partition(seq)
        bpp = bpp.astype(np.float32)
        mea_ss, _ = fc.MEA(1.0)
        i, j = np.nonzero(np.triu(bpp, 1) > 1e-4)
        with atomic_path(cache / f"{safe_filename(rid)}.npz", suffix=".npz") as tmp:
            np.savez(tmp, i=i.astype(np.int16), j=j.astype(np.int16), p=bpp[i, j].astype(np.float32),
                     mfe=np.array(RNA.ptable(ss), dtype=np.int16)[1:] - 1,
                     mea=np.array(RNA.ptable(mea_ss), dtype=np.int16)[1:] - 1,
                     cpu_s=np.float64(time.process_time() - t0))
        if progress and k % 100 == 0:
            print(f"vienna {k}/{len(todo)}", file=sys.stderr, flush=True)


def read_vienna(cache_dir: str | os.PathLike, rid: str, length: int) -> dict:
    """Cached ViennaRNA result: dense symmetric ``bpp``, ``mfe_matrix``, ``mfe`` and ``mea`` partner arrays."""
    with np.load(Path(cache_dir) / f"{safe_filename(rid)}.npz") as z:
        bpp = np.zeros((length, length), dtype=np.float32)
        bpp[z["i"], z["j"]] = z["p"]
        bpp += bpp.T
        mfe = z["mfe"].astype(np.int64)
        mea = z["mea"].astype(np.int64)
        cpu = float(z["cpu_s"])
    mat = np.zeros((length, length), dtype=np.float32)
    k = np.flatnonzero(mfe >= 0)
    mat[k, mfe[k]] = 1.0
    return {"bpp": bpp, "mfe_matrix": mat, "mfe": mfe, "mea": mea, "cpu_s": cpu}


# ----------------------------------------------------------------------------------------------- scoring
def score(preds: dict[str, np.ndarray], examples: dict) -> dict:
    """Per-family and overall per-sequence mean exact and flexible F1 (plus precision/recall)."""
    from ..structure.pairs import pair_metrics, pair_metrics_flexible

    rows = []
    for rid, pred in preds.items():
        true = examples[rid].partner
        m = pair_metrics(pred, true)
        m.update(pair_metrics_flexible(pred, true))
        rows.append((examples[rid].family, m))
    def agg(sel):
        return {"n": len(sel), **{k: float(np.mean([m[k] for m in sel])) for k in
                                  ("f1", "precision", "recall", "flex_f1")}}
    fams = sorted({f for f, _ in rows})
    return {"overall": agg([m for _, m in rows]), "families": {f: agg([m for g, m in rows if g == f]) for f in fams}}


def _subset(ids: list[str], cap: int | None, seed: int) -> list[str]:
    if not cap or len(ids) <= cap:
        return list(ids)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ids, size=cap, replace=False).tolist())


def needs_vienna(method: str) -> bool:
    """Whether ``method`` reads ViennaRNA folds: all but the learned heads without the prior (``onehot``,
    ``genesis_frozen``), which can then run without filling the (slow, O(L^3) per sequence) cache."""
    return method not in LEARNED or LEARNED[method]["vienna"]


def _with_priors(examples: dict, ids: Sequence[str], cache: Path, vienna: bool = True) -> list:
    """The examples of ``ids`` with their cached ViennaRNA prior attached (``prior=None`` when not ``vienna``)."""
    from dataclasses import replace

    out = []
    for rid in ids:
        ex = examples[rid]
        if not vienna:
            out.append(replace(ex, prior=None))
            continue
        v = read_vienna(cache, rid, len(ex.sequence))
        out.append(replace(ex, prior=(v["bpp"], v["mfe_matrix"])))
    return out


def _run_vienna(method: str, fold: dict, examples: dict, cache: Path, test_ids: list[str], args) -> dict:
    """Vienna baselines: no training; ``vienna_bpp`` tunes its decoding threshold on (part of) the valid set."""
    from ..structure.decode import decode

    preds, info = {}, {}
    if method in ("vienna_mfe", "vienna_mea"):
        for rid in test_ids:
            preds[rid] = read_vienna(cache, rid, len(examples[rid].sequence))[method.split("_")[1]]
        return {"preds": preds, "info": info}
    from ..structure.pairs import pair_metrics

    valid = _subset(fold["valid"], args.max_valid, args.seed)
    grid = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    f1 = {t: [] for t in grid}
    for rid in valid:
        ex = examples[rid]
        bpp = read_vienna(cache, rid, len(ex.sequence))["bpp"]
        for t in grid:
            f1[t].append(pair_metrics(decode(bpp, ex.sequence, threshold=t), ex.partner)["f1"])
    best = max(grid, key=lambda t: np.mean(f1[t]))
    for rid in test_ids:
        ex = examples[rid]
        preds[rid] = decode(read_vienna(cache, rid, len(ex.sequence))["bpp"], ex.sequence, threshold=best)
    return {"preds": preds, "info": {"threshold": best, "valid_f1": float(np.mean(f1[best])), "n_valid": len(valid)}}


def _run_fold_model(method: str, fold: dict, examples: dict, cache: Path, test_ids: list[str], args) -> dict:
    """A trained structure model directory (``--fold-model``), no training: predict and MEA-decode."""
    import torch

    from ..structure.decode import decode
    from ..structure.model import load_structure_model, predict_proba

    if not args.fold_model:
        raise InputError("method fold_model needs --fold-model DIR (a structure model directory or name)")
    model = load_structure_model(args.fold_model)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    preds = {}
    for ex in _with_priors(examples, test_ids, cache):
        p = predict_proba(model, ex.sequence, ex.prior if model.config.use_vienna else None, dtype=dtype)
        preds[ex.id] = decode(p, ex.sequence, threshold=model.config.threshold)
    return {"preds": preds, "info": {"fold_model": str(args.fold_model), "threshold": model.config.threshold,
                                     "training": model.config.training}}


def _run_learned(method: str, fold: dict, examples: dict, cache: Path, test_ids: list[str], args) -> dict:
    """Train the head on the fold's train partition (early stopping on valid), predict the test ids.

    With ``--valid-from family`` (family-fold only) the head is instead trained as an ensemble whose members each
    hold out one whole training family for early stopping and the threshold (:func:`family_holdout_plan`)."""
    import torch

    from ..structure.decode import decode
    from ..structure.model import predict_proba

    spec = LEARNED[method]
    if getattr(args, "valid_from", "split") == "family":
        return _run_family_ensemble(method, fold, examples, cache, test_ids, args)
    train = _with_priors(examples, _subset(fold["train"], args.max_train, args.seed), cache, spec["vienna"])
    valid = _with_priors(examples, _subset(fold["valid"], args.max_valid, args.seed), cache, spec["vienna"])
    model, info = _train_head(method, train, valid, args, args.seed)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    preds = {}
    t0 = time.perf_counter()
    for ex in _with_priors(examples, test_ids, cache, spec["vienna"]):
        p = predict_proba(model, ex.sequence, ex.prior, dtype=dtype)
        preds[ex.id] = decode(p, ex.sequence, threshold=info["threshold"])
    info["test_seconds"] = time.perf_counter() - t0
    info["n_train"], info["n_valid"] = len(train), len(valid)
    return {"preds": preds, "info": info}


def _train_head(method: str, train: list, valid: list, args, seed: int) -> tuple:
    """Build the ``method``'s structure model and train it; returns ``(model, training info)``."""
    import torch

    from ..structure.model import build_structure_model
    from ..structure.train import train_structure_model

    spec = LEARNED[method]
    torch.manual_seed(seed)
    encoder = args.encoder if spec["encoder"] else None
    model = build_structure_model(encoder, use_vienna=spec["vienna"], finetune=spec.get("finetune", False),
                                  channels=args.channels)
    log = (lambda s: print(f"{method}: {s}", file=sys.stderr, flush=True)) if args.verbose else None
    info = train_structure_model(model, train, valid, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                                 max_train_len=args.max_train_len, seed=seed, log=log, patience=args.patience,
                                 lr=args.lr, thresholds=THRESHOLDS)
    return model, info


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # train_structure_model's default grid


def family_holdout_plan(pool: Sequence[str], members: int, max_train: int | None, max_valid: int | None,
                        seed: int) -> list[dict]:
    """Inner leave-one-family-out plan for a family-fold: ``members`` entries, each holding out one whole family
    of ``pool`` (largest families first) as its validation set and training on (a seeded subset of) the others.

    Why: the split file's valid partition is drawn from the training families, so early stopping and the
    decoding threshold reward fitting families the model has seen, which is the opposite of what a family-fold
    measures. Validating on a family the member did not train on selects for transfer to unseen families."""
    by_family: dict[str, list[str]] = {}
    for rid in pool:
        by_family.setdefault(family_of(rid), []).append(rid)
    if len(by_family) < 2:
        raise InputError("--valid-from family needs training sequences of at least 2 families")
    order = sorted(by_family, key=lambda f: (-len(by_family[f]), f))[:max(1, members)]
    plan = []
    for k, fam in enumerate(order):
        rest = sorted(r for f, ids in by_family.items() if f != fam for r in ids)
        plan.append({"valid_family": fam, "train": _subset(rest, max_train, seed + k),
                     "valid": _subset(sorted(by_family[fam]), max_valid, seed + k)})
    return plan


def _run_family_ensemble(method: str, fold: dict, examples: dict, cache: Path, test_ids: list[str], args) -> dict:
    """Members of :func:`family_holdout_plan`, each early-stopped on its held-out family; the test prediction is
    the members' mean probability, decoded at the threshold with the best members' mean valid F1."""
    import torch

    from ..structure.decode import decode
    from ..structure.model import predict_proba
    from ..structure.train import evaluate_f1

    if args.split != "famfold":
        raise InputError("--valid-from family is for the famfold split (k-folds are not split by family)")
    spec = LEARNED[method]
    plan = family_holdout_plan(fold["train"] + fold["valid"], args.members, args.max_train, args.max_valid,
                               args.seed)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    tests = _with_priors(examples, test_ids, cache, spec["vienna"])
    probs = {ex.id: np.zeros((len(ex.sequence),) * 2, dtype=np.float32) for ex in tests}
    curves, members = [], []
    for k, entry in enumerate(plan):
        if spec["vienna"]:  # the driver cached the split's partitions; the plan draws its own subsets
            vienna_cache(examples, cache, entry["train"] + entry["valid"], progress=args.verbose)
        train = _with_priors(examples, entry["train"], cache, spec["vienna"])
        valid = _with_priors(examples, entry["valid"], cache, spec["vienna"])
        model, info = _train_head(method, train, valid, args, args.seed + k)
        curves.append(evaluate_f1(model, valid, THRESHOLDS))
        for ex in tests:
            probs[ex.id] += predict_proba(model, ex.sequence, ex.prior, dtype=dtype) / len(plan)
        members.append({"valid_family": entry["valid_family"], "n_train": len(train), "n_valid": len(valid),
                        "threshold": info["threshold"], "best_valid_f1": info["best_valid_f1"],
                        "epochs_run": len(info["history"]), "train_seconds": info["train_seconds"]})
    mean_curve = {t: float(np.mean([c[t] for c in curves])) for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=mean_curve.get)
    preds = {ex.id: decode(probs[ex.id], ex.sequence, threshold=threshold) for ex in tests}
    return {"preds": preds, "info": {"valid_from": "family", "threshold": threshold,
                                     "members_valid_f1": mean_curve[threshold], "members": members}}


TEMPLATE_CUTS = (0.5, 0.6, 0.7, 0.8, 0.9, None)  # None: never use the template (ViennaRNA bpp alone)
TEMPLATE_WEIGHTS = (0.5, 0.7, 1.0)
TEMPLATE_THRESHOLDS = (0.3, 0.5)


def _template_decodes(library, ex, base: np.ndarray) -> tuple:
    """One sequence's best-template identity and its decoded structures for every (weight or None, threshold);
    ``base`` is the pair-probability matrix the template is mixed into (ViennaRNA's, or a trained head's)."""
    from ..structure.decode import decode
    from ..structure.homology import mix_with_prior

    transferred, hit = library.predict(ex.sequence)
    out = {(None, t): decode(base, ex.sequence, threshold=t) for t in TEMPLATE_THRESHOLDS}
    for w in TEMPLATE_WEIGHTS:
        mixed = mix_with_prior(transferred, base, w)
        for t in TEMPLATE_THRESHOLDS:
            out[(w, t)] = decode(mixed, ex.sequence, threshold=t)
    return hit, out


def _templated(identity: float, cut: float | None) -> bool:
    return cut is not None and identity >= cut


def _pick(decodes: dict, identity: float, cut: float | None, weight: float, threshold: float) -> np.ndarray:
    return decodes[(weight if _templated(identity, cut) else None, threshold)]


def _base_probabilities(method: str, fold: dict, examples: dict, cache: Path, args):
    """``rid -> pair probabilities`` that templates are mixed into: ViennaRNA's bpp for ``template``; for
    ``template_hybrid`` a ``genesis_hybrid`` head trained on the fold (same caps and valid set as that method),
    so sequences without a close relative get the language-model hybrid instead of ViennaRNA alone."""
    if method == "template":
        return lambda rid: read_vienna(cache, rid, len(examples[rid].sequence))["bpp"], {}
    import torch

    from ..structure.model import predict_proba

    train = _with_priors(examples, _subset(fold["train"], args.max_train, args.seed), cache)
    valid = _with_priors(examples, _subset(fold["valid"], args.max_valid, args.seed), cache)
    model, info = _train_head("genesis_hybrid", train, valid, args, args.seed)
    dtype = torch.bfloat16 if args.bf16 else torch.float32

    def base(rid):
        (ex,) = _with_priors(examples, [rid], cache)
        return predict_proba(model, ex.sequence, ex.prior, dtype=dtype)

    return base, {"head": {k: info[k] for k in ("threshold", "best_valid_f1", "train_seconds")},
                  "n_train": len(train)}


def _run_template(method: str, fold: dict, examples: dict, cache: Path, test_ids: list[str], args) -> dict:
    """Homology transfer from the fold's training structures, mixed with ViennaRNA (``template``) or with a
    trained hybrid head (``template_hybrid``); identity cut, weight and threshold tuned on valid."""
    from ..structure.homology import Template, TemplateLibrary
    from ..structure.pairs import pair_metrics

    base, head_info = _base_probabilities(method, fold, examples, cache, args)
    library = TemplateLibrary([Template(i, examples[i].sequence, examples[i].partner) for i in fold["train"]])
    valid = _subset(fold["valid"], args.max_valid, args.seed)
    scored = []
    for rid in valid:
        hit, decodes = _template_decodes(library, examples[rid], base(rid))
        scored.append((hit.identity, decodes, examples[rid].partner))
    settings = [(c, w, t) for c in TEMPLATE_CUTS for w in TEMPLATE_WEIGHTS for t in TEMPLATE_THRESHOLDS]

    def valid_f1(s):
        return float(np.mean([pair_metrics(_pick(d, ident, *s), true)["f1"] for ident, d, true in scored]))

    best = max(settings, key=valid_f1)  # first of equals: the lowest cut, i.e. the most template use
    preds, hits = {}, {}
    for rid in test_ids:
        hit, decodes = _template_decodes(library, examples[rid], base(rid))
        preds[rid] = _pick(decodes, hit.identity, *best)
        hits[rid] = {"template": hit.template_id, "identity": round(hit.identity, 4)}
    identities = np.array([h["identity"] for h in hits.values()])
    return {"preds": preds, "info": {"identity_cut": best[0], "weight": best[1], "threshold": best[2],
                                     "valid_f1": valid_f1(best), "n_valid": len(valid), **head_info,
                                     "test_fraction_templated": float(np.mean([_templated(x, best[0]) for x in identities])),
                                     "test_identity_median": float(np.median(identities)), "hits": hits}}


# ----------------------------------------------------------------------------------------------- driver
def run_archiveii(args: argparse.Namespace) -> dict:
    """Run every (fold, method) not finished yet; write per-fold JSONs, ``results.json`` and ``results.md``."""
    from .._fileutil import atomic_write

    out = Path(args.output)
    cache = Path(args.cache) if args.cache else out / "cache" / "vienna"
    if args.vienna_params != "turner2004":
        cache = cache / args.vienna_params  # folds under other energies never mix with the default cache
    use_vienna_params(args.vienna_params)
    examples = load_archiveii(args.data)
    folds = load_split(args.data, args.split)
    names = args.folds or list(folds)
    unknown = [f for f in names if f not in folds]
    if unknown:
        raise InputError(f"unknown {args.split} fold(s) {', '.join(unknown)}: choose from {', '.join(folds)}")
    for m in args.methods:
        if m not in METHODS:
            raise InputError(f"unknown method {m!r}: choose from {', '.join(METHODS)}")
    for name in names:
        fold = folds[name]
        test_ids = _subset(fold["test"], args.max_test, args.seed)
        vienna_methods = [m for m in args.methods if needs_vienna(m)]
        if vienna_methods:
            learned_with_prior = set(vienna_methods) & (set(LEARNED) | {"template_hybrid"})
            vienna_cache(examples, cache, test_ids + _subset(fold["valid"], args.max_valid, args.seed)
                         + (_subset(fold["train"], args.max_train, args.seed) if learned_with_prior else []),
                         progress=args.verbose)
        for method in args.methods:
            path = out / "folds" / f"{args.split}_{safe_filename(name)}_{method}.json"
            if path.is_file():
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            runner = (_run_vienna if method.startswith("vienna_") and method not in LEARNED
                      else _run_fold_model if method == "fold_model"
                      else _run_template if method.startswith("template") else _run_learned)
            res = runner(method, fold, examples, cache, test_ids, args)
            rec = {"split": args.split, "fold": name, "method": method, "n_test": len(test_ids),
                   "n_test_total": len(fold["test"]), "wall_s": time.perf_counter() - t0,
                   "cpu_s": time.process_time() - c0, "info": res["info"], "scores": score(res["preds"], examples),
                   "options": {k: getattr(args, k, None) for k in ("max_train", "max_valid", "max_test", "epochs",
                                                            "steps_per_epoch", "max_train_len", "encoder", "seed",
                                                            "fold_model", "bf16", "vienna_params",
                                                            "valid_from", "members")}}
            with atomic_write(path) as fh:
                json.dump(rec, fh, indent=1)
            print(f"{args.split} {name} {method}: F1 {rec['scores']['overall']['f1']:.3f} "
                  f"(n={len(test_ids)}, {rec['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    return summarise(out)


def summarise(out: Path) -> dict:
    """Collect every per-fold JSON under ``out/folds`` into ``results.json`` and ``results.md``."""
    from .._fileutil import atomic_write

    recs = [json.loads(p.read_text()) for p in sorted((out / "folds").glob("*.json"))]
    table: dict = {}
    for r in recs:
        table.setdefault(r["split"], {}).setdefault(r["method"], {})[r["fold"]] = {
            "f1": r["scores"]["overall"]["f1"], "flex_f1": r["scores"]["overall"]["flex_f1"],
            "n_test": r["n_test"], "n_test_total": r["n_test_total"], "wall_s": round(r["wall_s"], 1)}
    for methods in table.values():
        for per in methods.values():
            per["_mean_over_folds"] = {"f1": float(np.mean([v["f1"] for k, v in per.items() if not k.startswith("_")])),
                                       "flex_f1": float(np.mean([v["flex_f1"] for k, v in per.items()
                                                                 if not k.startswith("_")]))}
    families: dict = {}  # per family, pooled over folds (sequence-weighted): the k-fold per-family view
    for r in recs:
        per = families.setdefault(r["split"], {}).setdefault(r["method"], {})
        for fam, v in r["scores"]["families"].items():
            acc = per.setdefault(fam, {"n": 0, "f1": 0.0, "flex_f1": 0.0})
            acc["n"] += v["n"]
            acc["f1"] += v["f1"] * v["n"]
            acc["flex_f1"] += v["flex_f1"] * v["n"]
    for methods in families.values():
        for per in methods.values():
            for acc in per.values():
                acc["f1"] /= max(acc["n"], 1)
                acc["flex_f1"] /= max(acc["n"], 1)
    result = {"table": table, "families": families, "anchors": ANCHORS, "runs": recs}
    with atomic_write(out / "results.json") as fh:
        json.dump(result, fh, indent=1)
    with atomic_write(out / "results.md") as fh:
        fh.write(markdown(table, families))
    return result


def markdown(table: dict, families: dict | None = None) -> str:
    """One table per split: rows = methods, columns = folds (F1 / flexible F1), last column = mean over folds;
    for k-fold also per family (test sequences of all folds pooled)."""
    lines = []
    for split, methods in table.items():
        folds = sorted({f for per in methods.values() for f in per if not f.startswith("_")})
        lines.append(f"### ArchiveII {split}: exact-pair F1 (flexible +-1 F1), per-sequence mean per fold\n")
        lines.append("| method | " + " | ".join(folds) + " | mean over folds |")
        lines.append("|---" * (len(folds) + 2) + "|")
        for m, per in methods.items():
            cells = []
            for f in folds:
                v = per.get(f)
                cells.append("-" if v is None else f"{v['f1']:.3f} ({v['flex_f1']:.3f})"
                             + ("" if v["n_test"] == v["n_test_total"] else f" n={v['n_test']}/{v['n_test_total']}"))
            mean = per["_mean_over_folds"]
            done = sum(1 for f in folds if f in per)
            cells.append(f"{mean['f1']:.3f} ({mean['flex_f1']:.3f})" + ("" if done == len(folds) else f" [{done} folds]"))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if split == "kfold" and families and split in families:
            fams = sorted({f for per in families[split].values() for f in per})
            lines.append(f"\n#### {split} per family (all folds' test sequences pooled; n = sequences)\n")
            lines.append("| method | " + " | ".join(fams) + " |")
            lines.append("|---" * (len(fams) + 1) + "|")
            for m, per in families[split].items():
                lines.append(f"| {m} | " + " | ".join(
                    "-" if f not in per else f"{per[f]['f1']:.3f} (n={per[f]['n']})" for f in fams) + " |")
        anchors = ", ".join(f"{k} {v}" for k, v in ANCHORS.get(split, {}).items())
        lines.append(f"\nAnchors (Zablocki et al. 2025, mean F1): {anchors}\n")
    return "\n".join(lines) + "\n"


def summary_line(result: dict) -> str:
    parts = []
    for split, methods in result["table"].items():
        for m, per in methods.items():
            parts.append(f"{split}/{m} {per['_mean_over_folds']['f1']:.3f}")
    return "mean F1 over folds: " + (", ".join(parts) if parts else "nothing finished yet")


