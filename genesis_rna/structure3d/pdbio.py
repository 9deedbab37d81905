"""PDB / mmCIF reading and writing through gemmi (a maintained library that knows both formats and gzip).

Reading keeps the polymer nucleotides of the first model, every chain, 5' to 3'; water, ions, ligands and amino
acids are skipped. A nucleotide that is not A/C/G/U (a modified base, DNA) is an error naming chain and residue,
because the builder, the pair annotator and the designer only know the four standard bases. Writing puts the
per-residue confidence in the B-factor column and picks the format from the extension.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError, SequenceError
from .model import BASES, Chain, Model3D, Residue

PDB_SUFFIXES = (".pdb", ".ent", ".pdb.gz", ".ent.gz")
CIF_SUFFIXES = (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")


def structure_format(path: str | os.PathLike) -> str:
    """``"pdb"`` or ``"cif"`` from the file name; anything else is an error (the format must be explicit)."""
    name = os.fspath(path).lower()
    if name.endswith(PDB_SUFFIXES):
        return "pdb"
    if name.endswith(CIF_SUFFIXES):
        return "cif"
    raise FormatError("unknown 3D structure extension: use .pdb, .ent, .cif or .mmcif (optionally .gz)", path=path)


def _is_skipped(name: str) -> bool:
    """Water, ions, ligands, amino acids: present in natives, not part of the RNA."""
    import gemmi

    info = gemmi.find_tabulated_residue(name)
    return info is None or not info.is_nucleic_acid()


def read_structure(path: str | os.PathLike) -> Model3D:
    """The RNA chains of the first model of a PDB or mmCIF file (see the module docstring)."""
    import gemmi

    structure_format(path)
    if not os.path.isfile(path):
        raise FormatError("no such file", path=path)
    try:
        st = gemmi.read_structure(os.fspath(path))
    except (RuntimeError, ValueError) as err:
        raise FormatError(f"not a readable PDB/mmCIF file ({str(err).splitlines()[0]})", path=path) from None
    if len(st) == 0:
        raise FormatError("no models (not a PDB/mmCIF coordinate file?)", path=path)
    chains = []
    for ch in st[0]:
        residues = _read_chain(ch, path)
        if residues:
            chains.append(Chain(ch.name, residues))
    if not chains:
        raise FormatError("no RNA residues (A/C/G/U nucleotides) in the first model", path=path)
    return Model3D(chains)


def _read_chain(ch, path) -> list[Residue]:
    out = []
    for res in ch:
        name = res.name.strip()
        if name not in BASES:
            if _is_skipped(name):
                continue
            raise SequenceError(f"residue {name} {res.seqid.num}{res.seqid.icode.strip()} is not A, C, G or U "
                                "(modified or DNA nucleotides are not supported)", path=path, record=ch.name)
        atoms = [a for a in res if a.element.name != "H" and a.altloc in ("\0", "A")]
        if not atoms:
            continue
        coords = np.array([[a.pos.x, a.pos.y, a.pos.z] for a in atoms], dtype=np.float64)
        out.append(Residue(name, tuple(a.name for a in atoms), coords, float(atoms[0].b_iso), res.seqid.num))
    return out


def to_gemmi(model: Model3D):
    """A gemmi.Structure of the model (one model, one entity per chain), B-factor = residue confidence."""
    import gemmi

    st = gemmi.Structure()
    st.name = "genesis_rna_model"
    gm = gemmi.Model("1")
    serial = 1
    for chain in model.chains:
        gc = gemmi.Chain(chain.id)
        for k, res in enumerate(chain.residues, start=1):
            gr = gemmi.Residue()
            gr.name = res.name
            gr.seqid = gemmi.SeqId(res.number or k, " ")
            gr.entity_type = gemmi.EntityType.Polymer
            for name, xyz in zip(res.atoms, res.coords, strict=True):
                at = gemmi.Atom()
                at.name = name
                at.element = gemmi.Element(name[0])
                at.pos = gemmi.Position(*map(float, xyz))
                at.b_iso = float(res.confidence)
                at.occ = 1.0
                at.serial = serial
                serial += 1
                gr.add_atom(at)
            gc.add_residue(gr)
        gm.add_chain(gc)
    st.add_model(gm)
    st.setup_entities()
    return st


def write_structure(model: Model3D, path: str | os.PathLike) -> None:
    """Write ``model`` as PDB or mmCIF (by extension), atomically; confidence goes to the B-factor column."""
    import gzip

    from .._fileutil import atomic_write

    fmt = structure_format(path)
    st = to_gemmi(model)
    if fmt == "pdb":
        text = st.make_pdb_string(gemmi_pdb_options())
    else:
        st.setup_entities()
        text = st.make_mmcif_document().as_string()
    data = text.encode()
    if os.fspath(path).lower().endswith(".gz"):
        data = gzip.compress(data)
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def gemmi_pdb_options():
    """PDB writing options: no CRYST1/SEQRES noise for a model that has neither cell nor deposited sequence."""
    import gemmi

    return gemmi.PdbWriteOptions(minimal=True)
