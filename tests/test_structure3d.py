"""genesis_rna.structure3d against independent references: A-form parameters by hand, gemmi/Biopython round
trips, pairs read back from built helices, geometry checks on broken models, TM-score of a model with itself,
design recovery by hand."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from genesis_rna.errors import FormatError, SequenceError
from genesis_rna.structure import dotbracket_to_partners, partners_to_dotbracket
from genesis_rna.structure3d import (
    check_geometry,
    find_pairs,
    fold3d,
    read_structure,
    rmsd,
    tm_score,
    write_structure,
)
from genesis_rna.structure3d._aform import RISE, TEMPLATES, TWIST
from genesis_rna.structure3d.build import arc_points
from genesis_rna.structure3d.design3d import recovery, refold_f1

HAIRPIN = ("GGGCGCAAGCUUCGGCUUGCGCCCAA", "((((((((((....))))))))))..")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "structure3d" / "rna_puzzles"


def _helix_model(n: int = 12):
    seq = "G" * n + "AAAA" + "C" * n
    return fold3d(seq, "(" * n + "...." + ")" * n)


def test_aform_rise_twist_radius_by_hand():
    """Consecutive stem residues: C4' radius constant, turn 32.7 degrees and 2.81 A along the axis (z)."""
    model = _helix_model()
    c4 = model.trace("C4'")[:12]
    r = np.hypot(c4[:, 0], c4[:, 1])
    assert np.allclose(r, r[0], atol=1e-6)
    assert 9.0 < r[0] < 10.5  # A-RNA C4' radius is about 9.7 A
    phi = np.degrees(np.unwrap(np.arctan2(c4[:, 1], c4[:, 0])))
    assert np.allclose(np.diff(phi), -TWIST, atol=1e-6)
    assert np.allclose(np.diff(c4[:, 2]), -RISE, atol=1e-6)
    assert abs(360 / TWIST - 11.0) < 0.01  # 11 bp per turn


def test_template_bond_lengths_are_chemical():
    """Covalent bonds inside the template nucleotides are 1.2-1.6 A (an independent sanity check of the table)."""
    bonds = [("P", "OP1"), ("P", "O5'"), ("O5'", "C5'"), ("C5'", "C4'"), ("C4'", "C3'"), ("C3'", "O3'"),
             ("C2'", "O2'"), ("C1'", "O4'")]
    for names, xyz in TEMPLATES.values():
        for a, b in bonds:
            d = np.linalg.norm(xyz[names.index(a)] - xyz[names.index(b)])
            assert 1.2 < d < 1.65, (a, b, d)


def test_pairs_read_back_equal_input_2d():
    model = fold3d(*HAIRPIN)
    assert partners_to_dotbracket(find_pairs(model)) == HAIRPIN[1]
    helix = _helix_model(8)
    assert partners_to_dotbracket(find_pairs(helix)) == helix.structure


def test_pdb_and_mmcif_round_trip_through_gemmi_and_biopython(tmp_path):
    from Bio.PDB import PDBParser

    model = fold3d(*HAIRPIN)
    for name in ("m.pdb", "m.cif", "m.pdb.gz"):
        write_structure(model, tmp_path / name)
        back = read_structure(tmp_path / name)
        assert back.sequence == model.sequence
        assert np.allclose(back.trace("P"), model.trace("P"), atol=1e-3)
        assert np.allclose(back.confidence(), model.confidence(), atol=0.01)
    bio = PDBParser(QUIET=True).get_structure("m", str(tmp_path / "m.pdb"))
    residues = list(bio.get_residues())
    assert "".join(r.get_resname().strip() for r in residues) == HAIRPIN[0]
    assert np.allclose(residues[3]["C4'"].coord, model.residues[3].atom("C4'"), atol=1e-3)
    assert residues[0]["P"].get_bfactor() == pytest.approx(model.residues[0].confidence, abs=0.01)


def test_geometry_ok_on_stem_and_fails_on_broken_model():
    model = _helix_model(6)
    stem = [r for r in model.residues[:6]]
    assert all(3.5 <= np.linalg.norm(stem[k + 1].atom("C4'") - stem[k].atom("C4'")) <= 8.0 for k in range(5))
    broken = _helix_model(6)
    broken.residues[3].coords = broken.residues[3].coords + np.array([30.0, 0, 0])  # pulled out of the chain
    report = check_geometry(broken)
    assert not report.ok and report.bad_c4_steps and report.bad_p_steps
    clash = _helix_model(6)
    clash.residues[4].coords = clash.residues[0].coords.copy()  # two G on one place
    assert check_geometry(clash).clashes
    missing = _helix_model(6)
    res = missing.residues[1]
    keep = [k for k, a in enumerate(res.atoms) if a != "P"]
    res.atoms, res.coords = tuple(res.atoms[k] for k in keep), res.coords[keep]
    assert (1, "P") in check_geometry(missing).missing


def test_tm_score_of_model_with_itself_is_one_and_rmsd_zero():
    model = fold3d(*HAIRPIN)
    c4 = model.trace("C4'")
    assert tm_score(c4, c4, model.sequence, model.sequence) == pytest.approx(1.0, abs=1e-6)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert rmsd(c4 @ rot.T + 5.0, c4) == pytest.approx(0.0, abs=1e-6)


def test_rmsd_by_hand():
    """Two points shifted apart by 2 A after centring: RMSD of a rigid shift is 0, of a stretch known."""
    a = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    b = a * 2.0
    expected = np.sqrt(((a - a.mean(0)) ** 2).sum(1).mean())  # best fit of a scaled copy leaves |a - mean(a)|
    assert rmsd(a, b) == pytest.approx(expected, rel=1e-6)


def test_arc_points_have_equal_steps():
    a, b = np.zeros(3), np.array([12.0, 0, 0])
    pts = arc_points(a, b, 5, np.array([0.0, 1.0, 0.0]))
    full = np.vstack([a, pts, b])
    assert np.allclose(np.linalg.norm(np.diff(full, axis=0), axis=1), 5.9, atol=1e-6)
    assert (pts[:, 1] > 0).all()  # bowed towards the given side


def test_every_residue_present_and_chains_kept():
    model = fold3d("GGGGAAACCCC&GGGAAACCC", "((((...))))&(((...)))", chain_ids=["X", "Y"])
    assert [c.id for c in model.chains] == ["X", "Y"]
    assert model.sequence == "GGGGAAACCCC&GGGAAACCC"
    assert not check_geometry(model).missing
    assert model.structure == "((((...))))&(((...)))"


def test_intermolecular_duplex_pairs_read_back():
    model = fold3d("GGGCGC&GCGCCC", "((((((&))))))")
    assert partners_to_dotbracket(find_pairs(model)) == "(((((())))))"


def test_bad_input_one_line_errors(tmp_path):
    with pytest.raises(SequenceError, match="not A, C, G or U"):
        fold3d("GGGXAAACCC")
    with pytest.raises(SequenceError, match="empty"):
        fold3d("GGGAAACCC&")
    junk = tmp_path / "junk.pdb"
    junk.write_text("this is not a PDB file\n")
    with pytest.raises(FormatError) as err:
        read_structure(junk)
    assert "\n" not in str(err.value)
    with pytest.raises(FormatError, match="extension"):
        read_structure(tmp_path / "x.txt")
    dna = tmp_path / "dna.pdb"
    dna.write_text("ATOM      1  P    DA A   1       0.000   0.000   0.000  1.00  0.00           P\nEND\n")
    with pytest.raises(SequenceError, match="DA"):
        read_structure(dna)


def test_confidence_in_bfactor_is_higher_in_stems():
    model = fold3d(*HAIRPIN)
    conf = model.confidence()
    partner = dotbracket_to_partners(HAIRPIN[1])
    assert conf[partner >= 0].min() > conf[partner < 0].max()
    assert ((conf >= 0) & (conf <= 100)).all()


def test_design_recovery_and_refold_f1_by_hand():
    assert recovery("GGGAAACCC", "GGGAAACCC") == 1.0
    assert recovery("GCGAAACGC", "GGGAAACCC") == pytest.approx(7 / 9)
    assert refold_f1("GGGGAAACCCC", "((((...))))") == pytest.approx(1.0)
    assert refold_f1("AAAAAAAAAAA", "((((...))))") == 0.0


def test_fold3d_seconds_for_200_nt():
    import time

    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGU"), 200))
    import RNA

    ss, _ = RNA.fold(seq)
    start = time.process_time()
    model = fold3d(seq, ss)
    assert time.process_time() - start < 30
    assert len(model.residues) == 200


@pytest.mark.skipif(not (DATA / "rp11_native.pdb.gz").is_file(), reason="RNA-Puzzles natives not available")
def test_native_reads_and_pairs_are_canonical_stems():
    native = read_structure(DATA / "rp11_native.pdb.gz")
    partner = find_pairs(native)
    assert len(native.residues) == 57 and (partner >= 0).sum() >= 30
    with gzip.open(DATA / "rp11_native.pdb.gz", "rt") as fh:
        assert sum(1 for line in fh if line.startswith("ATOM") and " C4'" in line) == 57


def test_loop_closure_joins_backbone_and_model_passes_checks():
    """Loop closure brings every O3'-P link near a bond (ideal 1.6 A; stems 1.82 A; a tight tetraloop < 3.5 A)."""
    def worst_link(model) -> float:
        res = model.residues
        return max(float(np.linalg.norm(res[k + 1].atom("P") - res[k].atom("O3'"))) for k in range(len(res) - 1))

    model = fold3d(*HAIRPIN)
    assert worst_link(model) < 3.5
    assert check_geometry(model).ok, check_geometry(model).summary()
    assert worst_link(fold3d(*HAIRPIN, close_loops=False)) > worst_link(model)


def test_fold3d_file_builds_the_users_dbn_and_names_bad_records(tmp_path):
    from genesis_rna.structure3d import fold3d_file

    good = tmp_path / "two.dbn"
    good.write_text(f">hp\n{HAIRPIN[0]}\n{HAIRPIN[1]}\n>small\nGGGGAAACCCC\n((((...))))\n")
    models = fold3d_file(good)
    assert [rid for rid, _ in models] == ["hp", "small"]
    assert partners_to_dotbracket(find_pairs(models[1][1])) == "((((...))))"
    bad = tmp_path / "bad.dbn"
    bad.write_text(">n\nGGGNAAACCC\n((((..))))\n")
    with pytest.raises(SequenceError) as err:
        fold3d_file(bad)
    assert "bad.dbn" in str(err.value) and "'n'" in str(err.value)
