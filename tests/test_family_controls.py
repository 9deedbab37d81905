"""Per-family caps and structure exclusion in pretraining data (issues 6 and 9)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis_rna.config import TrainingConfig
from genesis_rna.data.dataset import RNAPretrainDataset
from genesis_rna.data.dummy import make_dummy_store
from genesis_rna.data.loader import pretrain_dataloader
from genesis_rna.data.store import ARCHIVEII_KIND_PATTERN, ShardStore, cap_per_family, resolve_family_list
from genesis_rna.errors import ConfigError

FAMILIES_TSV = Path(__file__).resolve().parents[2] / "shared/data/pretrain/rfam14.2_seed/families.tsv"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1, 4), min_size=0, max_size=80), st.integers(1, 6), st.integers(0, 10))
def test_cap_per_family_properties(family, cap, seed):
    family = np.array(family, dtype=np.int64)
    index = np.arange(len(family)) * 3 + 7  # any increasing global indices
    kept = cap_per_family(index, family, cap, seed)
    assert np.all(np.diff(kept) > 0)  # a subset, in the original order
    assert set(kept) <= set(index)
    kept_family = family[(kept - 7) // 3]
    for f in set(family.tolist()):
        n_all, n_kept = int((family == f).sum()), int((kept_family == f).sum())
        expected = n_all if f < 0 else min(n_all, cap)  # records without a family are never dropped
        assert n_kept == expected


def test_cap_per_family_is_seeded_and_random():
    family = np.zeros(100, dtype=np.int64)
    a = cap_per_family(np.arange(100), family, 10, seed=1)
    assert np.array_equal(a, cap_per_family(np.arange(100), family, 10, seed=1))
    assert not np.array_equal(a, cap_per_family(np.arange(100), family, 10, seed=2))
    assert not np.array_equal(a, np.arange(10))  # not simply the first ten


def test_store_cap_and_structure_exclusion(tmp_path):
    make_dummy_store(tmp_path / "s", n=200, seed=0)
    full = ShardStore(tmp_path / "s", split="train")
    capped = ShardStore(tmp_path / "s", split="train", max_per_family=5, cap_seed=3)
    fam = np.array([capped[i].family for i in range(len(capped))])
    assert len(capped) < len(full) and np.bincount(fam).max() <= 5
    import pickle
    assert len(pickle.loads(pickle.dumps(capped))) == len(capped)  # workers see the same capped view

    target = full.family_ids[full[0].family]
    cfg = TrainingConfig(data_path=str(tmp_path / "s"), structure_exclude_families=target, max_seq_len=200,
                         batch_size=8)
    loader = pretrain_dataloader(cfg, "train", shuffle=False)
    ds: RNAPretrainDataset = loader.dataset
    n_hidden = n_shown = 0
    for i in range(len(ds)):
        item = ds[i]
        if ds.data[i].family == full[0].family:
            assert (item["struct_labels"] == -100).all() and (item["partner"] == -2).all()
            n_hidden += 1
        else:
            n_shown += int((item["struct_labels"] != -100).any())
    assert n_hidden > 0 and n_shown > 0
    with pytest.raises(ConfigError, match="no family"):
        resolve_family_list(full, "RF99999")


@pytest.mark.skipif(not FAMILIES_TSV.exists(), reason="needs ../shared/data")
def test_archiveii_pattern_on_rfam_names():
    """Every Rfam family of ArchiveII's nine kinds matches, and nothing else of Rfam 14.2 does by accident."""
    names = [line.split("\t")[1] for line in FAMILIES_TSV.read_text().splitlines()[1:]]
    hit = {n for n in names if re.match(ARCHIVEII_KIND_PATTERN, n)}
    for must in ("5S_rRNA", "tRNA", "tmRNA", "RNaseP_bact_a", "RNaseP_nuc", "Metazoa_SRP", "Bacteria_small_SRP",
                 "Intron_gpI", "Telomerase-vert", "SSU_rRNA_bacteria", "LSU_rRNA_eukarya"):
        assert must in hit
    for must_not in ("Intron_gpII", "5_8S_rRNA", "U1", "SAM", "ctRNA_pGA1", "isrP"):
        assert must_not not in hit
    assert len(hit) == 34
