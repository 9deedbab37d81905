"""``genesis-rna predict MODEL_DIR INPUT --output FILE``: apply a model written by ``genesis-rna finetune``.

Sequence tasks write CSV (``id``, then ``prediction`` and one ``prob_<class>`` column per class, or one column
per regression target); per-nucleotide tasks write JSON Lines (``id``, ``sequence`` and, per target, a list with
one value per nucleotide; classification adds ``probs``, a list of per-class lists). The input is read like
training data (FASTA, CSV, TSV, JSONL), with the sequence and id columns the model was trained with unless
``--sequence-column`` / ``--id-column`` say otherwise; labels are not needed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._fileutil import atomic_write
from ..errors import InputError
from ..model.device import resolve_device, resolve_dtype
from .data import ColumnSpec, load_examples
from .heads import encoder_features, feature_kind, head_on_features, is_token_task
from .model_dir import load_finetuned


@torch.no_grad()
def predict_sequences(model_dir: str | os.PathLike, sequences: Sequence[str], *, device: str = "auto",
                      dtype: str = "auto", tokens_per_batch: int = 8192, progress: bool = False
                      ) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Per sequence: class probabilities (``[C]`` / ``[L, C]``) or targets in their units (``[k]`` / ``[L, k]``)."""
    encoder, head, info = load_finetuned(model_dir)
    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    task = info["task"]
    kind = feature_kind(task, info["pooling"])
    feats = encoder_features(encoder, sequences, kind, device=dev, dtype=cdtype, tokens_per_batch=tokens_per_batch,
                             progress=progress)
    head.to(dev)
    classify = task in ("classification", "token-classification")
    mean = torch.tensor(info["target_mean"] or [0.0], device=dev)
    std = torch.tensor(info["target_std"] or [1.0], device=dev)
    norm = info["feature_norm"]
    norm = (norm[0].to(dev), norm[1].to(dev)) if norm is not None else None
    preds = []
    for f in feats:  # one at a time: no padding questions, and prediction sets are small next to training
        out = head_on_features(head, [f], dev, norm)
        out = out.float().softmax(-1) if classify else out.float() * std + mean
        preds.append(out[0].cpu().numpy())
    return preds, info


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def write_sequence_csv(path: str | os.PathLike, ids: Sequence[str], preds: Sequence[np.ndarray],
                       info: dict[str, Any]) -> None:
    names = info["outputs"]
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        if info["task"] == "classification":
            w.writerow(["id", "prediction", *(f"prob_{n}" for n in names)])
            for rid, p in zip(ids, preds, strict=True):
                w.writerow([rid, names[int(np.argmax(p))], *map(_fmt, p)])
        else:
            w.writerow(["id", *names])
            for rid, p in zip(ids, preds, strict=True):
                w.writerow([rid, *map(_fmt, p)])


def write_token_jsonl(path: str | os.PathLike, ids: Sequence[str], seqs: Sequence[str],
                      preds: Sequence[np.ndarray], info: dict[str, Any]) -> None:
    names = info["outputs"]
    with atomic_write(path) as fh:
        for rid, seq, p in zip(ids, seqs, preds, strict=True):
            row: dict[str, Any] = {"id": rid, "sequence": seq}
            if info["task"] == "token-classification":
                row["prediction"] = [names[int(i)] for i in p.argmax(-1)]
                row["probs"] = np.round(p, 6).tolist()
                row["labels"] = names
            else:
                for j, name in enumerate(names):
                    row[name] = np.round(p[:, j].astype(np.float64), 6).tolist()
            fh.write(json.dumps(row) + "\n")


def predict_file(model_dir: str | os.PathLike, input_path: str | os.PathLike, output: str | os.PathLike, *,
                 sequence_column: str | None = None, id_column: str | None = None, device: str = "auto",
                 dtype: str = "auto", tokens_per_batch: int = 8192, progress: bool = False) -> dict[str, Any]:
    """Read ``input_path``, predict, write ``output`` (CSV or JSONL by task); returns counts for the summary."""
    info = json.loads((Path(model_dir) / "task.json").read_text()) if (Path(model_dir) / "task.json").is_file() \
        else load_finetuned(model_dir)[2]  # the loader raises the one-line "not a fine-tuned model" error
    token = is_token_task(info["task"])
    expected = ".jsonl" if token else ".csv"
    if not os.fspath(output).lower().endswith(expected):
        raise InputError(f"{info['task']} predictions are written as {expected}; name the output *{expected}",
                         path=output)
    spec = ColumnSpec(sequence_column=sequence_column or info.get("sequence_column") or "sequence",
                      id_column=id_column or info.get("id_column") or "id", label_columns=[],
                      label_regex=info.get("label_regex"))
    examples = load_examples(input_path, info["task"], spec, with_targets=False)
    seqs = [e.sequence for e in examples]
    preds, info = predict_sequences(model_dir, seqs, device=device, dtype=dtype, tokens_per_batch=tokens_per_batch,
                                    progress=progress)
    ids = [e.id for e in examples]
    if token:
        write_token_jsonl(output, ids, seqs, preds, info)
    else:
        write_sequence_csv(output, ids, preds, info)
    return {"n": len(examples), "nt": sum(map(len, seqs)), "task": info["task"], "output": os.fspath(output)}


__all__ = ["predict_sequences", "predict_file", "write_sequence_csv", "write_token_jsonl"]
