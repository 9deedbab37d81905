"""Benchmark runners (ArchiveII secondary structure, nRC classification); data paths are arguments. The
project's own goals and tables live in ``benchmarks/``."""
