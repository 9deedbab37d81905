"""Pretraining: the data (a shard store, or raw files preprocessed once), the model and the loop, for
``genesis-rna pretrain`` (= ``python -m genesis_rna.train_pretrain``; the flags are in :mod:`genesis_rna.cli.training`).

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

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainingConfig
from ..errors import ConfigError

# ------------------------------------------------------------------------------------------------------ data

def _is_store(path: Path) -> bool:
    from ..data.format import MANIFEST

    return path.is_dir() and (path / MANIFEST).is_file()


def prepare_store(cfg: TrainingConfig, *, workers: int | None = None, progress: bool = True) -> Path:
    """The shard store to train on: ``data_path`` itself, or raw files preprocessed into ``OUTPUT_DIR/data``."""
    from ..data.preprocess import preprocess

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
    from ..data.loader import open_store, pretrain_dataloader
    from ..data.store import resolve_family_list

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
    """Pretrain as ``cfg`` says and return the :class:`~genesis_rna.training.loop.TrainResult`."""
    import torch
    import torch.distributed as dist

    from ..model.encoder import GenesisRNAModel
    from .loop import train, world
    from .losses import MultiTaskLoss

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

