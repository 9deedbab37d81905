"""genesis-rna: an RNA foundation-model toolkit.

The public API, for users of RNA-FM and ESM::

    import genesis_rna
    model, tokenizer = genesis_rna.load("genesis-rna-small")        # or a model directory
    labels, seqs, tokens = tokenizer.batch_convert([("tRNA", "GCGGAUUUAGCUC...")])
    out = model(tokens, repr_layers=[-1])
    emb = out["representations"][model.config.n_layers][0, 1:-1]   # exactly L rows

Names resolve lazily so ``genesis-rna --help`` starts without importing PyTorch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "GenesisRNAError": "errors", "InputError": "errors", "SequenceError": "errors", "StructureError": "errors",
    "FormatError": "errors", "ConfigError": "errors", "CheckpointError": "errors",
    "GenesisRNAConfig": "config", "TrainingConfig": "config",
    "RNATokenizer": "tokenization", "CodonTokenizer": "tokenization", "normalise": "tokenization",
    "random_mask": "tokenization",
    "GenesisRNAEncoder": "model.encoder", "GenesisRNAModel": "model.encoder",
    "load": "pretrained", "genesis_rna_small": "pretrained", "available_models": "pretrained",
    "random_model": "pretrained",
    "embed_sequences": "model.embed",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:  # genesis_rna.pretrained.genesis_rna_small() without importing the submodule first
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'genesis_rna' has no attribute {name!r}")


# attribute -> module; the old flat names (fold, mutations, ...) lead to the modules' places in the folders
_SUBMODULES = {"pretrained": "pretrained", "inference": "model.embed", "structure": "structure", "io": "io",
               "data": "data", "training": "training", "fold": "structure.fold", "mutations": "design.mutations",
               "design": "design", "mrna": "design.mrna", "config": "config", "model": "model",
               "heads": "model.heads", "losses": "training.losses", "tokenization": "tokenization"}


def __dir__() -> list[str]:
    return __all__
