"""Task data for fine-tuning: read FASTA / CSV / TSV / JSONL, map columns to targets, assign splits.

Why one module: every downstream set arrives in its own shape (nRC puts the class in the FASTA header, the RBP
CLIP sets are CSV with a 0/1 column, OpenVaccine is JSON Lines with per-nucleotide lists scored over the first
``seq_scored`` positions). Turning all of them into one list of :class:`Example` (id, normalised sequence, target,
split) lets the trainer and ``genesis-rna predict`` stay format-agnostic.

Targets by task type (see :data:`TASKS`):

* ``classification``: one label string per sequence (any column; FASTA: ``label=`` key, ``--label-regex``, or
  the first word of the description);
* ``regression``: one float per label column (several columns = multi-output); empty / ``nan`` = masked;
* ``token-regression``: per label column a list of floats per position (a JSON list, or a string of numbers
  separated by commas/spaces); shorter than the sequence or beyond ``--scored-length-column`` = masked (NaN);
* ``token-classification``: one label per position, as a list or a string with one character per position
  (e.g. a dot-bracket or loop-type string); missing positions are ignored (-100).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, InputError
from ..io._text import numbered_lines, strip_gz
from ..vocab import IGNORE_INDEX, normalise

TASKS = ("classification", "regression", "token-classification", "token-regression")
PAIR_TASKS = ("pair", "structure")
SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
                 "dev": "valid", "test": "test", "testing": "test"}
_KEY_VALUE = re.compile(r"(\w+)=(\S+)")
_MISSING = {"", "nan", "na", "none", "null"}


@dataclass
class Example:
    """One sequence with its target: a label string, ``[k]`` floats, ``[L, k]`` floats or ``[L]`` label strings."""

    id: str
    sequence: str
    target: Any = None
    split: str | None = None
    row: dict[str, Any] = field(default_factory=dict, repr=False)
    path: str | None = None


@dataclass
class ColumnSpec:
    """Which columns hold what. ``label_columns`` may be empty for prediction inputs."""

    sequence_column: str = "sequence"
    id_column: str = "id"
    label_columns: list[str] = field(default_factory=lambda: ["label"])
    scored_length_column: str | None = None
    split_column: str | None = None
    label_regex: str | None = None
    filters: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- reading
def file_format(path: str | os.PathLike) -> str:
    """``fasta``, ``csv``, ``tsv`` or ``jsonl`` from the name (``.gz`` ignored)."""
    name = strip_gz(path).lower()
    for fmt, exts in (("fasta", (".fa", ".fasta", ".fna", ".fas")), ("tsv", (".tsv", ".tab")),
                      ("csv", (".csv",)), ("jsonl", (".jsonl", ".ndjson", ".json"))):
        if name.endswith(exts):
            return fmt
    raise InputError("unknown file type (use .fa/.fasta, .csv, .tsv or .jsonl, optionally .gz)", path=path)


def header_label(description: str, regex: str | None) -> str | None:
    """Label of a FASTA record: ``label=X`` in the description, else ``regex`` group 1 (or group ``label``) on the
    description, else its first word (the nRC convention ``>ID CLASS``)."""
    pairs = dict(_KEY_VALUE.findall(description))
    if "label" in pairs:
        return pairs["label"]
    if regex:
        m = re.search(regex, description)
        if not m:
            return None
        return m.group("label") if "label" in m.re.groupindex else m.group(1 if m.re.groups else 0)
    words = [w for w in description.split() if "=" not in w]
    return words[0] if words else None


def _fasta_rows(path: str | os.PathLike, regex: str | None) -> list[dict[str, Any]]:
    from ..io.fasta import iter_fasta

    rows = []
    for rec in iter_fasta(path, normalise_sequences=False):
        row: dict[str, Any] = {"id": rec.id, "sequence": rec.sequence, "description": rec.description}
        row.update(dict(_KEY_VALUE.findall(rec.description)))
        row["label"] = header_label(rec.description, regex)
        rows.append(row)
    return rows


def _csv_rows(path: str | os.PathLike, delimiter: str) -> list[dict[str, Any]]:
    lines = (line for _, line in numbered_lines(path, "CSV" if delimiter == "," else "TSV"))
    reader = csv.DictReader(lines, delimiter=delimiter)
    rows = []
    for k, row in enumerate(reader, start=2):
        if None in row:
            raise FormatError(f"more fields than the header has ({len(reader.fieldnames or [])})", path=path, line=k)
        row["_line"] = k
        rows.append(row)
    if reader.fieldnames is None:
        raise FormatError("empty file (no header line)", path=path)
    return rows


def _jsonl_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in numbered_lines(path, "JSON Lines"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise FormatError(f"not valid JSON ({err.msg})", path=path, line=lineno) from None
        if not isinstance(row, dict):
            raise FormatError("each line must be a JSON object", path=path, line=lineno)
        row["_line"] = lineno
        rows.append(row)
    return rows


def read_rows(path: str | os.PathLike, *, label_regex: str | None = None) -> list[dict[str, Any]]:
    """All rows of a task file as dicts (FASTA rows have ``id``, ``sequence``, ``description``, ``label``)."""
    fmt = file_format(path)
    if not Path(path).exists():
        raise InputError("no such file", path=path)
    if fmt == "fasta":
        rows = _fasta_rows(path, label_regex)
    elif fmt == "jsonl":
        rows = _jsonl_rows(path)
    else:
        rows = _csv_rows(path, "\t" if fmt == "tsv" else ",")
    if not rows:
        raise FormatError("no records in file", path=path)
    return rows


# ------------------------------------------------------------------------------------------------ targets
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING


def _float(value: Any, what: str) -> float:
    if _is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {value!r} is not a number") from None


def _as_list(value: Any, what: str) -> list[Any]:
    """A per-position value: a JSON list, a JSON-list string, or numbers separated by commas/whitespace."""
    if isinstance(value, list):
        return value
    if _is_missing(value):
        return []
    if not isinstance(value, str):
        raise InputError(f"{what}: expected a list of per-position values, got {type(value).__name__}")
    text = value.strip()
    if text.startswith("["):
        try:
            return list(json.loads(text))
        except json.JSONDecodeError:
            raise InputError(f"{what}: not a JSON list") from None
    return [t for t in re.split(r"[,\s]+", text) if t]


def _token_regression(row: dict, length: int, columns: Sequence[str], scored: int | None) -> np.ndarray:
    out = np.full((length, len(columns)), np.nan, dtype=np.float32)
    for j, col in enumerate(columns):
        values = _as_list(row[col], f"column '{col}'")
        if len(values) > length:
            raise InputError(f"column '{col}' has {len(values)} values for a sequence of {length} nt")
        out[: len(values), j] = [_float(v, f"column '{col}'") for v in values]
    if scored is not None:
        out[scored:] = np.nan
    return out


def _token_labels(row: dict, length: int, column: str, scored: int | None) -> list[str | None]:
    value = row[column]
    values = list(value) if isinstance(value, str) and not value.strip().startswith("[") else _as_list(value, column)
    if len(values) > length:
        raise InputError(f"column '{column}' has {len(values)} labels for a sequence of {length} nt")
    labels: list[str | None] = [None if _is_missing(v) else str(v) for v in values]
    labels += [None] * (length - len(labels))
    if scored is not None:
        labels[scored:] = [None] * (length - scored)
    return labels


def _target(row: dict, task: str, spec: ColumnSpec, length: int) -> Any:
    cols = spec.label_columns
    if task == "classification":
        if len(cols) != 1:
            raise InputError("classification takes exactly one --label-column")
        value = row[cols[0]]
        if _is_missing(value):
            raise InputError(f"missing label in column '{cols[0]}'")
        return str(value).strip()
    if task == "regression":
        return np.array([_float(row[c], f"column '{c}'") for c in cols], dtype=np.float32)
    scored = None
    if spec.scored_length_column:
        scored = int(_float(row[spec.scored_length_column], f"column '{spec.scored_length_column}'"))
    if task == "token-regression":
        return _token_regression(row, length, cols, scored)
    if len(cols) != 1:
        raise InputError("token-classification takes exactly one --label-column")
    return _token_labels(row, length, cols[0], scored)


def check_task(task: str) -> None:
    """Pair (structure) tasks belong to the structure model; anything else unknown is a one-line error."""
    if task in PAIR_TASKS:
        raise InputError("pair (secondary-structure) tasks train a structure model: their data is read by "
                         "genesis_rna.finetune.structure (`genesis-rna finetune --task pair`), not as examples")
    if task not in TASKS:
        raise InputError(f"unknown task {task!r} (choose {', '.join(TASKS)})")


def _check_columns(rows: list[dict], needed: Sequence[str], path) -> None:
    present = [k for k in rows[0] if not k.startswith("_")]
    for col in needed:
        if col not in rows[0]:
            raise InputError(f"no column '{col}' (columns: {', '.join(present)})", path=path)


def _filters(rows: list[dict], filters: Sequence[str], path) -> list[dict]:
    for spec in filters:
        if "=" not in spec:
            raise InputError(f"--filter takes COLUMN=VALUE, got {spec!r}")
        col, value = spec.split("=", 1)
        _check_columns(rows, [col], path)
        rows = [r for r in rows if str(r[col]).strip() == value]
    if not rows:
        raise InputError(f"no record passes --filter {' '.join(filters)}", path=path)
    return rows


def load_examples(path: str | os.PathLike, task: str, spec: ColumnSpec, *, with_targets: bool = True
                  ) -> list[Example]:
    """Read ``path`` into :class:`Example` objects (targets parsed for ``task`` unless ``with_targets=False``)."""
    check_task(task)
    rows = _filters(read_rows(path, label_regex=spec.label_regex), spec.filters, path)
    fasta = file_format(path) == "fasta"
    seq_col = "sequence" if fasta else spec.sequence_column
    needed = [seq_col] + (list(spec.label_columns) if with_targets else [])
    needed += [c for c in (spec.scored_length_column if with_targets else None, spec.split_column) if c]
    _check_columns(rows, needed, path)
    examples, seen = [], set()
    for k, row in enumerate(rows):
        rid = str(row.get("id" if fasta else spec.id_column) or f"#{k + 1}")
        line = row.get("_line")
        try:
            if fasta and with_targets and row.get("label") is None and spec.label_columns == ["label"]:
                raise InputError("no label in the FASTA header (use label=X, --label-regex, or '>ID LABEL')")
            seq = normalise(str(row[seq_col]), record=rid)
            target = _target(row, task, spec, len(seq)) if with_targets else None
        except InputError as err:
            raise err.with_context(path=path, record=rid, line=line) from None
        split = None
        if spec.split_column:
            split = str(row[spec.split_column]).strip()
        if rid in seen:
            rid = f"{rid}#{k + 1}"
        seen.add(rid)
        examples.append(Example(rid, seq, target, split, row, os.fspath(path)))
    return examples


# ------------------------------------------------------------------------------------------------- splits
def _values(text: str | Sequence[str] | None) -> set[str]:
    if text is None:
        return set()
    items = text.split(",") if isinstance(text, str) else list(text)
    return {str(v).strip() for v in items if str(v).strip()}


def assign_splits(examples: list[Example], *, valid_values: str | Sequence[str] | None = None,
                  test_values: str | Sequence[str] | None = None, valid_fraction: float = 0.1,
                  test_fraction: float = 0.0, seed: int = 0, path: str | os.PathLike | None = None) -> None:
    """Set ``example.split`` to train/valid/test in place.

    With a split column (``example.split`` already holds its raw value): ``valid_values``/``test_values`` name the
    values that mean valid/test (e.g. a fold number), everything else is train; without them the values must
    be train/valid/test (or val, validation, dev). Without a column: a seeded random split.
    """
    if examples and examples[0].split is not None:
        valid, test = _values(valid_values), _values(test_values)
        for ex in examples:
            raw = ex.split or ""
            if valid or test:
                ex.split = "valid" if raw in valid else "test" if raw in test else "train"
            elif raw.lower() in SPLIT_ALIASES:
                ex.split = SPLIT_ALIASES[raw.lower()]
            else:
                raise InputError(f"split value {raw!r} is not train/valid/test; name the values with "
                                 "--valid-values/--test-values", path=path, record=ex.id)
        return
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise InputError(f"split fractions must leave data to train on (valid {valid_fraction}, test {test_fraction})")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_valid = int(round(valid_fraction * len(order)))
    n_test = int(round(test_fraction * len(order)))
    for rank, i in enumerate(order):
        examples[i].split = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"


def split_examples(examples: list[Example]) -> dict[str, list[Example]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` in input order."""
    return {s: [e for e in examples if e.split == s] for s in SPLITS}


def class_names(examples: Sequence[Example], task: str, given: Sequence[str] | None = None) -> list[str]:
    """Label vocabulary: ``given`` in its order, else the sorted labels seen (numerically when all are ints)."""
    if given:
        return list(given)
    seen: set[str] = set()
    for ex in examples:
        if task == "classification":
            seen.add(ex.target)
        else:
            seen.update(v for v in ex.target if v is not None)
    if all(re.fullmatch(r"-?\d+", s) for s in seen):
        return sorted(seen, key=int)
    return sorted(seen)


def encode_labels(examples: Sequence[Example], task: str, names: Sequence[str], path=None) -> list[Any]:
    """Label strings -> class indices (``[L]`` arrays with -100 for token tasks); unknown labels are errors."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for ex in examples:
        values = [ex.target] if task == "classification" else ex.target
        ids = []
        for v in values:
            if v is None:
                ids.append(IGNORE_INDEX)
            elif v in index:
                ids.append(index[v])
            else:
                raise InputError(f"label {v!r} is not one of the task's labels ({', '.join(names)})",
                                 path=ex.path or path, record=ex.id)
        out.append(ids[0] if task == "classification" else np.asarray(ids, dtype=np.int64))
    return out


__all__ = ["Example", "ColumnSpec", "TASKS", "IGNORE_INDEX", "file_format", "header_label", "read_rows",
           "load_examples", "assign_splits", "split_examples", "split_with_files", "class_names", "encode_labels",
           "check_task"]


def split_with_files(examples: list[Example], read: Callable[[Any, ColumnSpec], list[Example]], spec: ColumnSpec,
                     train_path, *, valid_path=None, test_path=None, valid_values=None, test_values=None,
                     valid_fraction: float = 0.1, test_fraction: float = 0.0, split_seed: int = 0
                     ) -> dict[str, list[Example]]:
    """Split ``examples`` (read from ``train_path``) by the split column or seeded fractions; a ``--valid`` /
    ``--test`` file, read with ``read(path, spec without split column)``, replaces that split. Shared by every
    task, so ``--task pair`` splits exactly like the others."""
    if spec.split_column:
        assign_splits(examples, valid_values=valid_values, test_values=test_values, path=train_path)
    else:
        assign_splits(examples, valid_fraction=0.0 if valid_path else valid_fraction,
                      test_fraction=0.0 if test_path else test_fraction, seed=split_seed, path=train_path)
    split = split_examples(examples)
    file_spec = replace(spec, split_column=None)
    for name, path in (("valid", valid_path), ("test", test_path)):
        if path:
            split[name] = read(path, file_spec)
            for e in split[name]:
                e.split = name
    return split
