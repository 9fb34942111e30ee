#!/usr/bin/env python
"""Compare variants over seeds: `python scripts/compare.py --config configs/experiments/activations.yaml`."""

from lit_basics.experiments.commands import compare_main

if __name__ == "__main__":
    compare_main()
