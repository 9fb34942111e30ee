#!/usr/bin/env python
"""Shipped configs over split seeds next to scikit-learn: `python scripts/accuracy.py` (`make accuracy`)."""

from lit_basics.experiments.commands import accuracy_main

if __name__ == "__main__":
    accuracy_main()
