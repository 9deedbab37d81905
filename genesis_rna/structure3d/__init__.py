"""3D structure: RNA models from 2D, PDB/mmCIF I/O, pairs from coordinates, geometry checks, design from 3D.

Public API::

    model = fold3d("GGGAAACCC")              # 2D from genesis_rna.fold, then the 3D builder
    models = fold3d_file("my.dbn")           # the user's own 2D (.dbn/.ct/.bpseq through genesis_rna.io)
    write_structure(model, "model.pdb")      # or .cif; confidence in the B-factor column
    native = read_structure("native.pdb")
    partner = find_pairs(native)             # canonical pairs by H-bond geometry
    result = design_from_pdb("native.pdb", n=10)

See docs/structure3d.md for the method and its limits.
"""

from .fold3d import fold3d, fold3d_file, predict_2d, split_chains
from .geometry import GeometryReport, check_geometry, rmsd, tm_score
from .model import Chain, Model3D, Residue
from .pairs import find_pairs
from .pdbio import read_structure, write_structure

__all__ = ["fold3d", "fold3d_file", "predict_2d", "split_chains", "write_structure", "read_structure", "find_pairs",
           "check_geometry", "GeometryReport", "rmsd", "tm_score", "Model3D", "Chain", "Residue"]
