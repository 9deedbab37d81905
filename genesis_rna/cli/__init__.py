"""``genesis-rna`` command line: parse arguments, call the library, report. No logic of its own.

Errors a user can fix (bad input, missing model, bad option) are printed as one line
``genesis-rna: error: <file>: record '<id>': <problem>`` with exit status 2; nothing else is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from .errors import GenesisRNAError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _progress_enabled(args: argparse.Namespace) -> bool:
    """Progress bars go to stderr, only when it is a terminal and --quiet is not given."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _add_common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model directory or shipped model name (default: the shipped genesis-rna-small)")
    p.add_argument("--random-init", metavar="PRESET", choices=("small", "base", "large"), default=None,
                   help="use a randomly initialised model of this preset instead of trained weights (smoke tests, baselines)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="compute precision; auto = bf16 where the CPU/GPU computes it natively, else fp32")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _load_model(args: argparse.Namespace):
    from . import pretrained

    if args.random_init:
        if args.model:
            raise GenesisRNAError("give either --model or --random-init, not both")
        return pretrained.random_model(args.random_init, seed=args.seed)[0], f"random {args.random_init} (seed {args.seed})"
    name = args.model or pretrained.DEFAULT_MODEL
    return pretrained.load(name)[0], name


# ------------------------------------------------------------------------------------------------ embed
EMBED_EXAMPLES = """examples:
  genesis-rna embed examples/well_known_rnas.fa --output emb.npz
  genesis-rna embed seqs.fa --model runs/quickstart/final --repr-layers -1 0 --include mean per_tok --output emb.h5
  genesis-rna embed seqs.fa --random-init small --output emb_dir/ --toks-per-batch 8192

Output keys: {id}/mean_layer{L} [d], {id}/per_tok_layer{L} [L, d] (exactly one row per nucleotide),
{id}/bos_layer{L} [d]. Sequences longer than the model window are embedded in overlapping windows; each
nucleotide takes its vector from the window where it has the most context on both sides.
"""


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="per-sequence embeddings from a FASTA file",
                       description="Embed every record of a FASTA file (.fa, .fasta, .gz) with a genesis-rna model.",
                       epilog=EMBED_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="FASTA file (multi-line and .gz accepted)")
    p.add_argument("--output", "-o", default=None,
                   help="output .npz, .h5 or directory of .npy (default: <input name>.embeddings.npz)")
    p.add_argument("--format", choices=("npz", "h5", "npy"), default=None, help="override the format implied by --output")
    p.add_argument("--repr-layers", type=int, nargs="+", default=[-1],
                   help="layers to return: 0 = embeddings, -1 = last (default -1)")
    p.add_argument("--include", nargs="+", default=["mean"], choices=("mean", "per_tok", "bos"),
                   help="what to save per record (default mean)")
    p.add_argument("--toks-per-batch", type=int, default=4096, help="token budget of a batch (default 4096)")
    p.add_argument("--window-overlap", type=int, default=None,
                   help="overlap of windows for sequences longer than the model (default a quarter window)")
    _add_common_model_args(p)
    p.set_defaults(func=_run_embed)


def _same_file(output: str, input_path: str) -> bool:
    """True when writing ``output`` would replace ``input_path`` (same path, or a link to it)."""
    if os.path.realpath(output) == os.path.realpath(input_path):
        return True
    try:
        return os.path.samefile(output, input_path)
    except OSError:  # output does not exist yet (or input is missing: reported when it is read)
        return False


def _default_output(input_path: str, suffix: str) -> str:
    """``seqs.v2.fa.gz`` -> ``seqs.v2<suffix>`` in the current directory (only known extensions are dropped)."""
    name = os.path.basename(input_path)
    for ext in (".gz", ".fa", ".fasta", ".fna", ".fas", ".txt"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    return (name or "output") + suffix


def _run_embed(args: argparse.Namespace) -> int:
    from .inference import embed_sequences
    from .io import read_fasta
    from .io.embeddings import EmbeddingWriter

    output = args.output or _default_output(args.input, ".embeddings.npz")
    if _same_file(output, args.input):
        raise GenesisRNAError(f"{output}: output would overwrite the input")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        records = read_fasta(args.input)
    for warning in caught:  # e.g. removed alignment gaps: one line each, not Python's two-line format
        print(f"genesis-rna: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    model, model_name = _load_model(args)
    pairs = [(r.id, r.sequence) for r in records]
    with EmbeddingWriter(output, args.format) as writer:
        for result in embed_sequences(model, pairs, repr_layers=args.repr_layers, include=args.include,
                                      tokens_per_batch=args.toks_per_batch, window_overlap=args.window_overlap,
                                      device=args.device, dtype=args.dtype, progress=_progress_enabled(args)):
            writer.add(result)
    n_nt = sum(len(s) for _, s in pairs)
    print(f"embedded {writer.count} records ({n_nt} nt) with {model_name} in {time.perf_counter() - start:.1f} s "
          f"-> {output} ({writer.format})")
    return 0


# ------------------------------------------------------------------------------------------------ models
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the models shipped in this installation")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from .pretrained import WEIGHTS_DIR, available_models, model_type

    names = available_models()
    for name in names:
        kind = "structure model (fold)" if model_type(WEIGHTS_DIR / name) == "genesis-rna-fold" else "encoder"
        print(f"{name}\t{kind}\t{WEIGHTS_DIR / name}")
    if not names:
        print("no shipped models in this installation yet; train one with `genesis-rna pretrain`")
    return 0


# ------------------------------------------------------------------------------------------------ pretrain
def _add_pretrain(sub) -> None:
    from . import train_pretrain

    p = sub.add_parser("pretrain", help="pretrain a model (masked nucleotides + structure + pairs, optional AST)",
                       description="Pretrain genesis-rna; same as `python -m genesis_rna.train_pretrain`. "
                       "Re-running the same command resumes from the latest checkpoint.",
                       epilog=train_pretrain.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train_pretrain.add_arguments(p)
    p.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from . import train_pretrain

    argv = sys.argv[1:]
    argv = argv[1:] if argv[:1] == ["pretrain"] else argv  # run_info's command already says "genesis-rna pretrain"
    result = train_pretrain.run_from_args(args, argv)
    if int(os.environ.get("RANK", "0")) == 0:
        print(train_pretrain.summary(result))
    return 0


# ------------------------------------------------------------------------------------------------ preprocess
PREPROCESS_EXAMPLES = """examples:
  genesis-rna preprocess ../shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz -o /data/rfam_store
  genesis-rna preprocess seqs.fa.gz structures/ -o /data/store --max-len 1024 --workers 8
"""


def _add_preprocess(sub) -> None:
    from . import preprocess

    p = sub.add_parser("preprocess", help="raw FASTA/Stockholm/CT/BPSEQ/dbn -> sharded pretraining store",
                       description="Normalise, de-duplicate, length-filter, add structures (given or ViennaRNA "
                       "MFE) and write a sharded, memory-mapped store with family-disjoint splits.",
                       epilog=PREPROCESS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    preprocess.add_arguments(p)
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> int:
    from . import preprocess

    print(preprocess.run_from_args(args, sys.argv[1:]).summary())
    return 0


# ------------------------------------------------------------------------------------------------ convert
CONVERT_EXAMPLES = """examples:
  genesis-rna convert rna-fm RNA-FM_pretrained.pth rna-fm/
  genesis-rna embed seqs.fa --model rna-fm/ --include mean per_tok --output emb.npz

The directory holds config.json and model.safetensors. The checkpoint is read with torch.load(weights_only=True):
nothing in it is executed. What maps to what, and the measured agreement with the fm package: docs/rna_fm.md.
"""


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="import a checkpoint of another toolkit (RNA-FM) as a model directory",
                       description="Convert an RNA-FM checkpoint (the rna-fm package's RNA-FM_pretrained.pth) into a "
                       "genesis-rna model directory that every command accepts as --model.",
                       epilog=CONVERT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=("rna-fm",), help="format of the checkpoint (rna-fm)")
    p.add_argument("checkpoint", help="the checkpoint file, e.g. RNA-FM_pretrained.pth")
    p.add_argument("output", help="model directory to write (created if needed)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="precision of the stored weights (default fp32)")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    import torch

    from .convert import convert_rna_fm, summary

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = convert_rna_fm(args.checkpoint, args.output, dtype=dtype)
    print(summary(model, args.checkpoint, args.output))
    return 0


# ------------------------------------------------------------------------------------------------ optimize-mrna
OPTIMIZE_MRNA_EXAMPLES = """examples:
  genesis-rna optimize-mrna --protein MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQKRGIVEQCCTSICSLYQLENYCN --output insulin.fa
  genesis-rna optimize-mrna --cds gene.fa --organism ecoli --lambda 3 -n 5 --output designs.fa --summary designs.csv
  genesis-rna optimize-mrna --protein proteins.fa --utr5 GGGAAAUAAGAGAGAAAAGAAGAGUAAGAAGAAAUAUAAGAGCCACC --utr3 UGAUAA --output designs.fa

objective = MFE(5'UTR+CDS+3'UTR, kcal/mol) - lambda * sum ln w(codon) [- lm-weight * LM pseudo-log-likelihood];
CAI = exp(mean ln w) over codons except Met, Trp, stop (Sharp & Li 1987). lambda 0 = most stable, large = CAI 1.
Output: FASTA of full mRNAs (headers: mfe, mfe_per_nt, cai, gc, cds range) and a TSV summary (.csv by name).
"""


def _add_optimize_mrna(sub) -> None:
    from .mrna import ORGANISMS

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
    _add_common_model_args(p)
    p.set_defaults(func=_run_optimize_mrna)


def _run_optimize_mrna(args: argparse.Namespace) -> int:
    from .mrna import default_summary_path, load_codon_usage, optimize_mrna, read_proteins, write_designs

    start = time.perf_counter()
    proteins = read_proteins(protein=args.protein, cds=args.cds)
    usage = load_codon_usage(args.organism)
    summary = args.summary or default_summary_path(args.output)
    for path in (args.protein, args.cds):
        if path and os.path.exists(path) and os.path.abspath(path) in (os.path.abspath(args.output),
                                                                        os.path.abspath(summary)):
            raise GenesisRNAError(f"{path}: output would overwrite the input")
    model, model_name = _load_model(args) if args.lm_weight > 0 else (None, None)
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


# ------------------------------------------------------------------------------------------------ serve
SERVE_EXAMPLES = """examples:
  genesis-rna serve                                  # shipped model, http://127.0.0.1:8000/
  genesis-rna serve --model runs/quickstart/final --port 8080 --workers 2
  genesis-rna serve --random-init small --max-length 500   # smoke test without trained weights

The web page is at /, the OpenAPI schema at /openapi.json and interactive API docs at /docs. The server
binds to 127.0.0.1 unless --host says otherwise; it has no authentication, so expose it only behind a proxy.
"""


def _add_serve(sub) -> None:
    # the defaults live in genesis_rna.serve.Limits; importing it here would make every command load FastAPI
    p = sub.add_parser("serve", help="REST API and web page over one loaded model (needs the [serve] extra)",
                       epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--workers", type=int, default=1, help="threads running model/folding work (default 1)")
    p.add_argument("--queue", type=int, default=32,
                   help="requests that may wait for a worker; beyond workers+queue the answer is 503 (default 32)")
    p.add_argument("--max-length", type=int, default=None, help="nucleotides per sequence (default 1000)")
    p.add_argument("--max-attention-length", type=int, default=None, help="nucleotides for /attention (default 400)")
    p.add_argument("--max-records", type=int, default=None, help="records per /embed request (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=None, help="request body size limit (default 1000000)")
    p.add_argument("--fold-model", default=None,
                   help="structure model for /fold (default: the shipped one; without it, ViennaRNA pair "
                        "probabilities with MEA decoding; 'vienna' forces that)")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .serve import Limits, create_app, serve

    given = {k: getattr(args, k) for k in ("max_length", "max_attention_length", "max_records", "max_body_bytes")
             if getattr(args, k) is not None}
    for name, value in {**given, "workers": args.workers}.items():
        if value < 1:
            raise GenesisRNAError(f"--{name.replace('_', '-')} must be at least 1")
    if args.queue < 0 or not 0 <= args.port <= 65535:
        raise GenesisRNAError("--queue must be >= 0 and --port in 0..65535")
    limits = replace(Limits(), **given)
    model, name = _load_model(args)
    app = create_app(model, model_name=name, limits=limits, workers=args.workers, queue=args.queue,
                     device=args.device, dtype=args.dtype, fold_model=args.fold_model)
    serve(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
          announce=lambda url: print(f"serving {name} on {url}/ (API docs at {url}/docs; Ctrl-C to stop)", flush=True))
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


def _add_score_mutations(sub) -> None:
    from .mutations import METHODS

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
    _add_common_model_args(p)
    p.set_defaults(func=_run_score_mutations)


def _run_score_mutations(args: argparse.Namespace) -> int:
    from .io import read_fasta
    from .mutations import parse_variant, read_variants, saturation_variants, score_variants, write_scores_csv

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
    output = args.output or _default_output(args.wild_type, ".scores.csv")
    for path in (args.wild_type, args.variants):
        if path and _same_file(output, path):
            raise GenesisRNAError(f"{output}: output would overwrite the input")
    model, model_name = _load_model(args)
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


def _add_design(sub) -> None:
    from .design import OBJECTIVES

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
    _add_common_model_args(p)
    p.set_defaults(func=_run_design)


def _run_design(args: argparse.Namespace) -> int:
    from .design import design, read_targets, write_designs

    start = time.perf_counter()
    targets = read_targets(args.targets) if args.targets else [("target", args.structure)]
    if args.targets and _same_file(args.output, args.targets):
        raise GenesisRNAError(f"{args.output}: output would overwrite the input")
    model, model_name = _load_model(args) if args.lm_weight > 0 else (None, "no LM")
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


# ------------------------------------------------------------------------------------------------ fold
FOLD_EXAMPLES = """examples:
  genesis-rna fold examples/well_known_rnas.fa --output folds/
  genesis-rna fold seqs.fa --output folds/ --format ct dbn --pseudoknots
  genesis-rna fold seqs.fa --model my-fold-model/ --threshold 0.4 --output folds/

Writes per record <id>.npy (L x L float32 symmetric base-pair probabilities), <id>.ct, <id>.bpseq and one
structures.dbn with all records (ids made file-system safe). Decoding: maximum expected accuracy (nested),
canonical + GU pairs, hairpins >= 3 nt. Sequences up to the model window (512 nt) are folded whole, longer
ones (up to 4000 nt) in windows overlapping by half. Without the shipped structure model, ViennaRNA alone.
Details: docs/structure.md.
"""


def _add_fold(sub) -> None:
    p = sub.add_parser("fold", help="secondary structure: base-pair probabilities (.npy) and .ct/.bpseq/.dbn",
                       description="Predict base-pair probabilities and a valid secondary structure for every "
                       "record of a FASTA file.", epilog=FOLD_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="FASTA file (multi-line and .gz accepted)")
    p.add_argument("--output", "-o", default=None, help="output directory (default: <input name>.fold/)")
    p.add_argument("--model", default=None,
                   help="structure model directory or name, or 'vienna' for ViennaRNA alone "
                   "(default: the shipped genesis-rna-fold-small)")
    p.add_argument("--format", nargs="+", default=["npy", "ct", "bpseq", "dbn"], choices=("npy", "ct", "bpseq", "dbn"),
                   help="what to write (default all)")
    p.add_argument("--threshold", type=float, default=None,
                   help="decoding threshold: a pair needs probability above it (default: the model's tuned value)")
    p.add_argument("--allow-noncanonical", action="store_true", help="allow pairs other than AU, GC, GU")
    p.add_argument("--pseudoknots", action="store_true", help="add crossing pairs greedily after the nested decode")
    p.add_argument("--no-vienna", action="store_true", help="never run ViennaRNA (error if the model needs it)")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="model compute precision (default fp32)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_fold)


def _run_fold(args: argparse.Namespace) -> int:
    import torch

    from .fold import run_fold

    output = args.output or _default_output(args.input, ".fold")
    start = time.perf_counter()
    n, name, note = run_fold(args.input, output, model=args.model, formats=args.format, threshold=args.threshold,
                             allow_noncanonical=args.allow_noncanonical, pseudoknots=args.pseudoknots,
                             use_vienna=not args.no_vienna, progress=_progress_enabled(args),
                             dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    if note:
        print(f"genesis-rna: note: {note}", file=sys.stderr)
    print(f"folded {n} records with {name} in {time.perf_counter() - start:.1f} s -> {output}")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub) -> None:
    from . import eval_benchmarks

    p = sub.add_parser("evaluate", help="benchmarks: ArchiveII secondary structure, nRC classification",
                       description="Same as `python -m genesis_rna.eval_benchmarks`. Resumable: finished "
                       "results under OUTPUT are kept. Details: docs/structure.md, docs/finetune.md.")
    eval_benchmarks.add_arguments(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from . import eval_benchmarks

    print(eval_benchmarks.run_benchmark(args))
    return 0


# ------------------------------------------------------------------------------------------------ finetune
def _add_finetune(sub) -> None:
    from . import train_finetune

    p = sub.add_parser("finetune", help="fine-tune on a sequence, per-nucleotide or pair (structure) task",
                       description="Fine-tune genesis-rna (or a one-hot CNN baseline) for classification or "
                       "regression of sequences or nucleotides, or train a structure model for `genesis-rna fold` "
                       "from your structures (--task pair); same as `python -m genesis_rna.train_finetune`. "
                       "See docs/finetune.md.",
                       epilog=train_finetune.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train_finetune.add_arguments(p)
    p.set_defaults(func=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    from . import train_finetune

    print(train_finetune.summary(train_finetune.run_from_args(args), args.output_dir))
    return 0


# ------------------------------------------------------------------------------------------------ predict
PREDICT_EXAMPLES = """examples:
  genesis-rna predict runs/nrc_frozen new.fa --output predictions.csv
  genesis-rna predict runs/openvaccine test.jsonl.gz --output profiles.jsonl

Sequence tasks write CSV (id, prediction, prob_<class> ... or one column per target); per-nucleotide tasks
write JSON Lines (id, sequence, one list per target with one value per nucleotide).
"""


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="apply a model written by `genesis-rna finetune`",
                       description="Predict with a fine-tuned model directory (task.json + weights).",
                       epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="directory written by `genesis-rna finetune`")
    p.add_argument("input", help="FASTA, CSV, TSV or JSONL (.gz accepted); labels not needed")
    p.add_argument("--output", "-o", required=True, help="output .csv (sequence tasks) or .jsonl (per-nucleotide)")
    p.add_argument("--sequence-column", default=None, help="default: the column the model was trained with")
    p.add_argument("--id-column", default=None, help="default: the column the model was trained with")
    p.add_argument("--toks-per-batch", type=int, default=8192, help="token budget of a batch (default 8192)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .predict import predict_file

    if _same_file(args.output, args.input):
        raise GenesisRNAError(f"{args.output}: output would overwrite the input")
    start = time.perf_counter()
    done = predict_file(args.model_dir, args.input, args.output, sequence_column=args.sequence_column,
                        id_column=args.id_column, device=args.device, dtype=args.dtype,
                        tokens_per_batch=args.toks_per_batch, progress=_progress_enabled(args))
    print(f"predicted {done['n']} records ({done['nt']} nt, {done['task']}) with {args.model_dir} in "
          f"{time.perf_counter() - start:.1f} s -> {done['output']}")
    return 0


# ------------------------------------------------------------------------------------------------ main
# In the order `genesis-rna --help` lists them: the everyday commands first, training and tooling after.
SUBCOMMANDS: list[Callable] = [
    _add_embed, _add_fold, _add_score_mutations, _add_design, _add_optimize_mrna,  # inference
    _add_finetune, _add_predict, _add_evaluate,                                     # downstream
    _add_pretrain, _add_preprocess, _add_convert, _add_models, _add_serve,           # training and tools
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="genesis-rna", description="genesis-rna: an RNA foundation-model toolkit.")
    parser.add_argument("--version", action="version", version=f"genesis-rna {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except GenesisRNAError as exc:
        print(f"genesis-rna: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("genesis-rna: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, permissions, a missing file a reader did not catch: one line, no trace
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"genesis-rna: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
