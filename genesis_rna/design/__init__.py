"""Sequence design: mutation effects, inverse folding, mRNA codon optimisation."""
