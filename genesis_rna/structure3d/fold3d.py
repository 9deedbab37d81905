"""``fold3d``: sequence (one or more chains) -> 2D (genesis_rna.fold, ViennaRNA or the user's) -> 3D model.

Chains. Several chains are joined into one sequence with a linker of ``LINKER`` unpaired ``N`` for the 2D (the
predictor sees the linker, its rows and columns of the pair-probability matrix are zeroed before decoding, so
intermolecular pairs are possible and linker pairs are not) and for the 3D build (the linker residues bridge the
chains as a loop); the linker is removed from the model, which keeps the chains and their ids.

Confidence (B-factor column, 0-100). ``100 * p * w``: ``p`` the probability of the residue's 2D state under the
predictor (pair probability with its partner, or the probability of being unpaired; 1 for a structure the user
gave), ``w`` how far the builder trusts its geometry for the element (stem 0.9, interior loop 0.6, hairpin 0.5,
junction and single strands 0.35). It ranks residues; it is not calibrated to an error in A.
"""

from __future__ import annotations

import numpy as np

from ..errors import SequenceError, StructureError
from .build import assemble, build_coordinates, residues_from_frames
from .model import BASES, Model3D
from .refine import refine

LINKER = "NNNNN"
ELEMENT_WEIGHT = {"stem": 0.9, "interior": 0.6, "hairpin": 0.5, "junction": 0.35, "exterior": 0.35}
CHAIN_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def split_chains(sequence: str | list[str] | tuple[str, ...]) -> list[str]:
    """Chain sequences, normalised (uppercase, T->U); one-line errors for empty chains and non-ACGU letters."""
    parts = sequence.split("&") if isinstance(sequence, str) else list(sequence)
    out = []
    for k, raw in enumerate(parts, start=1):
        seq = "".join(raw.split()).upper().replace("T", "U")
        if not seq:
            raise SequenceError(f"chain {k} is empty")
        bad = next((p for p, c in enumerate(seq) if c not in BASES), None)
        if bad is not None:
            raise SequenceError(f"chain {k}: character {seq[bad]!r} is not A, C, G or U (3D models need "
                                "standard bases)", position=bad + 1)
        out.append(seq)
    if not out:
        raise SequenceError("no sequence")
    return out


def joined(chains: list[str]) -> tuple[str, np.ndarray]:
    """Chains joined by the linker, and a mask that is True on chain (not linker) positions."""
    seq = LINKER.join(chains)
    keep = np.ones(len(seq), dtype=bool)
    k = 0
    for c in chains[:-1]:
        k += len(c)
        keep[k:k + len(LINKER)] = False
        k += len(LINKER)
    return seq, keep


def parse_structure(structure, chains: list[str]) -> np.ndarray:
    """Partner array over the concatenated chains from a dot-bracket (``&`` optional) or a partner array."""
    from ..structure import dotbracket_to_partners, validate_partners

    total = sum(len(c) for c in chains)
    if isinstance(structure, str):
        text = structure.replace("&", "").strip()
        if len(text) != total:
            raise StructureError(f"structure has {len(text)} positions, the sequence {total}")
        return dotbracket_to_partners(text)
    partner = validate_partners(np.asarray(structure), total)
    return np.asarray(partner, dtype=np.int64)


def predict_2d(chains: list[str], predictor=None, *, method: str = "fold") -> tuple[np.ndarray, np.ndarray]:
    """Partner array and pair-probability matrix over the concatenated chains.

    ``method="fold"``: genesis_rna.fold's predictor (``load_predictor()`` default, shipped
    genesis-rna-fold-small or its ViennaRNA fallback). ``method="mfe"``: ViennaRNA's MFE structure, linker held
    unpaired, probabilities from its partition function with the same constraint.
    """
    seq, keep = joined(chains)
    if method == "mfe":
        partner, bpp = _vienna_mfe(seq, keep)
    else:
        from ._compat import fold_module

        fold = fold_module()
        if predictor is None:
            predictor = fold.load_predictor()[0]
        bpp = fold.predict_windows(predictor, seq)
        bpp = ((bpp + bpp.T) / 2).astype(np.float32)
        bpp[~keep, :] = 0.0
        bpp[:, ~keep] = 0.0
        partner = fold.decode(bpp, seq, threshold=predictor.threshold)
    return _drop(partner, keep), bpp[np.ix_(keep, keep)]


def _vienna_mfe(seq: str, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import RNA

    from ..structure import dotbracket_to_partners

    fc = RNA.fold_compound(seq.replace("N", "A"))
    for i in np.flatnonzero(~keep):
        fc.hc_add_up(int(i) + 1)
    ss, mfe = fc.mfe()
    fc.exp_params_rescale(mfe)
    fc.pf()
    bpp = np.array(fc.bpp())[1:, 1:]
    return dotbracket_to_partners(ss), (bpp + bpp.T).astype(np.float32)


def _drop(partner: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Partner array restricted to kept positions (indices renumbered)."""
    new_index = np.cumsum(keep) - 1
    out = np.full(int(keep.sum()), -1, dtype=np.int64)
    for i in np.flatnonzero(keep):
        j = partner[i]
        if j >= 0 and keep[j]:
            out[new_index[i]] = new_index[j]
    return out


def _expand(partner: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Partner array over chains -> over the linker-joined sequence (linker unpaired)."""
    pos = np.flatnonzero(keep)
    out = np.full(len(keep), -1, dtype=np.int64)
    for i, j in enumerate(partner):
        if j >= 0:
            out[pos[i]] = pos[j]
    return out


def state_probability(partner: np.ndarray, bpp: np.ndarray | None) -> np.ndarray:
    """Probability of each residue's 2D state (paired with its partner, or unpaired) under ``bpp``."""
    if bpp is None:
        return np.ones(len(partner))
    unpaired = np.clip(1.0 - bpp.sum(axis=1), 0.0, 1.0)
    paired = bpp[np.arange(len(partner)), np.maximum(partner, 0)]
    return np.where(partner >= 0, paired, unpaired)


def fold3d(sequence: str | list[str], structure=None, *, predictor=None, method: str = "fold", seed: int = 0,
           chain_ids: list[str] | None = None, close_loops: bool = True) -> Model3D:
    """A full-atom 3D model of ``sequence`` (chains separated by '&' or given as a list).

    ``structure``: a dot-bracket or partner array over the chains; None predicts it (``method`` "fold" or
    "mfe", see :func:`predict_2d`). The model's ``notes`` keep the 2D used and the element of each residue.
    """
    chains = split_chains(sequence)
    ids = list(chain_ids) if chain_ids else list(CHAIN_IDS[:len(chains)])
    if len(ids) != len(chains):
        raise SequenceError(f"{len(ids)} chain ids for {len(chains)} chains")
    if structure is None:
        partner, bpp = predict_2d(chains, predictor, method=method)
    else:
        partner, bpp = parse_structure(structure, chains), None
    return build_model(chains, partner, bpp, ids, seed=seed, close_loops=close_loops)


def build_model(chains: list[str], partner: np.ndarray, bpp: np.ndarray | None, ids: list[str], *,
                seed: int = 0, close_loops: bool = True) -> Model3D:
    """Build, close loops (:mod:`.refine`, unless ``close_loops`` is False), assemble chains, set confidences."""
    from ..structure import partners_to_dotbracket

    seq, keep = joined(chains)
    rot, trans, kind = build_coordinates(seq, _expand(partner, keep), seed=seed)
    if close_loops:
        refine(seq, rot, trans, np.array([k != "stem" for k in kind]), np.zeros(len(seq), dtype=bool))
    residues = residues_from_frames(seq, rot, trans)
    kinds = [k for k, ok in zip(kind, keep, strict=True) if ok]
    model = Model3D(assemble(list(zip(ids, chains, strict=True)), residues, keep))
    prob = state_probability(partner, bpp)
    for res, p, k in zip(model.residues, prob, kinds, strict=True):
        res.confidence = round(float(100.0 * p * ELEMENT_WEIGHT[k]), 2)
    db = partners_to_dotbracket(partner)
    cuts = np.cumsum([len(c) for c in chains])[:-1]
    model.structure = "&".join(db[a:b] for a, b in zip([0, *cuts], [*cuts, len(db)], strict=True))
    model.notes["elements"] = kinds
    return model


def fold3d_file(path, **kwargs) -> list[tuple[str, Model3D]]:
    """``(record id, model)`` for every record of a 2D file the io module reads (.dbn, .ct, .bpseq, ...): the
    user's own secondary structures, built without prediction. Keywords go to :func:`fold3d`."""
    from ..errors import InputError
    from ..io import read_structures

    out = []
    for rec in read_structures(path):
        try:
            out.append((rec.id, fold3d(rec.sequence, rec.partner, **kwargs)))
        except InputError as err:
            raise err.with_context(path=path, record=rec.id) from None
    return out
