"""`tune.py --pack N`: a hyperparameter ensemble in the spirit of TabPack (2026), on the batched engine.

N configurations are drawn from the search space by Optuna's RandomSampler (distinct ones; a grid of
fewer than N is taken whole), trained at once on the data module's own train split as batched groups,
each stopping early on the validation split and keeping its best epoch (stopped models leave the
stack as training goes). The K with the lowest validation loss (or, with `greedy`, forward selection
with replacement on their validation predictions) are averaged into one model, tested once on the
test split beside the single best of the pack, and saved as ensemble.yaml + ensemble.ckpt, which
`train.py test/predict` use like any other config and checkpoint. Where a k-fold search trains each
configuration k times to rank it, a pack trains each once and lets the validation split choose, so the
same time buys about k times as many configurations.
"""

import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

from lit_basics.atomic_files import atomic_write_text
from lit_basics.engine.runtime import machine_description
from lit_basics.errors import ConfigError
from lit_basics.experiments.search import report as search_report
from lit_basics.experiments.search.batched_folds import BatchedFolds
from lit_basics.experiments.search.ensemble import (
    ENSEMBLE_FILES,
    architecture_of,
    ensemble_args,
    load_members,
    save_ensemble,
    score,
    selection_weights,
    tested,
)
from lit_basics.experiments.search.folds import FoldResult
from lit_basics.experiments.search.space import SearchSpec, grid_size
from lit_basics.models.ensemble import combine
from lit_basics.outputs import check_name, check_writable_dir

DRAWS_PER_CONFIGURATION = 20  # draws before a space is taken to hold fewer distinct configurations than asked


def sample_configurations(spec: SearchSpec, n: int) -> list[dict[str, Any]]:
    """N distinct configurations: the whole grid when it has at most N, else random draws (seeded)."""
    if all(d.choices is not None for d in spec.space) and grid_size(spec) <= n:
        from sklearn.model_selection import ParameterGrid

        return [{d.name: params[d.name] for d in spec.space} for params in ParameterGrid(spec.grid())]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(n * DRAWS_PER_CONFIGURATION):
        trial = study.ask()
        params = {d.name: d.suggest(trial) for d in spec.space}
        study.tell(trial, 0.0)
        if repr(sorted(params.items())) not in seen:
            seen.add(repr(sorted(params.items())))
            configs.append(params)
        if len(configs) == n:
            break
    return configs


PACK_FILES = ("pack.csv", "summary.md", *ENSEMBLE_FILES)


def run_pack(spec: SearchSpec, n: int, reports: str = "reports", logs: str = "logs") -> Path:
    """Train the pack, average its best `spec.ensemble` members, test and save; returns the report folder."""
    started = time.perf_counter()
    try:
        runner = BatchedFolds(spec.run_args({}), 0, spec.seed, spec.patience, keep_states=True)
    except ConfigError as err:  # its own advice names --engine, which --pack does not take
        message = str(err).split("; use --engine")[0].replace("--engine batched", "the batched engine")
        raise ConfigError(f"--pack: {message}") from None
    configs = sample_configurations(spec, n)
    for params in configs:  # a value the engine cannot train fails here, before any output
        runner.settings(params)
    check_writable_dir(reports, "reports folder")
    out = check_writable_dir(Path(reports) / check_name(f"{spec.name}_pack", "search name"), "report folder")
    for name in PACK_FILES:  # no report of an earlier pack stays beside this one's
        (out / name).unlink(missing_ok=True)
    results = [r[0] for r in runner.fit_many(configs)]
    trained = time.perf_counter() - started
    ranked = sorted((i for i, r in enumerate(results) if not r.diverged), key=lambda i: (results[i].val_loss, i))
    if not ranked:
        raise ConfigError(f"--pack {n}: every configuration diverged (its training loss became NaN or infinite)")
    k = spec.ensemble or min(8, n)
    candidates = ranked[:k]
    if len(candidates) < k:
        print(f"note: --pack {n} trained {len(ranked)} configurations (the space holds {len(configs)} distinct ones, "
              f"{len(configs) - len(ranked)} diverged): the ensemble has {len(candidates)} members, not "
              f"{k}", file=sys.stderr)

    def assemble(indices: list[int], weights: list[float], name: str) -> Any:
        members = [member(spec, configs[i], runner.widths[0]) | {"weight": w} for i, w in zip(indices, weights,
                                                                                             strict=True)]
        args = ensemble_args(spec, members, runner.task, logs, ["--data.init_args.folds=0",
                                                                 f"--data.init_args.seed={spec.seed}"], name)
        return load_members(args, [results[i].state for i in indices])

    cli = assemble(candidates, [1.0] * len(candidates), f"{spec.name}_pack")
    outputs, y = validation_outputs(cli)
    weights = selection_weights(outputs, y, runner.task, spec.ensemble_selection)
    chosen = [i for i, w in zip(candidates, weights, strict=True) if w > 0]
    kept = {i: w for i, w in zip(candidates, weights, strict=True) if w > 0}
    if len(chosen) < len(candidates) or len(set(weights)) > 1:
        cli = assemble(chosen, [kept[i] for i in chosen], f"{spec.name}_pack")
    val_score = score(combine(outputs[[candidates.index(i) for i in chosen]], torch.tensor(list(kept.values())),
                              runner.task), y, runner.task)
    out.mkdir(parents=True, exist_ok=True)
    ensemble_test = tested(cli)
    single_test = tested(assemble(ranked[:1], [1.0], f"{spec.name}_pack_single"))
    table = pack_table(configs, results, ranked, kept)
    atomic_write_text(out / "pack.csv", table.to_csv(index=False))
    save_ensemble(cli, spec, out, val_score, "validation accuracy")
    footer = (f"{n} configurations trained at once in {trained:.0f} s, {time.perf_counter() - started:.0f} s in all, "
              f"on {machine_description()}.")
    atomic_write_text(out / "summary.md", pack_summary(spec, table, results[ranked[0]], val_score, single_test,
                                                       ensemble_test, len(chosen), footer))
    return out


def member(spec: SearchSpec, params: dict[str, Any], width: int) -> dict[str, Any]:
    return {"architecture": architecture_of(spec, params), "columns": [0, width]}


@torch.no_grad()
def validation_outputs(cli: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(members, val rows, outputs) of the ensemble's members, and the validation labels."""
    cli.datamodule.setup("validate")
    x, y = cli.datamodule.tensors["val"]
    return cli.model.net.eval().member_outputs(x), y




def pack_table(configs: list[dict[str, Any]], results: list[FoldResult], ranked: list[int],
               weights: dict[int, float]) -> pd.DataFrame:
    rank = {i: r for r, i in enumerate(ranked)}
    rows = [{"config": i, **{search_report.short(k): v for k, v in params.items()},
             "val_loss": r.val_loss, "val_acc": r.score, "best_epoch": r.best_epoch, "epochs": r.epochs,
             "diverged": r.diverged, "rank": rank.get(i), "weight": weights.get(i, 0.0)}
            for i, (params, r) in enumerate(zip(configs, results, strict=True))]
    return pd.DataFrame(rows).sort_values(["rank", "config"], na_position="last")


def pack_summary(spec: SearchSpec, table: pd.DataFrame, best: FoldResult, val_score: float,
                 single: dict[str, float], ensemble: dict[str, float], members: int, footer: str) -> str:
    keys = sorted(k for k in {*single, *ensemble} if k.startswith("test/"))
    rows = [{"model": "single best of the pack (lowest validation loss)", "val_acc": best.score,
             **{k: single.get(k) for k in keys}},
            {"model": f"ensemble of {members}", "val_acc": val_score, **{k: ensemble.get(k) for k in keys}}]
    selection = ("greedy forward selection with replacement on the validation predictions" if
                 spec.ensemble_selection == "greedy" else "the lowest validation losses, equal weights")
    lines = [f"# {spec.name} pack", "",
             f"{len(table)} configurations drawn from the search space of `{spec.name}` and trained at once on the "
             f"train split, each stopping early on the validation split (patience {spec.patience}) at its best "
             f"epoch; the ensemble: {selection}. Test it with `python scripts/train.py test --config "
             f"reports/{spec.name}_pack/ensemble.yaml --ckpt_path reports/{spec.name}_pack/ensemble.ckpt`.", "",
             *search_report.markdown_table(pd.DataFrame(rows)), "",
             "## Configurations (best 20 by validation loss)", "",
             *search_report.markdown_table(table.head(20)), "", footer]
    return "\n".join(lines) + "\n"
