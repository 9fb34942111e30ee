#!/usr/bin/env python
"""Train, validate, test or predict with an FNN: `python scripts/train.py fit --config configs/iris.yaml`."""

from lit_basics.cli import cli_main

if __name__ == "__main__":
    cli_main()
