"""Command-line entry points of the experiment scripts (scripts/*.py call these)."""

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from lit_basics.errors import ConfigError


def _overrides(pairs: Sequence[str]) -> dict:
    """["trainer.max_epochs=2", "model.lr=0.1"] -> {"trainer.max_epochs": 2, "model.lr": 0.1}."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r} must look like dotted.key=value")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _fail(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2)


@contextlib.contextmanager
def _one_line_errors(storage=lambda: None):
    """Bad input (ConfigError), a full disk, or a study storage that cannot be written: one line, exit 2."""
    import optuna

    from lit_basics.atomic_files import describe_disk_error, find_disk_error
    from lit_basics.cli import find_config_error

    try:
        yield
    except optuna.exceptions.StorageInternalError as err:
        cause = err.__cause__ or err
        text = str(getattr(cause, "orig", None) or cause).strip().splitlines() or [type(cause).__name__]
        _fail(ConfigError(f"study storage {storage()!r} cannot be written: {text[0]}"))
    except Exception as err:
        found, disk = find_config_error(err), find_disk_error(err)
        if found is None and disk is None:
            raise
        _fail(found or ConfigError(describe_disk_error(disk)))


def _publish(report: Path, name: str, readme: str | None) -> Path:
    """Print the report; with --readme also put it into that README's section for `name`."""
    from lit_basics.experiments.compare.report import update_readme_section

    markdown = report.read_text()
    if readme:
        page = Path(readme)
        figures = page.parent if page.parent.name == "docs" else page.parent / "docs"  # docs/results.md or README
        update_readme_section(page, name, markdown, report.parent, figures)
    print(markdown)
    print(f"report: {report.parent}/")
    return report.parent


def compare_main(argv: Sequence[str] | None = None):
    """`compare.py --config FILE [--seeds N] [--set key=value ...]`; returns the report folder."""
    from lit_basics.experiments.compare.runner import run_comparison
    from lit_basics.experiments.compare.spec import load_spec

    parser = argparse.ArgumentParser(description="Compare variants of one training set-up over seeds.")
    parser.add_argument("--config", required=True, help="experiment YAML (configs/experiments/*.yaml)")
    parser.add_argument("--seeds", type=int, default=None, help="use only the first N seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run, e.g. --set trainer.max_epochs=5")
    parser.add_argument("--logs", default="logs", help="TensorBoard folder (default: logs)")
    parser.add_argument("--reports", default="reports", help="report folder (default: reports)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--readme", default=None, help="also refresh this README's section for the experiment")
    args = parser.parse_args(argv)
    with _one_line_errors():
        spec = load_spec(args.config, seeds=args.seeds, extra=_overrides(args.set))
        out = run_comparison(spec, logs=args.logs, reports=args.reports, progress=not args.no_progress)
    return _publish(out / "results.md", spec.name, args.readme)


def tune_main(argv: Sequence[str] | None = None):
    """`tune.py --config FILE [--sampler S] [--n-trials N] [--folds K] [--resume] [--storage URL]`."""
    from lit_basics.experiments.search.space import load_search
    from lit_basics.experiments.search.tune import run_search

    parser = argparse.ArgumentParser(description="k-fold cross-validation search over FNN hyperparameters.")
    parser.add_argument("--config", required=True, help="search YAML (configs/experiments/tune_*.yaml)")
    parser.add_argument("--sampler", default=None, help="grid, random or tpe (default: the file's)")
    parser.add_argument("--n-trials", type=int, default=None, help="trials for random/tpe (default: the file's)")
    parser.add_argument("--folds", type=int, default=None, help="k of k-fold (default: the file's, else 5)")
    parser.add_argument("--resume", action="store_true", help="continue the stored study instead of replacing it")
    parser.add_argument("--name", default=None, help="the search's name (default: the file's): reports/<name>/")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///reports/<name>/study.db); "
                             "e.g. postgresql://user@host/db for workers on several machines")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every fit, e.g. --set trainer.max_epochs=5")
    parser.add_argument("--no-refit", action="store_true", help="skip retraining the best configuration")
    parser.add_argument("--ensemble", type=int, default=None, metavar="K",
                        help="also average the fold models of the K best configurations into one model, scored "
                             "out of fold and on the test rows: reports/<name>/ensemble.{yaml,ckpt} (default: the "
                             "file's `ensemble`, else 0: none)")
    parser.add_argument("--ensemble-selection", default=None,
                        help="top (the K best, equal weights; default) or greedy (forward selection with "
                             "replacement among them on out-of-fold predictions)")
    parser.add_argument("--pack", type=int, default=None, metavar="N",
                        help="instead of the k-fold search: draw N configurations from the space, train them at "
                             "once on the train split (batched engine) and average the --ensemble K (default 8) "
                             "with the lowest validation loss: reports/<name>_pack/")
    parser.add_argument("--engine", default="batched",
                        help="batched (folds x configurations trained as one program, default) or lightning "
                             "(one Lightning fit per fold)")
    parser.add_argument("--fold-logs", action="store_true",
                        help="also write one TensorBoard run per fold fit: <logs>/<name>/folds/trial_N/fold_K")
    parser.add_argument("--logs", default="logs")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--readme", default=None, help="also refresh this README's section for the search")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the progress bar and summary.md say it all
    storage = args.storage
    with _one_line_errors(lambda: storage):
        if args.pack is not None:
            _check_pack_flags(args)
        pack = {"sampler": "random", "n_trials": args.pack} if args.pack is not None else {}
        spec = load_search(args.config, **{"sampler": args.sampler, "n_trials": args.n_trials, **pack},
                           folds=args.folds, extra=_overrides(args.set), ensemble=args.ensemble,
                           ensemble_selection=args.ensemble_selection)
        if args.pack is not None and not spec.ensemble:
            if args.ensemble == 0:
                raise ConfigError("--pack needs --ensemble >= 1 (the members it averages; default 8)")
            spec.ensemble = min(8, args.pack)
        spec.name = args.name or spec.name
        if args.pack is not None:
            from lit_basics.experiments.search.pack import run_pack

            with _interrupt_stops_search(spec.name, None):
                out = run_pack(spec, args.pack, args.reports, args.logs)
            return _publish(out / "summary.md", spec.name, args.readme)
        storage = args.storage or f"{args.reports}/{spec.name}/study.db"
        with _interrupt_stops_search(spec.name, storage):
            out = run_search(spec, reports=args.reports, logs=args.logs, storage=args.storage, resume=args.resume,
                             refit=not args.no_refit, progress=not args.no_progress, engine=args.engine,
                             fold_logs=args.fold_logs)
    return _publish(out / "summary.md", spec.name, args.readme)


def _check_pack_flags(args: argparse.Namespace) -> None:
    """--pack N trains once, on the batched engine, without a study: flags of the k-fold search are refused."""
    if args.pack < 1:
        raise ConfigError(f"--pack {args.pack} must be >= 1 (configurations to train at once)")
    search_only = {"--resume": args.resume, "--storage": args.storage, "--no-refit": args.no_refit,
                   "--fold-logs": args.fold_logs, "--engine lightning": args.engine != "batched",
                   "--sampler": args.sampler, "--n-trials": args.n_trials, "--folds": args.folds}
    given = [flag for flag, value in search_only.items() if value]
    if given:
        raise ConfigError(f"--pack does not take {', '.join(given)} (a pack is drawn at random, trained once on "
                          "the train split, on the batched engine, without a study)")


@contextlib.contextmanager
def _interrupt_stops_search(name: str, storage: str | None):
    """Ctrl-C or SIGTERM: one line and exit status 130/143; finished trials stay in the storage for --resume
    (a pack, `storage` None, keeps nothing: it is run again whole)."""
    received: list[int] = []

    def stop(signum: int, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SystemExit) and not received:  # Lightning exits 1 after a KeyboardInterrupt in a fit
            raise
        signum = received[0] if received else signal.SIGINT
        hint = (f"its finished trials are kept in {storage}; continue with the same command and --resume"
                if storage else "a pack keeps nothing unfinished; run the same command again")
        print(f"interrupted: search {name!r} stopped; {hint}", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def accuracy_main(argv: Sequence[str] | None = None) -> Path:
    """`accuracy.py [--datasets a,b] [--seeds N] [--quick] [--readme README.md]`; returns reports/accuracy/."""
    from lit_basics.experiments.accuracy.run import run_accuracy
    from lit_basics.experiments.accuracy.runner import DATASETS, ENSEMBLE_SIZE, QUICK_DATASETS

    parser = argparse.ArgumentParser(
        description="Test accuracy of the shipped configs over split seeds, next to scikit-learn's tuned MLP, "
                    "our search's ensemble and gradient boosting.")
    parser.add_argument("--datasets", default=None,
                        help=f"comma-separated (default: all: {','.join(DATASETS)}; with --quick: "
                             f"{','.join(QUICK_DATASETS)})")
    parser.add_argument("--seeds", type=int, default=None, help="split seeds 0..N-1 (default 5; with --quick 2)")
    parser.add_argument("--quick", action="store_true", help="wiring check: 3 epochs, 2-configuration grid, 2 folds")
    parser.add_argument("--configs", default="configs", help="folder of the shipped configs (default: configs)")
    parser.add_argument("--n-ensemble", type=int, default=ENSEMBLE_SIZE,
                        help=f"the ensemble side: fold models of this many best candidates (default {ENSEMBLE_SIZE})")
    parser.add_argument("--logs", default="logs")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--readme", default=None, help="also refresh this README's accuracy section")
    args = parser.parse_args(argv)
    datasets = ([d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets is not None
                else list(QUICK_DATASETS if args.quick else DATASETS))
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    command = "python scripts/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        if args.readme and not Path(args.readme).is_file():
            raise ConfigError(f"--readme {args.readme!r} is not a file")
        out = run_accuracy(datasets, seeds, configs=args.configs, logs=args.logs,
                           reports=args.reports, quick=args.quick, command=command.strip(),
                           progress=not args.no_progress, n_ensemble=args.n_ensemble)
    except ConfigError as err:
        _fail(err)
    return _publish(out / "results.md", "accuracy", args.readme)
