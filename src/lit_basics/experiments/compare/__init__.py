"""Comparisons of named variants over seeds (exercises 2, 4 and 5): runner, tables, figures."""
