"""Request bodies of the REST API (pydantic models; unknown fields are refused)."""

from __future__ import annotations

from typing import Literal

from ..errors import GenesisRNAError

try:
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise GenesisRNAError("genesis-rna serve needs the [serve] extra: pip install 'genesis-rna[serve]'") from exc

ID_PATTERN = r"^[^\s>]{1,100}$"


# ------------------------------------------------------------------------------------------------ schemas
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SequenceIn(_Strict):
    id: str = Field("query", pattern=ID_PATTERN, description="record id (no whitespace)")
    sequence: str = Field(..., min_length=1, max_length=200_000,
                          description="RNA or DNA letters (T->U, IUPAC->N, gaps removed)")


class EmbedRequest(_Strict):
    records: list[SequenceIn] = Field(..., min_length=1, description="sequences to embed (unique ids)")
    layer: int = Field(-1, ge=-100, le=100, description="representation layer; -1 = last, 0 = token embedding")
    per_token: bool = Field(False, description="also return one vector per nucleotide")
    pca: bool = Field(True, description="2-D PCA of the mean embeddings (needs >= 2 records)")


class AttentionRequest(SequenceIn):
    layer: int = Field(-1, ge=-100, le=100, description="1..n_layers, or negative from the end (-1 = last)")
    head: int | None = Field(None, ge=0, le=1000, description="head index; null = mean over heads")


class FoldRequest(SequenceIn):
    method: Literal["auto", "viennarna-mfe"] = Field(
        "auto", description="auto: this server's structure predictor (genesis_rna.structure.fold: a structure model, or "
                            "ViennaRNA pair probabilities with MEA decoding when none is installed); "
                            "viennarna-mfe: ViennaRNA's minimum free energy structure")


class MutationRequest(SequenceIn):
    variants: list[str] | None = Field(
        None, min_length=1, description="variants such as 'A23G' or 'A23G:C40U' (1-based); null = every single substitution")


class DesignRequest(_Strict):
    structure: str = Field(..., min_length=1, max_length=200_000, description="target dot-bracket structure")
    n: int = Field(5, ge=1, le=1000, description="number of sequences to propose")
    seed: int = Field(0, ge=0, le=2**31 - 1)
