"""Experiments built from many CLI runs: comparisons (exercises 2, 4, 5) and k-fold search (6)."""
