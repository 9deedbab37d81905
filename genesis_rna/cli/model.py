"""``genesis-rna embed``, ``models`` and ``convert``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from ..errors import GenesisRNAError
from ._common import add_model_args, default_output, load_model, progress_enabled, same_file

# ------------------------------------------------------------------------------------------------ embed
EMBED_EXAMPLES = """examples:
  genesis-rna embed examples/well_known_rnas.fa --output emb.npz
  genesis-rna embed seqs.fa --model runs/quickstart/final --repr-layers -1 0 --include mean per_tok --output emb.h5
  genesis-rna embed seqs.fa --random-init small --output emb_dir/ --toks-per-batch 8192

Output keys: {id}/mean_layer{L} [d], {id}/per_tok_layer{L} [L, d] (exactly one row per nucleotide),
{id}/bos_layer{L} [d]. Sequences longer than the model window are embedded in overlapping windows; each
nucleotide takes its vector from the window where it has the most context on both sides.
"""


def add_embed(sub) -> None:
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
    add_model_args(p)
    p.set_defaults(func=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:
    from ..io import read_fasta
    from ..io.embeddings import EmbeddingWriter
    from ..model.embed import embed_sequences

    output = args.output or default_output(args.input, ".embeddings.npz")
    if same_file(output, args.input):
        raise GenesisRNAError(f"{output}: output would overwrite the input")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        records = read_fasta(args.input)
    for warning in caught:  # e.g. removed alignment gaps: one line each, not Python's two-line format
        print(f"genesis-rna: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    model, model_name = load_model(args)
    pairs = [(r.id, r.sequence) for r in records]
    with EmbeddingWriter(output, args.format) as writer:
        for result in embed_sequences(model, pairs, repr_layers=args.repr_layers, include=args.include,
                                      tokens_per_batch=args.toks_per_batch, window_overlap=args.window_overlap,
                                      device=args.device, dtype=args.dtype, progress=progress_enabled(args)):
            writer.add(result)
    n_nt = sum(len(s) for _, s in pairs)
    print(f"embedded {writer.count} records ({n_nt} nt) with {model_name} in {time.perf_counter() - start:.1f} s "
          f"-> {output} ({writer.format})")
    return 0


# ------------------------------------------------------------------------------------------------ models
def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the models shipped in this installation")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from ..model.registry import WEIGHTS_DIR, available_models, is_structure_model_dir

    names = available_models()
    for name in names:
        kind = "structure model (fold)" if is_structure_model_dir(WEIGHTS_DIR / name) else "encoder"
        print(f"{name}\t{kind}\t{WEIGHTS_DIR / name}")
    if not names:
        print("no shipped models in this installation yet; train one with `genesis-rna pretrain`")
    return 0


# ------------------------------------------------------------------------------------------------ convert
CONVERT_EXAMPLES = """examples:
  genesis-rna convert rna-fm RNA-FM_pretrained.pth rna-fm/
  genesis-rna embed seqs.fa --model rna-fm/ --include mean per_tok --output emb.npz

The directory holds config.json and model.safetensors. The checkpoint is read with torch.load(weights_only=True):
nothing in it is executed. What maps to what, and the measured agreement with the fm package: docs/rna_fm.md.
"""


def add_convert(sub) -> None:
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

    from ..model.rna_fm import convert_rna_fm, summary

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = convert_rna_fm(args.checkpoint, args.output, dtype=dtype)
    print(summary(model, args.checkpoint, args.output))
    return 0
