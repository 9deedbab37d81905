"""Independent check of a shard store written by ``genesis-rna preprocess``: reads the .npy arrays with NumPy
only (no genesis_rna code) and compares them with the raw inputs parsed here by plain string handling.

Checks: counts add up; splits are a partition and family-disjoint (from family.npy + split-*.npy) and match the
manifest; every partner array is symmetric, in range, without self pairs, STEM exactly at paired positions;
structure provenance counts; no duplicate sequence stored; and, given the inputs (in the order preprocessed),
the same records, ids, families and structures (Rfam: SS_cons projected here; tRNAscan-SE .ss: parsed here),
plus ``--refold N`` MFE records recomputed with RNA.fold. Used for docs/preprocessing.md::

    python benchmarks/preprocess_verify.py STORE --inputs rfam:Rfam.seed.gz ss:x.ss fasta:y.fa.gz \\
        --family-of trna_gtrnadb/=RF00005 --refold 300
"""
import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

INV = {4: "A", 5: "C", 6: "G", 7: "U", 8: "N"}
IUPAC = str.maketrans({c: "N" for c in "RYKMSWBDHV"})
CANON = {("G", "C"), ("C", "G"), ("A", "U"), ("U", "A"), ("G", "U"), ("U", "G")}


def norm(s):
    return s.upper().replace("T", "U").translate(IUPAC)


def wuss_pairs(ss):
    """column pairs of a WUSS SS_cons: <> () [] {} and Aa..Zz pseudoknot letters; everything else unpaired."""
    stacks, pairs = {}, {}
    openers = {"<": ">", "(": ")", "[": "]", "{": "}"}
    closers = {v: k for k, v in openers.items()}
    for i, c in enumerate(ss):
        if c in openers or (c.isalpha() and c.isupper()):
            stacks.setdefault(c, []).append(i)
        elif c in closers or (c.isalpha() and c.islower()):
            key = closers.get(c, c.upper())
            j = stacks[key].pop()
            pairs[i], pairs[j] = j, i
    assert not any(stacks.values()), "unbalanced SS_cons"
    return pairs


def rfam_records(path):
    """(name, seq, partner list, family) per sequence, file order, structure projected from SS_cons."""
    fam, rows, ss = None, [], None
    with gzip.open(path, "rt", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("#=GF AC"):
                fam = line.split()[2]
            elif line.startswith("#=GC SS_cons "):  # not SS_cons2 (5 families: an alternative layer)
                ss = line.split()[2]
            elif line.startswith("//"):
                pairs = wuss_pairs(ss)
                for name, aln in rows:
                    keep = [i for i, c in enumerate(aln) if c not in "-.~"]
                    newpos = {c: k for k, c in enumerate(keep)}
                    seq = norm("".join(aln[i] for i in keep))
                    part = [newpos.get(pairs.get(c, -1), -1) for c in keep]
                    yield name, seq, part, fam
                fam, rows, ss = None, [], None
            elif line.strip() and not line.startswith("#"):
                name, aln = line.split()
                rows.append((name, aln))


def fasta_records(path):
    op = gzip.open if str(path).endswith(".gz") else open
    name, seq = None, []
    with op(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                if name is not None:
                    yield name, norm("".join(seq).replace("-", "").replace(".", "")), None, None
                name, seq = line[1:].split()[0], []
            else:
                seq.append(line.strip())
    if name is not None:
        yield name, norm("".join(seq)), None, None


def ss_records(path):
    name, seq = None, None
    for line in open(path):
        if "Length:" in line and "bp" in line:
            name = line.split()[0]
        elif line.startswith("Seq:"):
            seq = line[4:].strip()
        elif line.startswith("Str:"):
            st = line[4:].strip()
            part, stack = [-1] * len(st), []
            for i, c in enumerate(st):
                if c == ">":
                    stack.append(i)
                elif c == "<":
                    j = stack.pop()
                    part[i], part[j] = j, i
            yield name, norm(seq), part, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--inputs", nargs="*", default=[], help="KIND:PATH with KIND rfam|fasta|ss, in run order")
    ap.add_argument("--family-of", nargs="*", default=[], help="PATH=FAMILY given with --input-family")
    ap.add_argument("--refold", type=int, default=0, help="refold this many MFE records with RNA.fold")
    a = ap.parse_args()
    root = Path(a.store)
    m = json.loads((root / "manifest.json").read_text())
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)
            print("FAIL:", msg)

    # ---- load all arrays (NumPy only)
    cols = {k: [] for k in ("tokens", "struct", "partner", "offsets", "family", "source")}
    ids = []
    base_nt = 0
    for sh in m["shards"]:
        for k in cols:
            arr = np.load(root / f"{sh['name']}.{k}.npy")
            if k == "offsets":
                check(arr[0] == 0 and (np.diff(arr) >= 0).all(), f"{sh['name']} offsets not monotonic")
                check(len(arr) == sh["n_records"] + 1, f"{sh['name']} offsets length")
                arr = arr[:-1] + base_nt  # global start of each record
            cols[k].append(arr)
        n_nt = len(cols["tokens"][-1])
        check(n_nt == sh["n_nucleotides"], f"{sh['name']} n_nucleotides")
        base_nt += n_nt
        ids += (root / f"{sh['name']}.ids.txt").read_bytes().decode("utf-8").split("\n")[:-1]
    tok = np.concatenate(cols["tokens"])
    struct = np.concatenate(cols["struct"])
    partner = np.concatenate(cols["partner"])
    starts = np.concatenate(cols["offsets"])
    ends = np.append(starts[1:], len(tok))
    family = np.concatenate(cols["family"])
    source = np.concatenate(cols["source"])
    n = len(starts)
    check(n == m["n_records"] == len(ids) == len(family) == len(source), "record counts disagree")
    c = m["counts"]
    check(c["n_read"] == c["n_kept"] + c["n_duplicates"] + c["n_too_short"] + c["n_too_long"] + c["n_invalid"],
          "counts do not add up")
    check(c["n_kept"] == n, "n_kept != records")

    # ---- splits: a partition of all records, family-disjoint, matching the manifest's family lists
    split_idx = {s: np.load(root / f"split-{s}.npy") for s in ("train", "validation", "test")}
    allidx = np.concatenate(list(split_idx.values()))
    check(len(allidx) == n and (np.sort(allidx) == np.arange(n)).all(), "splits are not a partition")
    fam_ids = [f["id"] for f in m["families"]]
    fam_sets = {}
    for s, idx in split_idx.items():
        f = family[idx]
        fam_sets[s] = {fam_ids[k] for k in np.unique(f[f >= 0])}
        check(fam_sets[s] == set(m["splits"][s]["families"]), f"{s}: families differ from manifest")
    for a_, b_ in (("train", "validation"), ("train", "test"), ("validation", "test")):
        inter = fam_sets[a_] & fam_sets[b_]
        check(not inter, f"family in {a_} and {b_}: {sorted(inter)[:5]}")
    print("splits:", {s: (len(i), len(fam_sets[s]), round(len(i) / n, 4)) for s, i in split_idx.items()},
          "no-family records:", int((family < 0).sum()))

    # ---- per-record structure validity, provenance, uniqueness
    srcs = np.bincount(source, minlength=3)
    check(dict(zip(("input", "vienna_mfe", "none"), srcs.tolist(), strict=True)) == m["structure_source"],
          "provenance counts")
    seqs = []
    canon = np.zeros((3, 2), dtype=np.int64)  # per source: pairs, canonical pairs
    for r in range(n):
        s, e = starts[r], ends[r]
        L = e - s
        p = partner[s:e]
        seq = "".join(INV[int(t)] for t in tok[s:e])
        seqs.append(seq)
        if source[r] == 2:
            if not ((p == -2).all() and (struct[s:e] == -100).all()):
                check(False, f"record {r}: no-structure record has structure")
            continue
        ok = ((p >= -1) & (p < L)).all()
        paired = np.flatnonzero(p >= 0)
        ok = ok and (p[p[paired]] == paired).all() and (p[paired] != paired).all()
        ok = ok and ((struct[s:e] == 1) == (p >= 0)).all() and (struct[s:e] >= 0).all() and (struct[s:e] <= 4).all()
        if not ok:
            check(False, f"record {r} ({ids[r]}): invalid partner/struct")
        i = paired[paired < p[paired]]
        canon[source[r], 0] += len(i)
        canon[source[r], 1] += sum((seq[a], seq[b]) in CANON for a, b in zip(i, p[i], strict=True))
    check(len(set(seqs)) == n, f"duplicate sequences stored: {n - len(set(seqs))}")
    for k, name in enumerate(("input", "vienna_mfe")):
        if canon[k, 0]:
            print(f"pairs from {name}: {canon[k, 0]:,}, canonical (GC/AU/GU) {canon[k, 1] / canon[k, 0]:.4f}")
    lengths = ends - starts
    print(f"records {n:,}, nt {len(tok):,}, length min/median/max {lengths.min()}/{int(np.median(lengths))}/"
          f"{lengths.max()}, families {len(fam_ids)}")

    # ---- independent reference from the raw inputs
    if a.inputs:
        fam_of = {}
        for spec in a.family_of:
            pth, fam = spec.rsplit("=", 1)
            fam_of[pth] = fam
        expected, seen, n_read = [], set(), 0
        for spec in a.inputs:
            kind, pth = spec.split(":", 1)
            it = {"rfam": rfam_records, "fasta": fasta_records, "ss": ss_records}[kind](pth)
            given_fam = next((f for p_, f in fam_of.items() if pth.startswith(p_)), None)
            for name, seq, part, fam in it:
                n_read += 1
                if len(seq) < m["options"]["min_len"] or seq in seen:
                    continue
                seen.add(seq)
                expected.append((name, seq, part, fam or given_fam))
        check(n_read == c["n_read"], f"records read: manifest {c['n_read']} vs here {n_read}")
        check(len(expected) == n, f"kept: store {n} vs expected {len(expected)}")
        bad_seq = bad_id = bad_part = bad_fam = 0
        for r, (name, seq, part, fam) in enumerate(expected[:n]):
            bad_seq += seqs[r] != seq
            bad_id += ids[r].split()[0] != name
            if part is not None:
                bad_part += partner[starts[r]:ends[r]].tolist() != part
            got_fam = fam_ids[family[r]] if family[r] >= 0 else None
            bad_fam += got_fam != fam
        print(f"vs raw inputs: {len(expected):,} expected records; mismatches: sequence {bad_seq}, id {bad_id}, "
              f"given structure {bad_part}, family {bad_fam}")
        check(bad_seq == bad_id == bad_part == bad_fam == 0, "store differs from raw inputs")
    if a.refold:
        import RNA

        mfe = np.flatnonzero(source == 1)
        pick = np.random.default_rng(0).choice(mfe, size=min(a.refold, len(mfe)), replace=False)
        bad = 0
        for r in pick:
            db, _ = RNA.fold(seqs[r])
            stack, ref = [], [-1] * len(db)
            for i, ch in enumerate(db):
                if ch == "(":
                    stack.append(i)
                elif ch == ")":
                    j = stack.pop()
                    ref[i], ref[j] = j, i
            bad += partner[starts[r]:ends[r]].tolist() != ref
        print(f"refolded {len(pick)} MFE records with RNA.fold: {bad} differ")
        check(bad == 0, "MFE structures differ from RNA.fold")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
