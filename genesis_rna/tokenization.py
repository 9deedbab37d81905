"""Nucleotide and codon tokenisers, sequence normalisation and BERT-style masking.

The vocabulary and its ids are fixed (:mod:`genesis_rna.vocab`) so that checkpoints, shards and outputs from different
versions stay compatible: ``[PAD]=0 [MASK]=1 [CLS]=2 [SEP]=3 A=4 C=5 G=6 U=7 N=8``. An encoded sequence is
``[CLS] s1..sL [SEP]``; per-nucleotide outputs drop the two specials so a sequence of length L gives L rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from itertools import product

import torch

from .errors import SequenceError
from .vocab import (  # noqa: F401  (re-exported: the tokenisers' vocabulary and normaliser)
    CLS_ID,
    CLS_TOKEN,
    GAP_CHARS,
    IUPAC_AMBIGUITY,
    MASK_ID,
    MASK_TOKEN,
    N_ID,
    NUCLEOTIDE_IDS,
    NUCLEOTIDES,
    PAD_ID,
    PAD_TOKEN,
    RANDOM_REPLACEMENT_IDS,
    SEP_ID,
    SEP_TOKEN,
    SPECIAL_TOKENS,
    VOCAB,
    count_gaps,
    normalise,
)


class RNATokenizer:
    """Maps RNA strings to the fixed 9-token vocabulary and back.

    Mirrors the parts of HF tokenizers and ESM alphabets people reach for: ``encode``/``decode``,
    ``__call__`` for padded batches with attention masks, and :meth:`batch_convert` for
    ``(name, sequence)`` pairs as ESM's ``alphabet.get_batch_converter()`` does.
    """

    vocab: tuple[str, ...] = VOCAB
    pad_token_id, mask_token_id, cls_token_id, sep_token_id = PAD_ID, MASK_ID, CLS_ID, SEP_ID
    special_token_ids: frozenset[int] = frozenset({PAD_ID, MASK_ID, CLS_ID, SEP_ID})

    def __init__(self) -> None:
        self.token_to_id: dict[str, int] = {t: i for i, t in enumerate(self.vocab)}
        self.id_to_token: dict[int, str] = dict(enumerate(self.vocab))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, sequence: str, *, add_special_tokens: bool = True, record: str | None = None,
               normalised: bool = False) -> list[int]:
        """Token ids of one sequence, ``[CLS] ... [SEP]`` unless ``add_special_tokens`` is False."""
        seq = sequence if normalised else normalise(sequence, record=record)
        ids = [NUCLEOTIDE_IDS[c] for c in seq]
        return [CLS_ID, *ids, SEP_ID] if add_special_tokens else ids

    def decode(self, ids: Iterable[int] | torch.Tensor, *, skip_special_tokens: bool = True) -> str:
        """The nucleotide string for ``ids`` (specials dropped by default)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if skip_special_tokens and i in self.special_token_ids:
                continue
            out.append(self.id_to_token[int(i)])
        return "".join(out)

    def __call__(
        self,
        sequences: str | Sequence[str],
        *,
        padding: bool | str = True,
        truncation: bool = False,
        max_length: int | None = None,
        add_special_tokens: bool = True,
        return_tensors: str | None = "pt",
        records: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor | list[list[int]]]:
        """Encode a batch: ``{"input_ids", "attention_mask"}`` padded to the longest (or ``max_length``).

        ``truncation`` cuts sequences to ``max_length`` tokens keeping ``[SEP]`` last; without it a sequence
        longer than ``max_length`` raises, because silently dropping nucleotides would corrupt results.
        """
        if isinstance(sequences, str):
            sequences = [sequences]
        encoded = []
        for k, seq in enumerate(sequences):
            rec = records[k] if records is not None else f"#{k + 1}"
            ids = self.encode(seq, add_special_tokens=add_special_tokens, record=rec)
            if max_length is not None and len(ids) > max_length:
                if not truncation:
                    raise SequenceError(
                        f"{len(ids)} tokens exceed max_length={max_length} (pass truncation=True)", record=rec
                    )
                ids = ids[: max_length - 1] + [SEP_ID] if add_special_tokens else ids[:max_length]
            encoded.append(ids)
        if padding == "max_length" and max_length is not None:
            width = max_length
        else:
            width = max((len(x) for x in encoded), default=0)
        if not padding:
            if return_tensors == "pt" and len({len(x) for x in encoded}) > 1:
                raise SequenceError("sequences differ in length; use padding=True to return a tensor")
            width = max((len(x) for x in encoded), default=0)
        input_ids = [x + [PAD_ID] * (width - len(x)) for x in encoded]
        mask = [[1] * len(x) + [0] * (width - len(x)) for x in encoded]
        if return_tensors == "pt":
            return {"input_ids": torch.tensor(input_ids, dtype=torch.long).reshape(len(encoded), width),
                    "attention_mask": torch.tensor(mask, dtype=torch.long).reshape(len(encoded), width)}
        return {"input_ids": input_ids, "attention_mask": mask}

    batch_encode = __call__

    def batch_convert(
        self, data: Sequence[tuple[str, str]]
    ) -> tuple[list[str], list[str], torch.Tensor]:
        """ESM-style batch converter: ``(labels, normalised strings, padded tokens [B, T])``."""
        labels = [name for name, _ in data]
        seqs = [normalise(seq, record=name) for name, seq in data]
        batch = self(seqs, records=labels)
        return labels, seqs, batch["input_ids"]

    def get_batch_converter(self):
        """Return :meth:`batch_convert`, for code written against ESM's ``alphabet.get_batch_converter()``."""
        return self.batch_convert

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` (the vocabulary) so a model directory is self-describing."""
        path = os.path.join(directory, "tokenizer.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"type": "RNATokenizer", "vocab": list(self.vocab)}, fh, indent=2)
        os.replace(tmp, path)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike | None = None) -> RNATokenizer:
        """The tokenizer of a model directory; the vocabulary is fixed, so this checks it rather than loads it."""
        tok = cls()
        if directory is not None:
            path = os.path.join(directory, "tokenizer.json")
            if os.path.exists(path):
                with open(path) as fh:
                    vocab = tuple(json.load(fh).get("vocab", ()))
                if vocab != tok.vocab:
                    raise SequenceError(f"tokenizer vocabulary {vocab} differs from genesis-rna's {tok.vocab}",
                                        path=path)
        return tok


class CodonTokenizer:
    """Tokenises coding sequences codon by codon: the same 4 specials, then the 64 ACGU codons (ids 4..67).

    Codons are ordered lexicographically over ``ACGU`` (AAA=4, AAC=5, ..., UUU=67). A length that is not a
    multiple of 3, or a codon containing N, is an error naming the record.
    """

    specials: tuple[str, ...] = SPECIAL_TOKENS
    codons: tuple[str, ...] = tuple("".join(c) for c in product("ACGU", repeat=3))
    vocab: tuple[str, ...] = SPECIAL_TOKENS + codons
    pad_token_id, mask_token_id, cls_token_id, sep_token_id = PAD_ID, MASK_ID, CLS_ID, SEP_ID

    def __init__(self) -> None:
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        self.id_to_token = dict(enumerate(self.vocab))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, sequence: str, *, add_special_tokens: bool = True, record: str | None = None) -> list[int]:
        seq = normalise(sequence, record=record)
        if len(seq) % 3:
            raise SequenceError(f"length {len(seq)} is not a multiple of 3, so it cannot be read as codons",
                                record=record)
        ids = []
        for k in range(0, len(seq), 3):
            codon = seq[k : k + 3]
            if codon not in self.token_to_id:
                raise SequenceError(f"codon {codon!r} contains N; codons must be over A C G U",
                                    record=record, position=k + 1)
            ids.append(self.token_to_id[codon])
        return [CLS_ID, *ids, SEP_ID] if add_special_tokens else ids

    def decode(self, ids: Iterable[int] | torch.Tensor, *, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.id_to_token[int(i)] for i in ids
                       if not (skip_special_tokens and int(i) < len(SPECIAL_TOKENS)))

    def __call__(self, sequences: Sequence[str], *, records: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        encoded = [self.encode(s, record=records[k] if records else f"#{k + 1}") for k, s in enumerate(sequences)]
        width = max((len(x) for x in encoded), default=0)
        ids = torch.full((len(encoded), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for k, x in enumerate(encoded):
            ids[k, : len(x)] = torch.tensor(x)
            mask[k, : len(x)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def random_mask(
    input_ids: torch.Tensor,
    *,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    mask_token_id: int = MASK_ID,
    special_token_ids: Iterable[int] = (PAD_ID, MASK_ID, CLS_ID, SEP_ID),
    replacement_ids: Sequence[int] = RANDOM_REPLACEMENT_IDS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose ``mlm_probability`` of the maskable positions; of those, 80% become ``[MASK]``,
    10% a random base, 10% stay. Returns ``(masked_ids, labels)`` with ``labels = -100`` where not chosen.

    Special tokens and padding are never chosen. Pass a seeded ``torch.Generator`` for reproducible masks
    (validation uses fixed masks so that losses are comparable across runs).
    """
    if not 0.0 <= mlm_probability <= 1.0:
        raise ValueError(f"mlm_probability must be in [0, 1], got {mlm_probability}")
    ids = input_ids.clone()
    maskable = torch.ones_like(ids, dtype=torch.bool)
    for sid in special_token_ids:
        maskable &= ids != sid
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    chosen = (draw < mlm_probability) & maskable
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    action = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    repl = torch.tensor(list(replacement_ids), dtype=ids.dtype, device=ids.device)
    pick = torch.randint(len(repl), ids.shape, generator=generator, device="cpu").to(ids.device)
    ids[to_mask] = mask_token_id
    ids[to_random] = repl[pick][to_random]
    return ids, labels
