"""Side-by-side timings: our Lightning fit vs a plain PyTorch loop, vs scikit-learn, the batched engine
and its searches, start-up and memory; the ratios are what `scripts/benchmark.py` prints.

fits.py (the timed fits and pairing), versus_sklearn.py, searches.py; here the process-level measures,
the targets, the table and the command.
"""

import json
import subprocess
import sys
from typing import Any

import torch

from lit_basics.benchmark.csv_fit import csv_fit_rows_per_s
from lit_basics.benchmark.fits import REPO, SyntheticMNIST, lightning_fit, plain_loop, ratio, seconds
from lit_basics.benchmark.mnist_norm import norm_comparison
from lit_basics.benchmark.searches import GRID, batched_speedup, cv_comparison, ensemble_comparison, generic_vs_fast
from lit_basics.benchmark.versus_sklearn import estimator_comparison, sklearn_comparison
from lit_basics.data import DigitsDataModule
from lit_basics.engine.runtime import machine_description

__all__ = ["GRID", "TARGETS", "batched_speedup", "cv_comparison", "estimator_comparison", "generic_vs_fast", "main",
           "run", "table"]

def command_seconds(args: list[str], repeats: int) -> float:
    return min(seconds(lambda: subprocess.run(args, check=True, capture_output=True, cwd=REPO))
               for _ in range(repeats))


def startup(repeats: int) -> dict[str, float]:
    help_s = command_seconds([sys.executable, "scripts/train.py", "--help"], repeats)
    import_s = command_seconds([sys.executable, "-c", "import lightning"], repeats)
    return {"help_vs_import_lightning": help_s / import_s, "help_s": help_s, "import_lightning_s": import_s}


def peak_rss_mb(epochs: int) -> float:
    """Peak resident memory (VmHWM) of a digits fit through the CLI, in a fresh process.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent, VmHWM starts anew.
    """
    code = (
        "import re; from pathlib import Path; from lit_basics.cli import cli_main; "
        f"cli_main(['fit', '--config', 'configs/digits.yaml', '--trainer.max_epochs={epochs}', "
        "'--trainer.logger=false', '--trainer.enable_progress_bar=false', '--trainer.default_root_dir=/tmp/lit_rss']); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def run(repeats: int = 3, threads: int = 1, quick: bool = False) -> dict[str, Any]:
    """All benchmarks; `quick` shrinks epochs and repeats to a smoke test of the code paths."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|smaller than the logging interval).*")
    if threads:
        torch.set_num_threads(threads)
    epochs, mnist_epochs, repeats = (2, 1, 1) if quick else (50, 2, repeats)
    digits = DigitsDataModule(batch_size=32)
    results: dict[str, Any] = {}
    results |= ratio("lightning_vs_raw_digits", lambda: lightning_fit(digits, [128, 128], epochs),
                     lambda: plain_loop(digits, [128, 128], epochs), repeats)
    results |= ratio("lightning_full_vs_raw_digits", lambda: lightning_fit(digits, [128, 128], epochs, full=True),
                     lambda: plain_loop(digits, [128, 128], epochs), repeats)
    mnist = SyntheticMNIST(train_rows=2000 if quick else 60000, batch_size=128)
    results |= ratio("lightning_vs_raw_mnist", lambda: lightning_fit(mnist, [256, 128], mnist_epochs),
                     lambda: plain_loop(mnist, [256, 128], mnist_epochs), repeats)
    results |= sklearn_comparison(epochs, repeats)
    results |= estimator_comparison(epochs, repeats)
    results |= startup(1 if quick else repeats)
    results["peak_rss_mb_digits_fit"] = peak_rss_mb(epochs)
    results |= batched_speedup(4 if quick else 24, epochs, repeats=1 if quick else 2)
    results |= cv_comparison(2 if quick else 30, repeats=1 if quick else 2)
    results |= generic_vs_fast(2 if quick else 30, repeats=1 if quick else 2)
    results |= ensemble_comparison(2 if quick else 50)
    results |= csv_fit_rows_per_s(rows=5000 if quick else 200_000, epochs=1 if quick else 3)
    results |= norm_comparison(epochs=1 if quick else 2, n_train=1000 if quick else 12000)
    results["device"] = machine_description()
    results["torch_threads"] = torch.get_num_threads()
    results["repeats"] = repeats
    return results


TARGETS = {
    "lightning_vs_raw_digits": ("<=", 1.2),
    "lightning_vs_raw_mnist": ("<=", 1.2),
    "ours_vs_sklearn_digits": ("<=", 1.0),
    "help_vs_import_lightning": ("<=", 1.5),
    "batched_per_model_speedup": (">=", 4.0),
    "cv_speedup_vs_sklearn": (">=", 4.0),
    "estimator_vs_mlpclassifier_digits": ("<=", 0.6),
    "searchcv_vs_gridsearchcv": (">=", 4.0),
    "generic_vs_fast_batched_digits": ("<=", 2.0),
    "ensemble_vs_refit_digits": (">=", 0.0),
    "ensemble_overhead_digits": ("<=", 1.2),
}


def table(results: dict[str, Any]) -> str:
    lines = [f"{'measure':<34} {'value':>10}  target", "-" * 56]
    for key, value in results.items():
        if key.endswith(("_ours_s", "_reference_s", "_per_model_s")):
            continue
        target = TARGETS.get(key)
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        verdict = ""
        if target:
            met = value <= target[1] if target[0] == "<=" else value >= target[1]
            verdict = f"{target[0]} {target[1]}  {'met' if met else 'NOT met'}"
        lines.append(f"{key:<34} {shown}  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(description="Side-by-side speed and memory ratios.")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths, not the speed")
    args = parser.parse_args(argv)
    results = run(repeats=args.repeats, threads=args.threads, quick=args.quick)
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return results
