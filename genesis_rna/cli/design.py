"""``genesis-rna optimize-mrna``, ``score-mutations`` and ``design``."""

from __future__ import annotations

import argparse
import os
import time

from ..errors import GenesisRNAError
from ._common import add_model_args, default_output, load_model, same_file

# ------------------------------------------------------------------------------------------------ optimize-mrna
OPTIMIZE_MRNA_EXAMPLES = """examples:
  genesis-rna optimize-mrna --protein MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQKRGIVEQCCTSICSLYQLENYCN --output insulin.fa
  genesis-rna optimize-mrna --cds gene.fa --organism ecoli --lambda 3 -n 5 --output designs.fa --summary designs.csv
  genesis-rna optimize-mrna --protein proteins.fa --utr5 GGGAAAUAAGAGAGAAAAGAAGAGUAAGAAGAAAUAUAAGAGCCACC --utr3 UGAUAA --output designs.fa

objective = MFE(5'UTR+CDS+3'UTR, kcal/mol) - lambda * sum ln w(codon) [- lm-weight * LM pseudo-log-likelihood];
CAI = exp(mean ln w) over codons except Met, Trp, stop (Sharp & Li 1987). lambda 0 = most stable, large = CAI 1.
Output: FASTA of full mRNAs (headers: mfe, mfe_per_nt, cai, gc, cds range) and a TSV summary (.csv by name).
"""


def add_optimize_mrna(sub) -> None:
    from ..design.mrna import ORGANISMS

    p = sub.add_parser("optimize-mrna", help="codon-optimise an mRNA: folding stability (MFE) vs CAI",
                       description="Choose synonymous codons that trade ViennaRNA MFE against codon adaptation.",
                       epilog=OPTIMIZE_MRNA_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--protein", help="protein sequence (one-letter) or a protein FASTA file")
    what.add_argument("--cds", help="FASTA file of coding sequences (DNA or RNA; a final stop codon is allowed)")
    p.add_argument("--organism", default="human",
                   help=f"codon-usage table: {', '.join(ORGANISMS)} (shipped, Kazusa) or a TSV file (default human)")
    p.add_argument("--utr5", default="", help="5' UTR sequence to include when folding (default none)")
    p.add_argument("--utr3", default="", help="3' UTR sequence to include when folding (default none)")
    p.add_argument("--lambda", dest="lam", type=float, default=1.0,
                   help="weight of -sum ln w (CAI) against MFE in kcal/mol per nat (default 1)")
    p.add_argument("--lm-weight", type=float, default=0.0,
                   help="weight of the LM pseudo-log-likelihood (nats) used to rank candidates (default 0 = off)")
    p.add_argument("-n", "--num-designs", type=int, default=1, help="designs per protein (default 1)")
    p.add_argument("--steps", type=int, default=None, help="annealing steps per design (default 4 per codon)")
    p.add_argument("--window", type=int, default=60, help="nt of context each side when scoring a codon (default 60)")
    p.add_argument("--no-stop", action="store_true", help="do not append a stop codon")
    p.add_argument("--output", "-o", required=True, help="output FASTA of the designed mRNAs")
    p.add_argument("--summary", default=None, help="summary table (.tsv, or .csv; default <output>.tsv)")
    add_model_args(p)
    p.set_defaults(func=_run_optimize_mrna)


def _run_optimize_mrna(args: argparse.Namespace) -> int:
    from ..design.mrna import (
        default_summary_path,
        load_codon_usage,
        optimize_mrna,
        read_proteins,
        write_designs,
    )

    start = time.perf_counter()
    proteins = read_proteins(protein=args.protein, cds=args.cds)
    usage = load_codon_usage(args.organism)
    summary = args.summary or default_summary_path(args.output)
    for path in (args.protein, args.cds):
        if path and os.path.exists(path) and os.path.abspath(path) in (os.path.abspath(args.output),
                                                                        os.path.abspath(summary)):
            raise GenesisRNAError(f"{path}: output would overwrite the input")
    model, model_name = load_model(args) if args.lm_weight > 0 else (None, None)
    designs = []
    for rid, protein in proteins:
        designs += optimize_mrna(protein, usage, utr5=args.utr5, utr3=args.utr3, lam=args.lam, n=args.num_designs,
                                 steps=args.steps, window=args.window, stop=not args.no_stop, seed=args.seed,
                                 record=rid, model=model, lm_weight=args.lm_weight)
    write_designs(designs, args.output, summary, lam=args.lam, organism=usage.name)
    best = designs[0]
    lm = f", LM {model_name}" if model_name else ""
    print(f"designed {len(designs)} mRNA(s) for {len(proteins)} protein(s) in {time.perf_counter() - start:.1f} s"
          f"{lm}; {best.id}: MFE/nt {best.mfe_per_nt:.3f}, CAI {best.cai:.3f}, GC {best.gc:.3f} "
          f"-> {args.output}, {summary}")
    return 0


# ------------------------------------------------------------------------------------------------ score-mutations
SCORE_MUTATIONS_EXAMPLES = """examples:
  genesis-rna score-mutations wt.fa variants.txt --output scores.csv       # one variant per line: A23G or A23G:C40U
  genesis-rna score-mutations wt.fa mutants.fa --output scores.csv         # full-length mutant sequences
  genesis-rna score-mutations wt.fa --scan --output scan.csv               # every single substitution
  genesis-rna score-mutations wt.fa 'A23G C40U:G41A' --method wt-marginal --output scores.csv

score = sum over mutated positions of log p(mutant base) - log p(wild-type base), with each position masked in
the wild type (masked-marginal, ESM-1v) or read from one unmasked forward (wt-marginal). Higher = more
wild-type-like. Positions are 1-based; each variant is checked against the wild type.
Output CSV: id,variant,n_mutations,score,method,sequence.
"""


def add_score_mutations(sub) -> None:
    from ..design.variants import METHODS

    p = sub.add_parser("score-mutations", help="zero-shot mutation-effect scores (masked-marginal LLR)",
                       description="Score substitutions of a wild-type RNA with the masked-language-model head.",
                       epilog=SCORE_MUTATIONS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wild_type", help="FASTA file holding the wild type (one record)")
    p.add_argument("variants", nargs="?", default=None,
                   help="variant file (one per line, CSV with a 'mutant' or 'sequence' column, or FASTA of "
                   "full sequences), or variants typed inline separated by spaces ('A23G A23G:C40U')")
    p.add_argument("--scan", action="store_true", help="score every single substitution (saturation scan)")
    p.add_argument("--method", choices=METHODS, default="masked-marginal",
                   help="masked-marginal (default: one masked forward per mutated position, batched) or "
                   "wt-marginal (one unmasked forward)")
    p.add_argument("--output", "-o", default=None, help="output CSV (default: <wild type name>.scores.csv)")
    p.add_argument("--toks-per-batch", type=int, default=16384, help="token budget of a batch (default 16384)")
    add_model_args(p)
    p.set_defaults(func=_run_score_mutations)


def _run_score_mutations(args: argparse.Namespace) -> int:
    from ..design.mutations import score_variants, write_scores_csv
    from ..design.variants import parse_variant, read_variants, saturation_variants
    from ..io import read_fasta

    start = time.perf_counter()
    records = read_fasta(args.wild_type)
    if len(records) != 1:
        raise GenesisRNAError(f"{args.wild_type}: expected one wild-type record, found {len(records)}")
    wt = records[0].sequence
    if args.scan == (args.variants is not None):
        raise GenesisRNAError("give a variant file (or inline variants) or --scan, not both or neither")
    if args.scan:
        variants = [(str(v[0]), v) for v in saturation_variants(wt)]
    elif os.path.exists(args.variants):
        variants = read_variants(args.variants, wt)
    elif any(c in args.variants for c in "./\\"):  # meant as a file name, not inline variants
        raise GenesisRNAError(f"{args.variants}: no such variant file")
    else:
        variants = [(spec, parse_variant(spec, wt)) for spec in args.variants.split()]
        variants = [(":".join(str(s) for s in subs), subs) for _, subs in variants]
    output = args.output or default_output(args.wild_type, ".scores.csv")
    for path in (args.wild_type, args.variants):
        if path and same_file(output, path):
            raise GenesisRNAError(f"{output}: output would overwrite the input")
    model, model_name = load_model(args)
    scores = score_variants(model, wt, variants, method=args.method, tokens_per_batch=args.toks_per_batch,
                            device=args.device, dtype=args.dtype)
    write_scores_csv(scores, output, method=args.method)
    print(f"scored {len(scores)} variants of {records[0].id} ({len(wt)} nt, {args.method}) with {model_name} "
          f"in {time.perf_counter() - start:.1f} s -> {output}")
    return 0


# ------------------------------------------------------------------------------------------------ design
DESIGN_EXAMPLES = """examples:
  genesis-rna design --structure '((((....))))' -n 10 --output designs.fa
  genesis-rna design --targets targets.txt -n 5 --time-limit 30 --output designs.csv
  genesis-rna design --structure '((((((...))))))....' --lm-weight 0 --output designs.fa   # no LM proposals

targets.txt: one dot-bracket per line ('id structure' or '>id' lines allowed). Output: FASTA whose headers hold
target, mfe_structure, mfe, solved, ensemble_defect, gc_content, pseudo_log_likelihood, iterations, time_s
(a .csv name writes the same as CSV). --seed seeds both the designs and --random-init.
"""


def add_design(sub) -> None:
    from ..design.inverse import OBJECTIVES

    p = sub.add_parser("design", help="design sequences that fold (ViennaRNA MFE) into a target structure",
                       description="Inverse folding with LM-proposed mutations and ViennaRNA ensemble-defect annealing.",
                       epilog=DESIGN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--structure", help="target dot-bracket structure (nested: '.', '(' and ')')")
    what.add_argument("--targets", help="file of target structures, one per line")
    p.add_argument("-n", "--num-designs", type=int, default=10, help="designs per target (default 10)")
    p.add_argument("--max-iter", type=int, default=2000, help="annealing steps per design (default 2000)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per design (default 60)")
    p.add_argument("--objective", choices=OBJECTIVES, default="auto",
                   help="defect (ensemble defect), mfe (MFE distance + energy gap) or auto (defect up to 150 nt)")
    p.add_argument("--lm-weight", type=float, default=1.0,
                   help="exponent of the LM's masked marginals in the proposal (0 = no LM; default 1)")
    p.add_argument("--output", "-o", default="designs.fa", help="output FASTA, or .csv (default designs.fa)")
    add_model_args(p)
    p.set_defaults(func=_run_design)


def _run_design(args: argparse.Namespace) -> int:
    from ..design.inverse import design, read_targets, write_designs

    start = time.perf_counter()
    targets = read_targets(args.targets) if args.targets else [("target", args.structure)]
    if args.targets and same_file(args.output, args.targets):
        raise GenesisRNAError(f"{args.output}: output would overwrite the input")
    model, model_name = load_model(args) if args.lm_weight > 0 else (None, "no LM")
    designs = []
    for rid, structure in targets:
        designs += design(structure, args.num_designs, model=model, seed=args.seed, target_id=rid,
                          max_iter=args.max_iter, time_limit=args.time_limit, objective=args.objective,
                          lm_weight=args.lm_weight, device=args.device, dtype=args.dtype)
    write_designs(designs, args.output)
    solved = sum(d.solved for d in designs)
    print(f"designed {len(designs)} sequences for {len(targets)} target(s), {solved} fold into their target, with "
          f"{model_name} in {time.perf_counter() - start:.1f} s -> {args.output}")
    return 0
