"""What the server computes besides the library calls: ViennaRNA fallback folding, structure payloads (pairs,
energy, a 2D layout for the page), PCA of embeddings, library results as JSON values."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np


def _jsonable(value: Any) -> Any:
    """Library results (dataclasses, numpy values, DataFrames-as-records) as plain JSON values."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        try:
            return _jsonable(value.to_dict(orient="records"))
        except TypeError:
            return _jsonable(value.to_dict())
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------------------ folding
def fold_vienna(seq: str) -> tuple[np.ndarray, np.ndarray, float]:
    """ViennaRNA MFE structure (partner array), base-pair probabilities (L x L, symmetric) and MFE (kcal/mol)."""
    from ..structure.pairs import dotbracket_to_partners
    from ..structure.vienna import vienna_partition

    _, structure, mfe, bpp = vienna_partition(seq)
    return dotbracket_to_partners(structure), bpp, mfe


def load_fold_predictor(fold_model: str | None = None):
    """``(predictor, note)`` from genesis_rna.structure.fold (a structure model, or its ViennaRNA fallback; the note says
    which)."""
    from ..structure import fold

    predictor, note = fold.load_predictor(fold_model)
    return predictor, note or f"structure predictor: {predictor.name}"


def predict_structure(predictor, rec_id: str, seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Pair probabilities and the decoded (valid, nested) structure from genesis_rna.structure.fold."""
    from ..io import SequenceRecord
    from ..structure.fold import fold_records

    result = next(iter(fold_records([SequenceRecord(rec_id, seq)], predictor)))
    return np.asarray(result.partner), np.asarray(result.bpp, dtype=np.float64)


def structure_energy(seq: str, partner: np.ndarray) -> float | None:
    """ViennaRNA free energy of a nested structure (kcal/mol); None for pseudoknotted ones."""
    import RNA

    from ..structure.pairs import partners_to_dotbracket

    db = partners_to_dotbracket(partner)
    if set(db) - set("()."):
        return None
    return float(RNA.fold_compound(seq).eval_structure(db))


def layout_xy(structure: str) -> list[list[float]]:
    """Nucleotide coordinates of ViennaRNA's "simple" radial layout, one [x, y] per base.

    Chosen over naview (RNAplot's default) because its backbone steps are uniform and, for tRNA-sized
    structures, no two nucleotides overlap; naview squeezes multiloops (3 vs 15 units on tRNA-Phe)."""
    import RNA

    coords = RNA.simple_xy_coordinates(structure)
    return [[round(float(coords[i].X), 2), round(float(coords[i].Y), 2)] for i in range(len(structure))]


def structure_payload(rec_id: str, seq: str, partner: np.ndarray, bpp: np.ndarray | None, energy: float | None,
                      method: str, min_prob: float = 1e-3) -> dict[str, Any]:
    """JSON for one folded sequence: dot-bracket, partners, sparse pair probabilities, layout, CT/DBN text."""
    from ..io import StructureRecord, write_structures
    from ..structure.pairs import partners_to_dotbracket

    record = StructureRecord(rec_id, seq, partner)
    texts = {}
    with tempfile.TemporaryDirectory(prefix="genesis-serve-") as tmp:
        for fmt in ("ct", "dbn"):
            path = Path(tmp) / f"out.{fmt}"
            write_structures(record, path, format=fmt)
            texts[fmt] = path.read_text()
    out: dict[str, Any] = {
        "id": rec_id, "sequence": seq, "length": len(seq), "method": method,
        "structure": partners_to_dotbracket(partner), "partners": partner.tolist(),
        "energy": None if energy is None else round(energy, 2), "layout": layout_xy(partners_to_dotbracket(partner)), "ct": texts["ct"],
        "dbn": texts["dbn"], "bpp_min_prob": min_prob, "bpp": [],
    }
    if bpp is not None:
        i, j = np.nonzero(np.triu(bpp, 1) >= min_prob)
        out["bpp"] = [[int(a), int(b), round(float(bpp[a, b]), 5)] for a, b in zip(i, j, strict=True)]
    return out


def pca_2d(x: np.ndarray) -> dict[str, Any]:
    """Project rows of ``x`` on their first two principal components (centred SVD, as sklearn's PCA)."""
    centred = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    k = min(2, vt.shape[0])
    coords = centred @ vt[:k].T
    if k < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - k))])
    var = s**2
    ratio = (var[:k] / var.sum()).tolist() if var.sum() > 0 else [0.0] * k
    return {"coords": np.round(coords, 6).tolist(), "explained_variance_ratio": ratio}
