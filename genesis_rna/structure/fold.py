"""Secondary-structure prediction with a structure model or ViennaRNA, and ``genesis-rna fold``.

:func:`fold_records` runs a structure model (``genesis_rna.structure.model``) or, when none is
available, ViennaRNA's partition function alone, and :func:`write_fold_outputs` writes per record ``<id>.npy``
(float32 L x L, symmetric), ``<id>.ct``, ``<id>.bpseq`` and one ``structures.dbn`` for all records.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._fileutil import safe_filename
from ..errors import CheckpointError, InputError
from .decode import decode

__all__ = [
    "FoldResult", "fold_records", "write_fold_outputs", "run_fold", "FOLD_FORMATS", "DEFAULT_FOLD_MODEL",
    "load_predictor", "predict_windows", "MAX_FOLD_LENGTH", "FOLD_WINDOW",
]

FOLD_FORMATS = ("npy", "ct", "bpseq", "dbn")
DEFAULT_FOLD_MODEL = "genesis-rna-fold-small"
#: sequences up to this length are folded whole; longer ones are predicted in overlapping windows.
FOLD_WINDOW = 512
#: hard limit: the L x L float32 matrix and the O(L^3) decoder become impractical beyond this.
MAX_FOLD_LENGTH = 4000


# ----------------------------------------------------------------------------------------------- predictors
#: MEA threshold on ViennaRNA's own probabilities (Vienna-only mode): 1/(2 gamma) with gamma = 1, as RNAfold --MEA.
VIENNA_THRESHOLD = 0.5


class _Predictor:
    """Something that turns a sequence into an L x L pair-probability matrix."""

    name = "?"
    threshold = 0.5
    window = FOLD_WINDOW

    def predict(self, sequence: str) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class _ViennaPredictor(_Predictor):
    """ViennaRNA's partition function alone (folds the whole sequence, whatever its length)."""

    name = "ViennaRNA (partition function)"
    threshold = VIENNA_THRESHOLD
    window = MAX_FOLD_LENGTH

    def predict(self, sequence: str) -> np.ndarray:
        from .vienna import vienna_prior

        return vienna_prior(sequence)[0]


class _ModelPredictor(_Predictor):
    """A trained structure model (``genesis_rna.structure.model``)."""

    def __init__(self, model, name: str, use_vienna: bool, dtype) -> None:
        self.model, self.name, self.dtype = model, name, dtype
        self.threshold = float(model.config.threshold)
        self.window = int(model.config.max_len)
        if model.config.use_vienna and not use_vienna:
            raise InputError(f"structure model {name} uses the ViennaRNA prior; drop --no-vienna or choose a model "
                             "trained without it")

    def predict(self, sequence: str) -> np.ndarray:
        from .model import predict_proba

        return predict_proba(self.model, sequence, dtype=self.dtype)


class _PairHeadPredictor(_Predictor):
    """A plain encoder's pretraining pair head (sigmoid of its pair logits)."""

    def __init__(self, model, name: str) -> None:
        self.model, self.name = model, f"{name} (pretraining pair head)"
        self.window = int(model.config.max_len) - 2

    def predict(self, sequence: str) -> np.ndarray:
        import torch

        from ..tokenization import RNATokenizer

        ids = RNATokenizer()([sequence])["input_ids"]
        with torch.no_grad():
            z = self.model(ids)["pair_logits"][0, 1:len(sequence) + 1, 1:len(sequence) + 1].float()
        p = torch.sigmoid(z).numpy().astype(np.float32)
        return np.triu(p, 1) + np.triu(p, 1).T


def load_predictor(model: str | os.PathLike | None = None, *, use_vienna: bool = True, dtype=None
                   ) -> tuple[_Predictor, str | None]:
    """The predictor for ``model`` (a structure-model or encoder directory or name) and a note for the user.

    Without ``model`` the shipped ``genesis-rna-fold-small`` is used; when it (or its encoder) is not installed,
    folding falls back to ViennaRNA alone and the note says so. An explicitly named model must load;
    ``"vienna"`` names ViennaRNA's partition function alone.
    """
    import torch

    from ..pretrained import load, resolve_model_dir
    from .model import is_structure_model_dir, load_structure_model

    name = os.fspath(model) if model is not None else DEFAULT_FOLD_MODEL
    if name == "vienna" and not Path(name).is_dir():
        if not use_vienna:
            raise InputError("--model vienna and --no-vienna contradict each other")
        return _ViennaPredictor(), None
    try:
        directory = resolve_model_dir(name)
        if is_structure_model_dir(directory):
            return _ModelPredictor(load_structure_model(directory), name, use_vienna, dtype or torch.float32), None
        encoder = load(directory)[0]
    except CheckpointError as err:
        if model is not None:
            raise
        if not use_vienna:
            raise CheckpointError(f"the default structure model is not available ({err}) and --no-vienna rules "
                                  "out the ViennaRNA fallback") from None
        return _ViennaPredictor(), (f"structure model {DEFAULT_FOLD_MODEL} not available "
                                    f"({str(err).split(';')[0]}); folding with ViennaRNA only")
    if encoder.pair_head is None:
        raise CheckpointError(f"{name}: an encoder without a pair head cannot fold; pass a structure model "
                              "(python -m genesis_rna.structure_model train ...)")
    return _PairHeadPredictor(encoder, name), None


def predict_windows(predictor: _Predictor, sequence: str) -> np.ndarray:
    """Whole-sequence prediction up to the predictor's window; beyond it, windows of that size overlapping by
    half: a pair's probability is the mean over the windows that contain both ends, and pairs farther apart
    than any window covers get 0."""
    from ..model.embed import window_spans

    n = len(sequence)
    if n <= predictor.window:
        return np.asarray(predictor.predict(sequence), dtype=np.float32)
    total = np.zeros((n, n), dtype=np.float32)
    count = np.zeros((n, n), dtype=np.float32)
    for s, e in window_spans(n, predictor.window, predictor.window // 2):
        total[s:e, s:e] += predictor.predict(sequence[s:e])
        count[s:e, s:e] += 1.0
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


# ----------------------------------------------------------------------------------------------- fold
@dataclass
class FoldResult:
    """One folded record: ``bpp`` float32 L x L symmetric, ``partner`` the decoded structure."""

    id: str
    sequence: str
    bpp: np.ndarray = field(repr=False)
    partner: np.ndarray = field(repr=False)
    description: str = ""


def fold_records(records: Sequence, predictor: _Predictor, *, threshold: float | None = None,
                 allow_noncanonical: bool = False, pseudoknots: bool = False, progress: bool = False
                 ) -> Iterator[FoldResult]:
    """Predict and decode each record (``SequenceRecord``-like: ``id``, ``sequence``, ``description``)."""
    from tqdm.auto import tqdm

    t = predictor.threshold if threshold is None else threshold
    for rec in tqdm(records, unit="seq", desc="fold", disable=not progress, dynamic_ncols=True, file=sys.stderr):
        bpp = predict_windows(predictor, rec.sequence)
        bpp = ((bpp + bpp.T) / 2).astype(np.float32)
        partner = decode(bpp, rec.sequence, threshold=t, allow_noncanonical=allow_noncanonical,
                         pseudoknots=pseudoknots)
        yield FoldResult(rec.id, rec.sequence, bpp, partner, getattr(rec, "description", ""))


def _file_stems(ids: Sequence[str]) -> list[str]:
    """File-system-safe, unique names for record ids (``/`` and other odd characters become ``_``)."""
    out, seen = [], set()
    for rid in ids:
        stem = safe_filename(rid).lstrip(".") or "record"
        base, k = stem, 1
        while stem.lower() in seen:
            k += 1
            stem = f"{base}_{k}"
        seen.add(stem.lower())
        out.append(stem)
    return out


def write_fold_outputs(results: Iterable[FoldResult], output: str | os.PathLike,
                       formats: Sequence[str] = FOLD_FORMATS) -> int:
    """Per record ``<id>.npy``/``.ct``/``.bpseq`` and one ``structures.dbn``; every file written atomically.

    ``id`` is made file-system safe (characters outside ``A-Za-z0-9._-`` become ``_``). Returns the count.
    """
    from .._fileutil import atomic_path
    from ..io import StructureRecord, write_bpseq, write_ct, write_dbn

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    bad = sorted(set(formats) - set(FOLD_FORMATS))
    if bad:
        raise InputError(f"unknown output format(s) {', '.join(bad)}: choose from {', '.join(FOLD_FORMATS)}")
    dbn: list = []
    seen: set[str] = set()
    n = 0
    for res in results:
        stem = _file_stems([res.id])[0]
        base, k = stem, 1
        while stem.lower() in seen:
            k += 1
            stem = f"{base}_{k}"
        seen.add(stem.lower())
        rec = StructureRecord(res.id, res.sequence, res.partner, res.description)
        if "npy" in formats:
            with atomic_path(out / f"{stem}.npy", suffix=".npy") as tmp:
                np.save(tmp, res.bpp.astype(np.float32))
        if "ct" in formats:
            write_ct(rec, out / f"{stem}.ct")
        if "bpseq" in formats:
            write_bpseq(rec, out / f"{stem}.bpseq")
        dbn.append(rec)
        n += 1
    if "dbn" in formats and dbn:
        write_dbn(dbn, out / "structures.dbn")
    return n


def run_fold(input_path: str | os.PathLike, output: str | os.PathLike, *, model: str | None = None,
             formats: Sequence[str] = FOLD_FORMATS, threshold: float | None = None, allow_noncanonical: bool = False,
             pseudoknots: bool = False, use_vienna: bool = True, progress: bool = False, dtype=None
             ) -> tuple[int, str, str | None]:
    """``genesis-rna fold``: read FASTA, check every record first, fold, write. Returns (count, model, note)."""
    from ..io import read_fasta

    records = read_fasta(input_path)
    if not records:
        raise InputError("no FASTA records", path=input_path)
    for rec in records:
        if len(rec.sequence) > MAX_FOLD_LENGTH:
            raise InputError(f"sequence of {len(rec.sequence)} nt is longer than the {MAX_FOLD_LENGTH} nt that "
                             "fold handles (the L x L matrix and O(L^3) decoding); split it", path=input_path,
                             record=rec.id)
        if not rec.sequence:
            raise InputError("empty sequence", path=input_path, record=rec.id)
    if threshold is not None and not 0.0 <= threshold < 1.0:
        raise InputError(f"--threshold must be in [0, 1), got {threshold}")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output exists and is not a directory")
    predictor, note = load_predictor(model, use_vienna=use_vienna, dtype=dtype)
    results = fold_records(records, predictor, threshold=threshold, allow_noncanonical=allow_noncanonical,
                           pseudoknots=pseudoknots, progress=progress)
    n = write_fold_outputs(results, output, formats)
    return n, predictor.name, note
