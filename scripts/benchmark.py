#!/usr/bin/env python
"""Speed and memory ratios measured side by side: `python scripts/benchmark.py [--json]`."""

from lit_basics.benchmark import main

if __name__ == "__main__":
    main()
