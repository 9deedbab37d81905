"""Pair (secondary-structure) tasks: ``genesis-rna finetune --task pair`` trains a structure model on your data.

Why a module of its own: a pair task's target is a whole L x L pairing, not a label per sequence or nucleotide,
and its model is the structure model of :mod:`genesis_rna.structure.model` (pair features -> 2D ResNet), whose
directory ``genesis-rna fold --model DIR`` already loads. What the sequence tasks share with it is the command
line (files, columns, splits, epochs, early stopping, ``metrics.jsonl`` and the plot); this module turns those
options into :class:`~genesis_rna.structure.train.PairExample` lists and a trained model directory.

Inputs (any number of files or directories for training; one each for ``--valid`` and ``--test``):

* dot-bracket files ``.dbn`` / ``.db``: ``>id``, sequence line, structure line (``genesis-rna fold`` writes
  ``structures.dbn`` this way); pseudoknots on ``[]`` ``{}`` ``<>`` ``Aa``...;
* ``.ct`` and ``.bpseq`` files, or a directory holding files of one of these formats;
* Stockholm alignments ``.sto`` / ``.stk`` / ``.stockholm`` (e.g. Rfam seeds): every sequence, with the
  ``#=GC SS_cons`` pairs whose two columns both hold a residue;
* CSV / TSV / JSON Lines with a sequence column and a structure column: a dot-bracket string or ``base_pairs``,
  a JSON list of 1-based ``[i, j]`` pairs (ArchiveII's CSV). ``--label-column`` names it; by default the first
  of ``structure`` and ``base_pairs`` that the file has.

Every structure is checked (balanced brackets, length = sequence length, pairs in range, nobody paired twice);
a bad one is a one-line :class:`~genesis_rna.errors.InputError` naming the file, the record and the problem.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._fileutil import atomic_dir, atomic_write
from ..errors import InputError, StructureError
from ..io._text import strip_gz
from ..structure.pairs import dotbracket_to_partners, pairs_to_partners, validate_partners
from ..vocab import normalise
from .data import (
    ColumnSpec,
    Example,
    _check_columns,
    _filters,
    _is_missing,
    file_format,
    read_rows,
    split_with_files,
)

__all__ = ["STRUCTURE_SUFFIXES", "STRUCTURE_COLUMNS", "is_structure_file", "read_structure_files",
           "read_structure_table", "parse_structure_value", "load_pair_examples", "load_pair_splits",
           "train_pair_task"]

#: file extensions read as structure files (a further ``.gz`` is allowed), in the order a directory is searched.
STRUCTURE_SUFFIXES = (".dbn", ".db", ".ct", ".bpseq", ".sto", ".stk", ".stockholm")
#: structure columns looked for in a table when ``--label-column`` is left at its default.
STRUCTURE_COLUMNS = ("structure", "base_pairs")
METRICS_FILE = "metrics.jsonl"
DEFAULT_LR = 3e-3     # the structure model's own default: its head is a small ResNet trained from scratch
DEFAULT_CROP = 160    # training crop: O(L^2) pair maps, so short crops keep a CPU step at tens of ms


# =============================================================================================== reading
def is_structure_file(path: str | os.PathLike) -> bool:
    """True for ``.dbn``/``.db``/``.ct``/``.bpseq`` and Stockholm ``.sto``/``.stk``/``.stockholm`` names
    (optionally ``.gz``)."""
    return strip_gz(path).lower().endswith(STRUCTURE_SUFFIXES)


def _directory_files(directory: Path) -> list[Path]:
    """The structure files of a directory, all of one format (several formats there are likely the same
    structures written twice, as ``genesis-rna fold`` does, so the user must pick)."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and is_structure_file(p))
    if not files:
        raise InputError(f"no structure files ({', '.join(STRUCTURE_SUFFIXES)}) in this directory", path=directory)
    kinds = sorted({_format_of(p) for p in files})
    if len(kinds) > 1:
        raise InputError(f"directory holds {' and '.join(kinds)} files (the same structures in several formats?); "
                         f"pass the files of one format, e.g. {directory}/*.{kinds[0]}", path=directory)
    return files


def _format_of(path: str | os.PathLike) -> str:
    """``dbn``, ``ct``, ``bpseq`` or ``stockholm``: the io module's one table of structure extensions."""
    from ..io import structure_format

    return structure_format(path)


def read_structure_files(path: str | os.PathLike) -> list[Example]:
    """Structures from a ``.dbn``/``.db``/``.ct``/``.bpseq``/Stockholm file or a directory of them, as
    :class:`Example` objects whose ``target`` is the partner array (0-based, -1 unpaired). Stockholm gives every
    sequence of every alignment with the ``#=GC SS_cons`` pairs whose two columns both hold a residue (Rfam seeds)."""
    from ..io import read_structures

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", path=path)
    files = _directory_files(path) if path.is_dir() else [path]
    out = []
    for f in files:
        for rec in read_structures(f, format=_format_of(f)):
            out.append(Example(rec.id, rec.sequence, rec.partner, None, {}, os.fspath(f)))
    return out


def _pair_list(value: Any, length: int) -> np.ndarray:
    """Partner array from 1-based ``[[i, j], ...]`` (a list or its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise StructureError(f"base pairs are not a JSON list ({err.msg})") from None
    if not isinstance(value, list):
        raise StructureError(f"base pairs must be a list of [i, j] pairs, got {type(value).__name__}")
    pairs = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(v, int) for v in item)):
            raise StructureError(f"base pair {item!r} is not a pair of integers [i, j]")
        i, j = item
        if not (1 <= i <= length and 1 <= j <= length):
            raise StructureError(f"pair ({i}, {j}) is out of range 1..{length} (pairs are 1-based)")
        pairs.append((i - 1, j - 1))
    return pairs_to_partners(pairs, length)


def _is_pair_list_text(text: str) -> bool:
    """JSON pairs, not a dot-bracket that opens on the ``[]`` page: pairs hold digits, brackets never do."""
    text = text.strip()
    return text.startswith("[") and (any(c.isdigit() for c in text) or text.replace(" ", "") == "[]")


def parse_structure_value(value: Any, length: int) -> np.ndarray:
    """A table cell as a partner array: a dot-bracket string, or 1-based base pairs (list or JSON text)."""
    if isinstance(value, list) or (isinstance(value, str) and _is_pair_list_text(value)):
        return validate_partners(_pair_list(value, length), length)
    if _is_missing(value):
        raise StructureError("no structure (empty value)")
    db = str(value).strip()
    if len(db) != length:
        raise StructureError(f"dot-bracket has length {len(db)} but the sequence has length {length}")
    return dotbracket_to_partners(db)


def _structure_column(rows: list[dict], spec: ColumnSpec, path) -> str:
    """The column holding structures: the one ``--label-column`` names, else ``structure`` / ``base_pairs``."""
    if len(spec.label_columns) != 1:
        raise InputError("pair tasks take one --label-column (the structure column)")
    name = spec.label_columns[0]
    if name != "label" or "label" in rows[0]:
        return name
    for col in STRUCTURE_COLUMNS:
        if col in rows[0]:
            return col
    present = [k for k in rows[0] if not k.startswith("_")]
    raise InputError(f"no structure column ({' or '.join(STRUCTURE_COLUMNS)}; columns: {', '.join(present)}); "
                     "name it with --label-column", path=path)


def read_structure_table(path: str | os.PathLike, spec: ColumnSpec) -> list[Example]:
    """Structures from a CSV / TSV / JSON Lines file; ``split`` holds the raw split-column value, if any."""
    rows = _filters(read_rows(path), spec.filters, path)
    column = _structure_column(rows, spec, path)
    _check_columns(rows, [spec.sequence_column, column] + ([spec.split_column] if spec.split_column else []), path)
    out = []
    for k, row in enumerate(rows):
        rid = str(row.get(spec.id_column) or f"#{k + 1}")
        try:
            seq = normalise(str(row[spec.sequence_column]), record=rid)
            partner = parse_structure_value(row[column], len(seq))
        except InputError as err:
            raise err.with_context(path=path, record=rid, line=row.get("_line")) from None
        split = str(row[spec.split_column]).strip() if spec.split_column else None
        out.append(Example(rid, seq, partner, split, row, os.fspath(path)))
    return out


def load_pair_examples(path: str | os.PathLike, spec: ColumnSpec) -> list[Example]:
    """Structures from one file or directory, whatever its format (see the module docstring)."""
    if Path(path).is_dir() or is_structure_file(path):
        if spec.split_column or spec.filters:
            raise InputError("--split-column and --filter apply to CSV/TSV/JSONL files, not structure files",
                             path=path)
        return read_structure_files(path)
    if file_format(path) == "fasta":
        raise InputError("pair tasks need structures: a dot-bracket file (.dbn: >id, sequence, structure), "
                         ".ct, .bpseq, a directory of them, or CSV/TSV/JSONL with a structure column", path=path)
    if not Path(path).exists():
        raise InputError("no such file", path=path)
    return read_structure_table(path, spec)


def _unique_ids(examples: list[Example]) -> None:
    """Repeated ids (e.g. two .bpseq files without names) get ``#k`` appended, as the other tasks do."""
    seen: set[str] = set()
    for k, ex in enumerate(examples):
        if ex.id in seen:
            ex.id = f"{ex.id}#{k + 1}"
        seen.add(ex.id)


def load_pair_splits(train_paths: Sequence[str | os.PathLike], spec: ColumnSpec, *, valid_path=None, test_path=None,
                     valid_values=None, test_values=None, valid_fraction: float = 0.1, test_fraction: float = 0.0,
                     split_seed: int = 0) -> dict[str, list[Example]]:
    """Examples per split: ``--valid``/``--test`` files, a split column, or a seeded random split of the rest.

    A pair task needs validation data (early stopping and the decoding threshold are chosen on it), so an empty
    validation split is an error rather than a model with an untuned threshold.
    """
    examples = [ex for p in train_paths for ex in load_pair_examples(p, spec)]
    _unique_ids(examples)
    first = train_paths[0]
    split = split_with_files(examples, load_pair_examples, spec, first, valid_path=valid_path, test_path=test_path,
                             valid_values=valid_values, test_values=test_values, valid_fraction=valid_fraction,
                             test_fraction=test_fraction, split_seed=split_seed)
    for name, path in (("valid", valid_path), ("test", test_path)):
        if path:
            _unique_ids(split[name])
    if not split["train"]:
        raise InputError("the training split is empty", path=first)
    if not split["valid"]:
        how = (f"split column '{spec.split_column}' has no validation rows" if spec.split_column
               else f"--valid-fraction {valid_fraction} of {len(examples)} structures leaves none")
        raise InputError(f"no validation structures ({how}); give --valid FILE, validation rows, or a larger "
                         "--valid-fraction", path=valid_path or first)
    return split


# =============================================================================================== model
def resolve_encoder(encoder: str, model: str | None) -> str | None:
    """``--encoder``/``--model`` -> an encoder name or absolute directory, or None (one-hot pair features).

    ``--encoder genesis`` (the default) means ``--model`` or the shipped genesis-rna-small; ``onehot``/``none``
    train without a language model; anything else names the encoder itself. Directories are stored absolute in
    the model config so ``genesis-rna fold --model DIR`` finds the encoder from any working directory.
    """
    from ..pretrained import DEFAULT_MODEL

    if encoder.lower() in ("onehot", "none"):
        if model:
            raise InputError(f"--encoder {encoder} trains without a language model; drop --model {model}")
        return None
    if encoder != "genesis" and model:
        raise InputError(f"give the encoder once: --encoder {encoder} or --model {model}")
    name = model or (DEFAULT_MODEL if encoder == "genesis" else encoder)
    p = Path(name).expanduser()
    return os.fspath(p.resolve()) if p.is_dir() else name


def _vienna_priors(examples: Sequence, log: Callable[[str], None], progress: bool) -> None:
    """ViennaRNA prior of every example that has none, announced in the log first (it can take minutes)."""
    from ..structure.train import add_vienna_priors

    todo = [ex for ex in examples if ex.prior is None]
    if todo:
        log(f"computing ViennaRNA priors for {len(todo)} sequences")
        add_vienna_priors(todo, progress)


def score_test(model, examples: Sequence, progress: bool = False) -> dict[str, Any]:
    """Mean exact-pair metrics of the model on ``examples``, predicted and decoded exactly as
    ``genesis-rna fold --model DIR`` does (windows beyond the model window, MEA at the tuned threshold)."""
    import torch

    from ..structure.fold import MAX_FOLD_LENGTH, _ModelPredictor, fold_records
    from ..structure.pairs import mean_pair_metrics

    kept = [ex for ex in examples if len(ex.sequence) <= MAX_FOLD_LENGTH]
    predictor = _ModelPredictor(model, "trained", True, torch.float32)
    truth = {ex.id: ex.partner for ex in kept}
    pairs = [(res.partner, truth[res.id]) for res in fold_records(kept, predictor, progress=progress)]
    out: dict[str, Any] = {"n": len(pairs), **mean_pair_metrics(pairs)} if pairs else {"n": 0}
    if len(kept) < len(examples):
        out["n_longer_than_fold_limit"] = len(examples) - len(kept)
    return out


# =============================================================================================== training
def _check_output(out: Path) -> None:
    """Refuse to replace anything but an empty directory or an earlier structure model directory."""
    from ..structure.model import is_structure_model_dir

    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a directory", path=out)
    if out.is_dir() and any(out.iterdir()) and not is_structure_model_dir(out):
        raise InputError("output directory exists and is not a structure model directory; choose another "
                         "--output-dir (a structure model directory would be replaced)", path=out)


def _source(path: str | None, spec: ColumnSpec, fraction: float, seed: int) -> str:
    """Where a split came from, for the model config's provenance."""
    if path:
        return os.path.abspath(path)
    if spec.split_column:
        return f"split column '{spec.split_column}' of the training data"
    return f"random {fraction:g} of the training data (seed {seed})" if fraction else "none"


def _validation_set(examples: list, window: int, log: Callable[[str], None]) -> list:
    """Validation examples that fit the model window (scoring runs every epoch and decoding is O(L^3))."""
    valid = [ex for ex in examples if len(ex.sequence) <= window]
    if not valid:
        raise InputError(f"every validation structure is longer than the model window ({window} nt)")
    if len(valid) < len(examples):
        log(f"{len(examples) - len(valid)} validation sequences longer than the model window ({window} nt) "
            "are left out of validation")
    return valid


def _fit(model, train: list, valid: list, *, epochs: int, steps: int, log: Callable[[str], None],
         progress: bool, **options) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """:func:`~genesis_rna.structure.train.train_structure_model` with a step progress bar and a log line per
    epoch; returns its result and the per-epoch rows for ``metrics.jsonl``."""
    from tqdm.auto import tqdm

    from ..structure.train import train_structure_model

    rows: list[dict[str, Any]] = []

    def on_epoch(line: str) -> None:
        row = json.loads(line)
        rows.append({"kind": "epoch", **row})
        log(f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, valid F1 {row['valid_f1']:.4f} "
            f"(threshold {row['threshold']}), {row['elapsed_s']:.0f} s")

    with tqdm(total=epochs * steps, unit="step", desc="train", disable=not progress, dynamic_ncols=True,
              file=sys.stderr) as bar:
        def on_step(loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        info = train_structure_model(model, train, valid, epochs=epochs, steps_per_epoch=steps, log=on_epoch,
                                     on_step=on_step, **options)
    return info, rows


def _write_model_dir(out: Path, model, metrics: list[dict[str, Any]]) -> None:
    """The structure model directory plus ``metrics.jsonl`` and the plot, all or nothing."""
    from ..structure.model import save_structure_model
    from .trainer import plot_curves

    with atomic_dir(out) as tmp:
        save_structure_model(model, tmp)
        with atomic_write(Path(tmp) / METRICS_FILE) as fh:
            for row in metrics:
                fh.write(json.dumps(row, allow_nan=True) + "\n")
        plot_curves(Path(tmp), "f1")


def train_pair_task(split: dict[str, list[Example]], output_dir: str | os.PathLike, *, encoder: str | None,
                    mode: str = "frozen", use_vienna: bool = True, channels: int = 16, epochs: int = 30,
                    steps_per_epoch: int | None = None, crop: int = DEFAULT_CROP, lr: float = DEFAULT_LR,
                    encoder_lr: float = 5e-5, patience: int = 5, seed: int = 0, provenance: dict | None = None,
                    log: Callable[[str], None] = lambda s: None, progress: bool = False) -> dict[str, Any]:
    """Train a structure model on ``split`` and write its directory (atomically); returns the results.

    Validation keeps the sequences that fit the model window; the test split is scored in full, the way
    ``genesis-rna fold`` folds. The model config's ``training`` field records data, sizes and scores.
    """
    import torch

    from ..structure.model import build_structure_model
    from ..structure.train import PairExample

    out = Path(output_dir)
    _check_output(out)
    torch.manual_seed(seed)
    model = build_structure_model(encoder, use_vienna=use_vienna, finetune=mode == "full", channels=channels)
    window = int(model.config.max_len)
    data = {k: [PairExample(e.id, e.sequence, e.target) for e in v] for k, v in split.items()}
    valid = _validation_set(data["valid"], window, log)
    steps, crop = steps_per_epoch or len(data["train"]), min(crop, window)
    n = {"train": len(data["train"]), "valid": len(valid), "test": len(data["test"])}
    settings = {"encoder": encoder or "none", "mode": mode, "vienna": use_vienna, "channels": channels,
                "crop": crop, "steps_per_epoch": steps, "lr": lr, "seed": seed}
    log(f"training a structure model on {n['train']} structures ({n['valid']} valid), encoder "
        f"{f'{encoder} ({mode})' if encoder else 'none (one-hot)'}, ViennaRNA prior {'on' if use_vienna else 'off'}")
    t0 = time.perf_counter()
    if use_vienna:
        _vienna_priors(data["train"] + valid, log, progress)
    info, rows = _fit(model, data["train"], valid, epochs=epochs, steps=steps, log=log, progress=progress, lr=lr,
                      encoder_lr=encoder_lr, max_train_len=crop, patience=patience, seed=seed)
    best_epoch = max(rows, key=lambda r: r["valid_f1"])["epoch"]  # the first best, the one training keeps
    results: dict[str, Any] = {"task": "pair", "n": n, "best_epoch": best_epoch, "epochs_run": len(rows),
                               "best_valid_f1": info["best_valid_f1"], "threshold": info["threshold"],
                               "train_seconds": round(time.perf_counter() - t0, 1)}
    if data["test"]:
        log(f"scoring {n['test']} test structures")
        results["test"] = score_test(model, data["test"], progress)
    model.config.training = {**(provenance or {}), "task": "pair", **{f"n_{k}": v for k, v in n.items()},
                             **settings, **{k: v for k, v in results.items() if k not in ("task", "n", "test")}}
    if "test" in results:
        model.config.training["test_f1"] = results["test"].get("f1")
    _write_model_dir(out, model, [{"kind": "start", "task": "pair", **{f"n_{k}": v for k, v in n.items()},
                                   **settings}, *rows, {"kind": "final", **results}])
    return results


