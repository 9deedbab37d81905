"""Ideal A-form nucleotides: the one table of atomic coordinates the 3D builder places.

Each base type is one nucleotide of an A-form duplex, strand 1, in the helix frame: the helix axis is z, strand 1
runs 5'->3' towards -z, and the partner strand is the image under the dyad D = diag(1, -1, -1) (a 180 degree turn
about x). Level k of the helix is the level-0 nucleotide turned by -TWIST*k about z and moved by -RISE*k along z.

Provenance: the coordinates are Open-Source PyMOL's A-form nucleotide fragments (``atpA``, ``ctpA``, ``gtpA``,
``utpA``, file format chempy pickle; PyMOL's open-source licence permits copying with its notice, Copyright
Schrodinger LLC), which PyMOL's ``fnab`` command places; ``O2'`` of A/C/G is taken from ``utpA`` (the sugar
atoms of the four fragments are identical), ``O1P/O2P`` renamed ``OP1/OP2``. They contain no RNA-Puzzles
coordinates. ``RISE`` is the A-RNA fibre value (Arnott et al. 1973, 11 bp per turn, pitch 30.9 A) rather than
PyMOL's A-DNA 2.55 A; the O3'-P distance between levels is then 1.82 A instead of 1.60 A (documented limit).
"""

from __future__ import annotations

import numpy as np

#: Helical twist (degrees) and rise (A) per level of A-RNA.
TWIST = 32.7
RISE = 2.81

#: Backbone atoms, in PDB order; the base atoms follow in each residue's table below.
BACKBONE = ("P", "OP1", "OP2", "O5'", "C5'", "C4'", "O4'", "C3'", "O3'", "C2'", "O2'", "C1'")

_TABLE = {
    "A": (
        ("P", 3.063, 8.025, -4.135),
        ("OP1", 3.223, 8.856, -5.350),
        ("OP2", 1.891, 7.121, -4.118),
        ("O5'", 4.397, 7.181, -3.881),
        ("C5'", 5.621, 7.881, -3.587),
        ("C4'", 6.718, 6.889, -3.258),
        ("O4'", 6.486, 6.363, -1.919),
        ("C3'", 6.776, 5.641, -4.140),
        ("O3'", 7.398, 5.908, -5.390),
        ("C2'", 7.566, 4.726, -3.208),
        ("O2'", 8.962, 4.910, -3.068),
        ("C1'", 6.874, 5.000, -1.877),
        ("N9", 5.666, 4.158, -1.647),
        ("C8", 4.345, 4.449, -1.900),
        ("N7", 3.524, 3.496, -1.584),
        ("C5", 4.348, 2.496, -1.086),
        ("C6", 4.082, 1.215, -0.578),
        ("N6", 2.849, 0.697, -0.485),
        ("N1", 5.134, 0.481, -0.167),
        ("C2", 6.356, 1.001, -0.262),
        ("N3", 6.725, 2.179, -0.716),
        ("C4", 5.655, 2.893, -1.121),
    ),
    "G": (
        ("P", 3.063, 8.025, -4.135),
        ("OP1", 3.223, 8.856, -5.350),
        ("OP2", 1.891, 7.121, -4.118),
        ("O5'", 4.397, 7.181, -3.881),
        ("C5'", 5.621, 7.881, -3.587),
        ("C4'", 6.718, 6.889, -3.258),
        ("O4'", 6.486, 6.363, -1.919),
        ("C3'", 6.776, 5.641, -4.140),
        ("O3'", 7.398, 5.908, -5.390),
        ("C2'", 7.566, 4.726, -3.208),
        ("O2'", 8.962, 4.910, -3.068),
        ("C1'", 6.874, 5.000, -1.877),
        ("N9", 5.666, 4.158, -1.647),
        ("C8", 4.342, 4.447, -1.899),
        ("N7", 3.516, 3.480, -1.579),
        ("C5", 4.351, 2.483, -1.079),
        ("C6", 4.033, 1.195, -0.574),
        ("O6", 2.932, 0.661, -0.462),
        ("N1", 5.185, 0.505, -0.172),
        ("C2", 6.474, 0.995, -0.248),
        ("N2", 7.438, 0.180, 0.188),
        ("N3", 6.771, 2.203, -0.722),
        ("C4", 5.664, 2.886, -1.117),
    ),
    "C": (
        ("P", 3.063, 8.025, -4.135),
        ("OP1", 3.223, 8.856, -5.350),
        ("OP2", 1.891, 7.121, -4.118),
        ("O5'", 4.397, 7.181, -3.881),
        ("C5'", 5.621, 7.881, -3.587),
        ("C4'", 6.718, 6.889, -3.258),
        ("O4'", 6.486, 6.363, -1.919),
        ("C3'", 6.776, 5.641, -4.140),
        ("O3'", 7.398, 5.908, -5.390),
        ("C2'", 7.566, 4.726, -3.208),
        ("O2'", 8.962, 4.910, -3.068),
        ("C1'", 6.874, 5.000, -1.877),
        ("N1", 5.666, 4.158, -1.647),
        ("C2", 5.853, 2.891, -1.100),
        ("O2", 7.001, 2.521, -0.831),
        ("N3", 4.764, 2.108, -0.883),
        ("C4", 3.536, 2.547, -1.188),
        ("N4", 2.508, 1.746, -0.956),
        ("C5", 3.323, 3.847, -1.751),
        ("C6", 4.423, 4.613, -1.961),
    ),
    "U": (
        ("P", 3.063, 8.025, -4.135),
        ("OP1", 3.223, 8.856, -5.350),
        ("OP2", 1.891, 7.121, -4.118),
        ("O5'", 4.397, 7.181, -3.881),
        ("C5'", 5.621, 7.881, -3.587),
        ("C4'", 6.719, 6.889, -3.258),
        ("O4'", 6.486, 6.364, -1.919),
        ("C3'", 6.776, 5.642, -4.140),
        ("O3'", 7.397, 5.908, -5.390),
        ("C2'", 7.567, 4.725, -3.208),
        ("O2'", 8.962, 4.910, -3.068),
        ("C1'", 6.874, 4.999, -1.877),
        ("N1", 5.666, 4.158, -1.647),
        ("C2", 5.867, 2.911, -1.107),
        ("O2", 6.971, 2.482, -0.819),
        ("N3", 4.725, 2.160, -0.908),
        ("C4", 3.431, 2.543, -1.197),
        ("O4", 2.487, 1.783, -0.974),
        ("C5", 3.322, 3.869, -1.760),
        ("C6", 4.416, 4.621, -1.964),
    ),
}

#: base letter -> (atom names, coordinates [n, 3] float64), strand 1, level 0.
TEMPLATES: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
    base: (tuple(row[0] for row in rows), np.array([row[1:] for row in rows], dtype=np.float64))
    for base, rows in _TABLE.items()
}

#: The partner-strand dyad (a proper rotation: det = +1).
DYAD = np.diag([1.0, -1.0, -1.0])


def level_transform(level: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation that move a level-0 nucleotide to ``level`` of the ideal helix (fractional ok)."""
    t = np.radians(-TWIST * level)
    c, s = np.cos(t), np.sin(t)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rot, np.array([0.0, 0.0, -RISE * level])
