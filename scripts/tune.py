#!/usr/bin/env python
"""k-fold hyperparameter search: `python scripts/tune.py --config configs/experiments/tune_digits.yaml`."""

from lit_basics.experiments.commands import tune_main

if __name__ == "__main__":
    tune_main()
