"""A pack (tune.py --pack) against the k-fold grid search + refit (tune.py), on the same split seeds.

For each data set and split seed S: `tune_<name>.yaml` (its grid, 5-fold, refit of the best, and the
ensemble of the 5 best configurations' fold models, --ensemble 5) and a pack of
N configurations drawn from PACK_SPACE (wider ranges; trained once on the train split, the 8 lowest
validation losses averaged), both with `data.seed = S`; test accuracy and wall time of each, side by side.

    python -m lit_basics.benchmark.pack_vs_grid --datasets digits,wine --seeds 3 --pack 96
"""

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from lit_basics.experiments.search.pack import run_pack
from lit_basics.experiments.search.space import _dimension, load_search
from lit_basics.experiments.search.tune import run_search

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "experiments"
PACK_SPACE = {
    "depth": [1, 2, 3],
    "width": [32, 64, 128, 256],
    "model.lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "model.weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "model.dropout": [0.0, 0.1, 0.2],
    "data.init_args.batch_size": [32, 64],
}


def _test_acc(summary: str, row: str) -> float:
    """test/acc of the line starting with `row` in a summary table, or of the refit sentence."""
    if row == "refit":
        return float(re.search(r"test/acc = ([0-9.]+)", summary).group(1))
    line = next(line for line in summary.splitlines() if line.startswith(row))
    header = next(line for line in summary.splitlines() if line.startswith("| model"))
    return float(line.split("|")[header.split("|").index(" test/acc ")])


def compare(name: str, seed: int, n: int, k: int = 8) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        grid = load_search(CONFIGS / f"tune_{name}.yaml", ensemble=5)
        grid.seed, grid.name = seed, f"grid_{name}"
        started = time.perf_counter()
        out = run_search(grid, reports=f"{tmp}/reports", logs=f"{tmp}/logs", progress=False)
        grid_s = time.perf_counter() - started
        summary = (out / "summary.md").read_text()
        grid_acc, grid_ensemble = _test_acc(summary, "refit"), _test_acc(summary, "| ensemble:")
        pack = load_search(CONFIGS / f"tune_{name}.yaml", sampler="random", n_trials=n, ensemble=k)
        pack.space = [_dimension(key, value) for key, value in PACK_SPACE.items()]
        pack.seed, pack.name = seed, f"pack_{name}"
        started = time.perf_counter()
        out = run_pack(pack, n, reports=f"{tmp}/reports", logs=f"{tmp}/logs")
        pack_s = time.perf_counter() - started
        summary = (out / "summary.md").read_text()
    return {"grid_refit": grid_acc, "grid_ensemble": grid_ensemble, "grid_s": grid_s,
            "pack_single": _test_acc(summary, "| single best"),
            "pack_ensemble": _test_acc(summary, "| ensemble of"), "pack_s": pack_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,wine,breast_cancer")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pack", type=int, default=96)
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print("| data set | grid + refit | grid: ensemble of 5 (- refit per seed) | pack: single best | "
          "pack: ensemble of 8 (- refit per seed) | time grid + refit + ensemble | time pack |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        runs = [compare(name, seed, args.pack) for seed in range(args.seeds)]
        mean = {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        def diffs(key: str, runs: list[dict[str, float]] = runs) -> str:
            return ", ".join(f"{r[key] - r['grid_refit']:+.3f}" for r in runs)

        print(f"| {name} | {mean['grid_refit']:.4f} | {mean['grid_ensemble']:.4f} ({diffs('grid_ensemble')}) | "
              f"{mean['pack_single']:.4f} | {mean['pack_ensemble']:.4f} ({diffs('pack_ensemble')}) | "
              f"{mean['grid_s']:.0f} s | {mean['pack_s']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
