"""Zero-shot mutation-effect scores from the masked-language-model head (``genesis-rna score-mutations``).

A variant is scored by how much more (or less) the model expects the mutant bases than the wild-type ones,
the masked-marginal log-likelihood ratio of ESM-1v (Meier et al. 2021)::

    score = sum over mutated positions i of  log p(mut_i | wt with i masked) - log p(wt_i | wt with i masked)

Every position needs one forward pass of the wild type with that position masked, whatever the variant, so a
whole variant set (or a saturation scan: all 3L single substitutions) costs at most L masked forwards, which are
batched. The ``wt-marginal`` method uses the log-probabilities of one unmasked forward of the wild type instead
(one pass in all; ESM-1v's "wildtype marginal"). Higher scores mean "more like what the model has seen", which
for functional RNAs tracks fitness.

Variants are written ``A23G`` (1-based position, wild-type base, mutant base) and combined with ``:`` or ``,``
(``A23G:C40U``); ``T`` is read as ``U``. Each is checked against the wild type, and a mismatch is an error that
names the variant. Full-length mutant sequences (FASTA or a CSV ``sequence`` column) are turned into the same
substitutions; insertions and deletions are not scored by this method.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import CheckpointError, InputError, SequenceError
from .inference import autocast_context, resolve_device, resolve_dtype, token_budget_batches
from .tokenization import CLS_ID, MASK_ID, NUCLEOTIDE_IDS, PAD_ID, SEP_ID

BASES = "ACGU"
BASE_IDS = [NUCLEOTIDE_IDS[b] for b in BASES]
METHODS = ("masked-marginal", "wt-marginal")
_SUBSTITUTION = re.compile(r"^([A-Za-z*])(\d+)([A-Za-z*])$")


@dataclass(frozen=True)
class Substitution:
    """One point substitution: 0-based ``position``, wild-type base ``wt``, mutant base ``mut`` (ACGU)."""

    position: int
    wt: str
    mut: str

    def __str__(self) -> str:
        return f"{self.wt}{self.position + 1}{self.mut}"


@dataclass
class VariantScore:
    """Score of one variant: its id, the substitutions (``A23G:C40U`` form), mutant sequence and score."""

    id: str
    variant: str
    n_mutations: int
    score: float
    sequence: str


# --------------------------------------------------------------------------------------------- parsing
def _base(letter: str, spec: str, what: str) -> str:
    """``letter`` as an RNA base (T -> U); anything else is an error naming the variant."""
    b = letter.upper().replace("T", "U")
    if b not in BASES:
        raise InputError(f"variant {spec!r}: {what} {letter!r} is not a nucleotide (A C G U/T)")
    return b


def parse_variant(spec: str, wild_type: str) -> tuple[Substitution, ...]:
    """``"A23G"`` or ``"A23G:C40U"`` (also ``,``-separated) -> substitutions, checked against ``wild_type``.

    Errors (one line, naming the variant): malformed text, a letter that is not a nucleotide, a position outside
    1..L, a wild-type base that differs from the wild type's, a mutant base equal to the wild type's, and the same
    position twice.
    """
    text = spec.strip()
    if not text:
        raise InputError("empty variant")
    subs: list[Substitution] = []
    for part in re.split(r"[:,]", text):
        match = _SUBSTITUTION.match(part.strip())
        if not match:
            raise InputError(f"variant {spec!r}: cannot read {part.strip()!r}; write substitutions as A23G "
                             "(wild-type base, 1-based position, mutant base), joined by ':'")
        wt = _base(match.group(1), spec, "wild-type letter")
        mut = _base(match.group(3), spec, "mutant letter")
        pos = int(match.group(2))
        if not 1 <= pos <= len(wild_type):
            raise InputError(f"variant {spec!r}: position {pos} outside the wild type (1..{len(wild_type)})")
        if wild_type[pos - 1] != wt:
            raise InputError(f"variant {spec!r}: the wild type has {wild_type[pos - 1]} at position {pos}, not {wt}")
        if mut == wt:
            raise InputError(f"variant {spec!r}: mutant base equals the wild-type base at position {pos}")
        if any(s.position == pos - 1 for s in subs):
            raise InputError(f"variant {spec!r}: position {pos} is mutated twice")
        subs.append(Substitution(pos - 1, wt, mut))
    return tuple(sorted(subs, key=lambda s: s.position))


def format_variant(subs: Iterable[Substitution]) -> str:
    """``A23G:C40U`` (sorted by position); the wild type itself is written ``WT``."""
    text = ":".join(str(s) for s in sorted(subs, key=lambda s: s.position))
    return text or "WT"


def apply_variant(wild_type: str, subs: Iterable[Substitution]) -> str:
    """The mutant sequence: ``wild_type`` with every substitution applied (checked against the wild type)."""
    seq = list(wild_type)
    for s in subs:
        if seq[s.position] != s.wt:
            raise InputError(f"substitution {s}: the wild type has {wild_type[s.position]} at {s.position + 1}")
        seq[s.position] = s.mut
    return "".join(seq)


def substitutions_between(wild_type: str, sequence: str, record: str | None = None) -> tuple[Substitution, ...]:
    """The substitutions that turn ``wild_type`` into ``sequence`` (same length; N in the mutant is refused)."""
    if len(sequence) != len(wild_type):
        raise SequenceError(f"length {len(sequence)} differs from the wild type's {len(wild_type)}; only "
                            "substitutions can be scored (no insertions or deletions)", record=record)
    subs = []
    for i, (a, b) in enumerate(zip(wild_type, sequence, strict=True)):
        if a != b:
            if b not in BASES or a not in BASES:
                raise SequenceError(f"position {i + 1}: {a}->{b}; only A C G U substitutions can be scored",
                                    record=record)
            subs.append(Substitution(i, a, b))
    return tuple(subs)


def saturation_variants(wild_type: str) -> list[tuple[Substitution, ...]]:
    """Every single substitution of ``wild_type`` (3 per A/C/G/U position), position by position, ACGU order."""
    return [(Substitution(i, w, b),) for i, w in enumerate(wild_type) if w in BASES for b in BASES if b != w]


def read_variants(path: str | os.PathLike, wild_type: str) -> list[tuple[str, tuple[Substitution, ...]]]:
    """``(id, substitutions)`` from a variant file: FASTA of full sequences, CSV, or one variant per line.

    CSV (first line a header with ``,``): a ``mutant``/``variant``/``mutations`` column of ``A23G:C40U`` strings, or
    a ``sequence`` column of full mutant sequences; an ``id`` column names rows (default: the variant). Plain text:
    one variant per line, ``#`` comments and blank lines skipped. Errors name the file and the line.
    """
    from .io import read_fasta
    from .io._text import numbered_lines
    from .tokenization import normalise

    lines = list(numbered_lines(path, "variant"))
    first = next((ln for _, ln in lines if ln.strip() and not ln.startswith("#")), "")
    if first.lstrip().startswith(">"):
        return [(r.id, substitutions_between(wild_type, r.sequence, r.id)) for r in read_fasta(path)]
    out: list[tuple[str, tuple[Substitution, ...]]] = []
    header = {c.strip().strip('"').lower() for c in first.split(",")}
    if header & {"mutant", "variant", "mutations", "mutation", "sequence", "seq"}:
        rows = csv.DictReader(ln for _, ln in lines if ln.strip())
        cols = {c.strip().lower(): c for c in rows.fieldnames or []}
        var_col = next((cols[c] for c in ("mutant", "variant", "mutations", "mutation") if c in cols), None)
        seq_col = cols.get("sequence") or cols.get("seq")
        if var_col is None and seq_col is None:
            raise InputError("CSV needs a 'mutant' (A23G:C40U) or a 'sequence' column", path=path, line=1)
        for k, row in enumerate(rows):
            line = k + 2
            try:
                if var_col is not None:
                    subs = parse_variant(row[var_col] or "", wild_type)
                else:
                    seq = normalise(row[seq_col] or "", record=f"row {k + 1}")
                    subs = substitutions_between(wild_type, seq)
            except InputError as err:
                raise err.with_context(path=path, line=line) from None
            rid = (row.get(cols["id"]) if "id" in cols else None) or format_variant(subs)
            out.append((rid, subs))
        return out
    for lineno, line in lines:
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            subs = parse_variant(text, wild_type)
        except InputError as err:
            raise err.with_context(path=path, line=lineno) from None
        out.append((format_variant(subs), subs))
    if not out:
        raise InputError("no variants in file", path=path)
    return out


# --------------------------------------------------------------------------------------------- model passes
def _window(length: int, positions: Sequence[int], window: int) -> tuple[int, int]:
    """``[start, end)`` of at most ``window`` nucleotides containing ``positions``, centred on them."""
    if length <= window:
        return 0, length
    lo, hi = min(positions), max(positions)
    if hi - lo + 1 > window:
        raise InputError(f"positions {lo + 1} and {hi + 1} are farther apart than the model's window of {window} nt")
    centre = (lo + hi) // 2
    start = min(max(0, centre - window // 2), length - window)
    return start, start + window


def _ready(model: torch.nn.Module, dev: torch.device) -> None:
    """Eval mode on ``dev``; skipped when already so (``.to`` walks every parameter: costly in inner loops)."""
    if model.training:
        model.eval()
    param = next(model.parameters(), None)
    if param is not None and param.device != dev:
        model.to(dev)


def masked_log_probs(
    model: torch.nn.Module,
    items: Sequence[tuple[str, Sequence[int]]],
    *,
    tokens_per_batch: int = 16384,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
) -> list[np.ndarray]:
    """For each ``(sequence, positions)``: mask those positions together, return ``[len(positions), 4]``
    log-probabilities of A, C, G, U there (log-softmax over the model's whole vocabulary, as ESM does).

    All items run as a few padded batches (token budget ``tokens_per_batch``). Sequences longer than the
    model's window are cut to a window centred on the masked positions.
    """
    if getattr(model, "mlm_head", None) is None:
        raise CheckpointError("this model has no MLM head, so it cannot score nucleotides")
    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    window = model.config.max_len - 2
    encoded = []
    for seq, positions in items:
        start, end = _window(len(seq), positions, window)
        ids = [CLS_ID] + [NUCLEOTIDE_IDS[c] for c in seq[start:end]] + [SEP_ID]
        rows = [p - start + 1 for p in positions]
        for r in rows:
            ids[r] = MASK_ID
        encoded.append((ids, rows))
    out: list[np.ndarray | None] = [None] * len(items)
    _ready(model, dev)
    for batch in token_budget_batches([len(e[0]) for e in encoded], tokens_per_batch):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        for k, i in enumerate(batch):
            ids[k, : len(encoded[i][0])] = torch.tensor(encoded[i][0])
        ids = ids.to(dev)
        with torch.no_grad(), autocast_context(dev, cdtype):
            hidden = model(ids, attention_mask=ids != PAD_ID, return_logits=False)["last_hidden_state"]
            bidx = torch.tensor([k for k, i in enumerate(batch) for _ in encoded[i][1]], dtype=torch.long)
            ridx = torch.tensor([r for i in batch for r in encoded[i][1]], dtype=torch.long)
            logits = model.mlm_head(hidden[bidx.to(dev), ridx.to(dev)])  # only the masked rows
        logp = torch.log_softmax(logits.float(), dim=-1)[:, BASE_IDS].cpu().numpy()
        offset = 0
        for i in batch:
            n = len(encoded[i][1])
            out[i] = logp[offset : offset + n]
            offset += n
    return out  # type: ignore[return-value]


def unmasked_log_probs(model: torch.nn.Module, sequence: str, *, device: str | torch.device = "cpu",
                       dtype: str = "fp32") -> np.ndarray:
    """``[L, 4]`` log-probabilities of A, C, G, U at every position from one unmasked forward (windows if long)."""
    from .inference import window_owner, window_spans

    dev = resolve_device(device)
    cdtype = resolve_dtype(dtype, dev)
    spans = window_spans(len(sequence), model.config.max_len - 2)
    owner = window_owner(len(sequence), spans)
    out = np.zeros((len(sequence), 4), dtype=np.float32)
    _ready(model, dev)
    for k, (s, e) in enumerate(spans):
        ids = torch.tensor([[CLS_ID] + [NUCLEOTIDE_IDS[c] for c in sequence[s:e]] + [SEP_ID]], device=dev)
        with torch.no_grad(), autocast_context(dev, cdtype):
            logits = model(ids, return_pair_logits=False)["mlm_logits"][0, 1:-1]
        logp = torch.log_softmax(logits.float(), dim=-1)[:, BASE_IDS].cpu().numpy()
        mine = np.nonzero(owner == k)[0]
        out[mine] = logp[mine - s]
    return out


def site_log_probs(model: torch.nn.Module, wild_type: str, positions: Iterable[int], *,
                   method: str = "masked-marginal", tokens_per_batch: int = 16384,
                   device: str | torch.device = "cpu", dtype: str = "fp32") -> dict[int, np.ndarray]:
    """``{position: [4] log-probs of ACGU}`` for the wild type: masked at each position alone (one forward per
    position, all batched) or, with ``wt-marginal``, read from one unmasked forward."""
    positions = sorted(set(positions))
    if method == "wt-marginal":
        table = unmasked_log_probs(model, wild_type, device=device, dtype=dtype)
        return {p: table[p] for p in positions}
    if method != "masked-marginal":
        raise InputError(f"unknown scoring method {method!r}; use one of {', '.join(METHODS)}")
    rows = masked_log_probs(model, [(wild_type, [p]) for p in positions], tokens_per_batch=tokens_per_batch,
                            device=device, dtype=dtype)
    return {p: r[0] for p, r in zip(positions, rows, strict=True)}


def score_variants(
    model: torch.nn.Module,
    wild_type: str,
    variants: Sequence[tuple[str, Sequence[Substitution]]],
    *,
    method: str = "masked-marginal",
    tokens_per_batch: int = 16384,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
) -> list[VariantScore]:
    """Zero-shot score of every ``(id, substitutions)`` (see the module docstring), in input order.

    Only the positions some variant mutates are masked, each once, whatever the number of variants.
    """
    if not wild_type or any(c not in BASES + "N" for c in wild_type):
        raise SequenceError("the wild type must be a normalised nucleotide sequence (A C G U N)")
    table = site_log_probs(model, wild_type, (s.position for _, subs in variants for s in subs), method=method,
                           tokens_per_batch=tokens_per_batch, device=device, dtype=dtype)
    out = []
    for rid, subs in variants:
        score = math.fsum(float(table[s.position][BASES.index(s.mut)] - table[s.position][BASES.index(s.wt)])
                          for s in subs)
        out.append(VariantScore(rid, format_variant(subs), len(subs), score, apply_variant(wild_type, subs)))
    return out


def scan(model: torch.nn.Module, wild_type: str, **kwargs) -> list[VariantScore]:
    """Saturation mutagenesis: every single substitution of the wild type, scored with L masked forwards."""
    variants = [(format_variant(v), v) for v in saturation_variants(wild_type)]
    return score_variants(model, wild_type, variants, **kwargs)


def write_scores_csv(scores: Sequence[VariantScore], path: str | os.PathLike, *, method: str) -> None:
    """CSV ``id,variant,n_mutations,score,method,sequence`` written atomically (temporary name, then rename)."""
    from .io._text import open_output

    with open_output(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "variant", "n_mutations", "score", "method", "sequence"])
        for s in scores:
            writer.writerow([s.id, s.variant, s.n_mutations, f"{s.score:.6g}", method, s.sequence])


__all__ = [
    "Substitution", "VariantScore", "METHODS", "parse_variant", "format_variant", "apply_variant",
    "substitutions_between", "saturation_variants", "read_variants", "masked_log_probs", "unmasked_log_probs",
    "site_log_probs", "score_variants", "scan", "write_scores_csv",
]
