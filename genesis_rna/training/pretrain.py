"""Pretraining entry point: ``python -m genesis_rna.train_pretrain`` = ``genesis-rna pretrain``.

Every :class:`~genesis_rna.config.TrainingConfig` field is a flag of the same name (``--model_size``,
``--batch_size``, ``--num_epochs``, ``--learning_rate``, ``--use_ast``, ``--ast_target_activation``,
``--output_dir``, ``--data_path``, ``--use_dummy_data``, ...). Precedence: built-in defaults, then ``--config
FILE.yaml``, then flags given on the command line.

``--data_path`` is a shard store written by ``genesis-rna preprocess``, or raw files (FASTA, Stockholm, CT,
BPSEQ, dot-bracket, or a directory of them) that are preprocessed once into ``OUTPUT_DIR/data`` (structures
from the input, else ViennaRNA MFE). Run the same command again after an interruption and it resumes from the
latest checkpoint in ``--output_dir`` (``--no_resume`` starts over).

Distributed: ``torchrun --nproc_per_node N -m genesis_rna.train_pretrain ...`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainingConfig
from .errors import ConfigError, GenesisRNAError

EXAMPLES = """examples:
  genesis-rna pretrain --use_dummy_data --max_steps 50 --output_dir /tmp/run_dummy
  genesis-rna pretrain --data_path examples/well_known_rnas.fa --use_ast --max_steps 30 --output_dir runs/quickstart
  genesis-rna preprocess ../shared/data/pretrain/rfam14.2_seed/Rfam.seed.gz -o /data/rfam_store
  genesis-rna pretrain --config experiments/config_pretrain_small.yaml --data_path /data/rfam_store \\
      --output_dir /runs/small --use_ast --ast_target_activation 0.4
  torchrun --nproc_per_node 2 -m genesis_rna.train_pretrain --data_path /data/rfam_store --max_steps 1000

Run folder: config.yaml, metrics.jsonl, checkpoints/ (resume), best/ and final/ (model directories usable with
`genesis-rna embed --model`), training_curves.png. Keep run folders outside the repository.
"""

_HELP = {
    "model_size": "architecture preset: small | base | large",
    "batch_size": "sequences per batch (when tokens_per_batch is 0)",
    "tokens_per_batch": "token budget per batch; > 0 switches to length-bucketed token-budget batches",
    "max_steps": "optimiser steps; > 0 overrides num_epochs",
    "use_ast": "Adaptive Sparse Training: only selected samples enter the backward pass",
    "ast_target_activation": "fraction of samples that learn (AST)",
    "ast_strategy": "AST selection: random (default, measured best; no scoring forward) | random_scored | loss | entropy | infobatch | sundew | tokens (see docs/ast_benchmark.md)",
    "ast_reference": "rank AST scores within the batch (batch) or against recent scores (window)",
    "precision": "auto (bf16 where native) | fp32 | bf16 | fp16 (CUDA only)",
    "data_path": "shard store (genesis-rna preprocess) or raw FASTA/Stockholm/CT/BPSEQ/dbn file or directory",
    "use_dummy_data": "synthetic hairpin RNAs (a smoke run needing no data)",
    "flops_every": "measure executed FLOPs (and a dense reference) every N steps; 0 = never",
    "model_overrides": "GenesisRNAConfig fields that differ from the preset, e.g. pair_bias=true,pair_conv_layers=3",
    "output_dir": "run folder (checkpoints, metrics, final model); keep it outside the repository",
}


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One flag per TrainingConfig field (default ``None`` = not given), plus run options."""
    parser.add_argument("--config", default=None, help="YAML file with TrainingConfig fields")
    for f in dataclasses.fields(TrainingConfig):
        name = f"--{f.name}"
        help_text = _HELP.get(f.name, "") + f" (default {f.default!r})"
        if f.type == "bool":
            parser.add_argument(name, nargs="?", const=True, default=None, type=_bool, metavar="BOOL",
                                help=help_text)
        else:
            parser.add_argument(name, type={"int": int, "float": float}.get(f.type, str), default=None,
                                help=help_text)
    parser.add_argument("--no_resume", action="store_true", help="start over even if checkpoints exist")
    parser.add_argument("--preprocess_workers", type=int, default=None,
                        help="processes for ViennaRNA folding when --data_path is raw files (default all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """Defaults < ``--config`` YAML < flags given on the command line."""
    cfg = TrainingConfig.load_yaml(args.config) if args.config else TrainingConfig()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)
             if getattr(args, f.name, None) is not None}
    return TrainingConfig.from_dict({**cfg.to_dict(), **given}, source="command line")


# ------------------------------------------------------------------------------------------------------ data

def _is_store(path: Path) -> bool:
    from .preprocess import MANIFEST

    return path.is_dir() and (path / MANIFEST).is_file()


def prepare_store(cfg: TrainingConfig, *, workers: int | None = None, progress: bool = True) -> Path:
    """The shard store to train on: ``data_path`` itself, or raw files preprocessed into ``OUTPUT_DIR/data``."""
    from .preprocess import preprocess

    path = Path(cfg.data_path)
    if _is_store(path):
        return path
    if not path.exists():
        raise ConfigError(f"--data_path {cfg.data_path}: no such file or directory")
    store = Path(cfg.output_dir) / "data"
    if _is_store(store):
        return store
    report = preprocess([path], store, workers=workers, seed=cfg.seed, progress=progress,
                        command=f"genesis-rna pretrain --data_path {shlex.quote(os.fspath(path))}")
    print(f"preprocessed {report.summary()}", file=sys.stderr)
    return store


def unigram_entropy(store: Any, max_records: int = 20000) -> float:
    """Entropy (nats) of the nucleotide frequencies of a store's records: the loss of a model that knows
    nothing but base composition, the bar a masked-nucleotide model must clear to have learned anything."""
    counts = np.zeros(16, dtype=np.int64)
    for i in range(min(len(store), max_records)):
        counts += np.bincount(np.asarray(store[i].tokens, dtype=np.int64), minlength=16)[:16]
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def build_loaders(cfg: TrainingConfig, store_path: Path | None):
    """Train loader (this rank's batches) and validation loader (rank 0, whole split) or ``None``."""
    from .data import open_store, pretrain_dataloader, resolve_family_list

    if cfg.use_dummy_data:
        return pretrain_dataloader(cfg, "train"), pretrain_dataloader(cfg, "validation", rank=0, world_size=1), {}
    cfg = cfg.replace(data_path=os.fspath(store_path))
    train_store = open_store(cfg, "train")
    if len(train_store) == 0:
        raise ConfigError(f"{store_path}: the train split is empty")
    val_store = open_store(cfg, "validation")
    info = {"data": os.fspath(store_path), "n_train": len(train_store), "n_validation": len(val_store),
            "unigram_entropy_train": unigram_entropy(train_store)}
    if cfg.structure_exclude_families:
        info["structure_excluded_families"] = resolve_family_list(train_store, cfg.structure_exclude_families)
    train_loader = pretrain_dataloader(cfg, "train", store=train_store)
    val_loader = (pretrain_dataloader(cfg, "validation", store=val_store, rank=0, world_size=1)
                  if len(val_store) else None)
    return train_loader, val_loader, info


# ------------------------------------------------------------------------------------------------------- run

def _init_distributed(cfg: TrainingConfig) -> TrainingConfig:
    """Join the process group that ``torchrun`` describes (gloo on CPU, NCCL on CUDA); no-op otherwise."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return cfg
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        cfg = cfg.replace(device=f"cuda:{local}")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return cfg


def run(cfg: TrainingConfig, *, resume: bool = True, progress: bool = True, preprocess_workers: int | None = None,
        command: str | None = None, stop_after: int | None = None):
    """Pretrain as ``cfg`` says and return the :class:`~genesis_rna.training.TrainResult`."""
    import torch
    import torch.distributed as dist

    from .losses import MultiTaskLoss
    from .model import GenesisRNAModel
    from .training import train, world

    cfg = _init_distributed(cfg)
    rank, world_size = world()
    store_path = None
    if not cfg.use_dummy_data:
        if not cfg.data_path:
            raise ConfigError("give --data_path (a shard store or FASTA/Stockholm/... files) or --use_dummy_data")
        if rank == 0:
            store_path = prepare_store(cfg, workers=preprocess_workers, progress=progress)
        if world_size > 1:
            holder = [os.fspath(store_path) if store_path else None]
            dist.broadcast_object_list(holder, src=0)
            store_path = Path(holder[0])
    train_loader, val_loader, info = build_loaders(cfg, store_path)
    torch.manual_seed(cfg.seed)
    model = GenesisRNAModel(cfg.model_config())
    loss_fn = MultiTaskLoss.from_training_config(cfg)
    info.update({"command": command, "model_config": model.config.to_dict(), "world_size": world_size,
                 "parameters": model.num_parameters()})
    try:
        return train(model, loss_fn, train_loader, cfg, val_loader=val_loader, resume=resume, progress=progress,
                     stop_after=stop_after, extra_config=info)
    finally:
        if world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def summary(result) -> str:
    """One line for stdout."""
    ev = result.last_eval
    val = (f"; val MLM loss {ev['val_mlm_loss']:.3f} (acc {ev.get('val_mlm_acc', math.nan):.3f})"
           if "val_mlm_loss" in ev else "")
    act = result.last_train.get("activation_cumulative")
    ast = f"; AST activation {act:.2f}" if act is not None and act < 1 else ""
    resumed = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    final = f" -> {result.final_dir}" if result.final_dir else ""
    return (f"trained {result.step} steps in {result.elapsed_seconds:.1f} s{resumed}; "
            f"loss {result.last_train.get('loss', math.nan):.3f}{val}{ast}{final}")


def run_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None):
    cfg = config_from_args(args)
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(cfg, resume=not args.no_resume, progress=not args.quiet,
               preprocess_workers=args.preprocess_workers, command="genesis-rna pretrain " + shlex.join(argv))


def main(argv: Sequence[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m genesis_rna.train_pretrain", description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    try:
        result = run_from_args(args, argv)
    except GenesisRNAError as err:
        print(f"genesis-rna: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genesis-rna: interrupted (resume with the same command)", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
