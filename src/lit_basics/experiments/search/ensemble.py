"""`tune.py --ensemble K`: the K best configurations' fold models, already trained by the search, as one model.

The search keeps the fold models (each at its best epoch) of the best trials it has seen (`FoldModels`);
a top trial it did not train in this process (another worker's, or before a resume) is trained again
with its fold seeds. Every fold model was trained on its fold's preprocessing, so the ensemble reads
each row as every fold preprocesses it (the data module's `fold_features`), each member its fold's
block (models/ensemble.py). Its cross-validation estimate comes from out-of-fold predictions only: a
row of the training portion is predicted by the fold models that held it out (one per configuration).
`selection: greedy` weighs the configurations by greedy forward selection with replacement on those
predictions (Caruana et al., 2004); its estimate is then optimistic, as any score a choice was made on.
"""

import dataclasses
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from optuna.trial import TrialState

from lit_basics.atomic_files import atomic_write_text
from lit_basics.data.targets import target_scaler_of
from lit_basics.errors import ConfigError
from lit_basics.experiments.config_file import override_args
from lit_basics.experiments.runs import check_args, quiet_lightning
from lit_basics.experiments.search import report as search_report
from lit_basics.experiments.search.folds import FoldResult
from lit_basics.experiments.search.space import SearchSpec
from lit_basics.models.ensemble import combine, member_description
from lit_basics.models.hparams import Architecture
from lit_basics.models.losses import predict

ENSEMBLE_FILES = ("ensemble.yaml", "ensemble.ckpt", "predictions.csv")  # predict writes beside the checkpoint


class FoldModels:
    """The fold models of the `k` best trials seen so far (by mean score), to keep memory bounded."""

    def __init__(self, k: int, folds: int) -> None:
        self.k, self.folds = k, folds
        self.kept: dict[int, tuple[tuple, list[dict[str, torch.Tensor]]]] = {}

    def offer(self, trial: int, value: float, results: list[FoldResult]) -> None:
        if not self.k or len(results) != self.folds or any(r.state is None or r.diverged for r in results):
            return
        std = statistics.pstdev([r.score for r in results])
        rank = search_report.rank_key(value, std, statistics.fmean(r.val_loss for r in results), trial)
        self.kept[trial] = (rank, [r.state for r in results])  # ranked as summary.md ranks trials
        if len(self.kept) > self.k:
            del self.kept[max(self.kept, key=lambda t: self.kept[t][0])]

    def states(self, trial: int) -> list[dict[str, torch.Tensor]] | None:
        return self.kept[trial][1] if trial in self.kept else None


@dataclass
class EnsembleResult:
    trials: list[int]  # the configurations (trial numbers), best first
    weights: list[float]  # one per configuration (greedy selection: how often it was chosen)
    cv_score: float  # out-of-fold score of the ensemble (accuracy; minus the MSE for regression)
    test_metrics: dict[str, float]
    members: int


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted(complete, key=lambda t: search_report.rank_key(
        t.value, t.user_attrs.get("std"), search_report.mean_val_loss(t), t.number))
    return ranked[:k]


def fold_models_of(trial: optuna.trial.FrozenTrial, spec: SearchSpec, runner: Any,
                   kept: FoldModels) -> list[dict[str, torch.Tensor]]:
    """The trial's fold models: kept from the search, or trained again with the same seeds (same models)."""
    states = kept.states(trial.number)
    if states is not None:
        return states
    runner.keep_states = True
    params = dict(trial.params)
    if hasattr(runner, "fit_many"):
        results = runner.fit_many([params])[0]
    else:
        results = runner.fit_folds(spec.run_args(params), lambda result: None, params)
    if len(results) != spec.folds or any(r.state is None or r.diverged for r in results):
        raise ConfigError(f"--ensemble: trial {trial.number} did not train all {spec.folds} folds again")
    return [r.state for r in results]


def ensemble_args(spec: SearchSpec, members: list[dict[str, Any]], task: str, logs: str,
                  data: list[str] | None = None, name: str | None = None) -> list[str]:
    """train.py arguments of an ensemble: the base config's data (by default as the k-fold search's fold blocks)
    and the members as `model.net`, every other architecture field at its default (the members hold theirs)."""
    default = Architecture()
    reset = {f"model.{f.name}": getattr(default, f.name) for f in dataclasses.fields(Architecture) if f.name != "net"}
    net = {"class_path": "lit_basics.models.ensemble.Ensemble", "init_args": {"task": task, "members": members}}
    data = fold_blocks_args(spec) if data is None else data
    return [*spec.run_args({}), "--model.net=null", *override_args({**reset, "model.net": net, "model.loss": "auto"}),
            *data,
            f"--trainer.logger.init_args.save_dir={logs}",
            f"--trainer.logger.init_args.name={name or spec.name + '_ensemble'}",
            "--trainer.logger.init_args.version=null"]


def fold_blocks_args(spec: SearchSpec) -> list[str]:
    """The data as the search split it, each row given as every fold's preprocessing gives it."""
    return [f"--data.init_args.folds={spec.folds}", "--data.init_args.fold=-1", f"--data.init_args.seed={spec.seed}",
            "--data.init_args.fold_features=true"]


def build_ensemble(spec: SearchSpec, study: optuna.Study, runner: Any, kept: FoldModels, out: Path, logs: str,
                   k: int, selection: str = "top") -> EnsembleResult:
    """Assemble, score (out-of-fold and on the test rows) and save reports/<name>/ensemble.{yaml,ckpt}."""
    trials = top_trials(study, k)
    if not trials:
        raise ConfigError("--ensemble: no configuration completed its folds")
    if len(trials) < k:
        print(f"note: --ensemble {k}: only {len(trials)} configurations completed their folds; the ensemble has "
              f"those", file=sys.stderr)
    probe = check_args("ensemble data", [*spec.run_args({}), *fold_blocks_args(spec), "--trainer.logger=false"])
    data, task = probe.datamodule, probe.model.hparams.task
    data.setup("test")  # the fold blocks' widths
    starts = [sum(data.block_widths[:f]) for f in range(spec.folds)]
    maps = output_maps(data, spec.folds)
    members, states = [], []
    for trial in trials:
        architecture = architecture_of(spec, trial.params)
        for fold, state in enumerate(fold_models_of(trial, spec, runner, kept)):
            member = {"architecture": architecture,
                      "columns": [starts[fold], starts[fold] + data.block_widths[fold]]}
            if task == "regression":
                member |= {"output_scale": maps[fold][0], "output_shift": maps[fold][1]}
            members.append(member)
            states.append(state)
    cli = load_members(ensemble_args(spec, members, task, logs), states)
    oof, y = out_of_fold_outputs(cli, spec.folds, len(trials))
    weights = selection_weights(oof, y, task, selection)
    chosen = [i for i, w in enumerate(weights) if w > 0]
    if chosen != list(range(len(trials))) or len(set(weights)) > 1:  # greedy: rebuild with its weights
        keep = [i for i in range(len(members)) if weights[i // spec.folds] > 0]
        members = [{**members[i], "weight": weights[i // spec.folds]} for i in keep]
        states = [states[i] for i in keep]
        cli = load_members(ensemble_args(spec, members, task, logs), states)
    cv = score(combine(oof[chosen], torch.tensor([weights[i] for i in chosen]), task), y, task)
    test_metrics = tested(cli)
    save_ensemble(cli, spec, out, cv)
    return EnsembleResult([trials[i].number for i in chosen], [weights[i] for i in chosen], cv, test_metrics,
                          len(members))


def tested(cli: Any) -> dict[str, float]:
    """The ensemble's metrics on the test split, as train.py test reports them."""
    with quiet_lightning():
        out = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return {k: float(v) for k, v in (out[0] if out else {}).items()}


def architecture_of(spec: SearchSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A configuration's architecture (models/hparams.py) as an ensemble member describes it."""
    cli = check_args("ensemble member", spec.run_args(params))
    return member_description(dataclasses.asdict(cli.model.architecture))


def load_members(args: list[str], states: list[dict[str, torch.Tensor]]) -> Any:
    """The ensemble's CLI (parsed, not run) with each member's trained weights loaded."""
    cli = check_args("ensemble", args)
    for net, state in zip(cli.model.net.members, states, strict=True):
        net.load_state_dict(state)
    return cli


def output_maps(data: Any, folds: int) -> list[tuple[float, float]]:
    """Per fold: (scale, shift) from its model's standardised target to the ensemble's (the whole portion's)."""
    if data.task != "regression" or not data.standardize:  # outputs in the target's own units already
        return [(1.0, 0.0)] * folds
    y = data.arrays[1]
    mean, std = data.target_scaler  # fitted by setup() on the whole training portion, the ensemble's units
    maps = []
    for train, _ in data.fold_indices(y):
        fold_mean, fold_std = target_scaler_of(y[train])
        maps.append((fold_std / std, (fold_mean - mean) / std))
    return maps


@torch.no_grad()
def out_of_fold_outputs(cli: Any, folds: int, configs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(configs, rows, outputs): each training-portion row as the fold model that held it out predicts it."""
    data, net = cli.datamodule, cli.model.net.eval()
    data.setup("test")
    x, y = data.tensors["train"]
    outputs = net.member_outputs(x)  # (configs * folds, rows, outputs), members ordered configuration-major
    oof = torch.empty(configs, *outputs.shape[1:])
    for fold, rows in enumerate(data.fold_positions(part=1)):
        rows = torch.as_tensor(rows)
        oof[:, rows] = outputs[torch.arange(configs) * folds + fold][:, rows]
    return oof, y


def selection_weights(outputs: torch.Tensor, y: torch.Tensor, task: str, selection: str) -> list[float]:
    """One weight per candidate, from their held-out outputs (candidates, rows, outputs): equal ("top"), or
    greedy forward selection with replacement ("greedy"; zero for a candidate never chosen)."""
    return greedy_weights(outputs, y, task) if selection == "greedy" else [1.0] * len(outputs)


def score(logits: torch.Tensor, y: torch.Tensor, task: str) -> float:
    if task == "regression":
        return -float(((logits.squeeze(-1) - y) ** 2).mean())
    classes = 2 if logits.shape[-1] == 1 else logits.shape[-1]
    return float((predict(logits, task, classes) == y).double().mean())


def greedy_weights(oof: torch.Tensor, y: torch.Tensor, task: str, rounds: int | None = None) -> list[float]:
    """Forward selection with replacement (Caruana et al., 2004): add the configuration that most improves the
    out-of-fold score (ties: the lower log loss or squared error), keep the best ensemble seen."""
    rounds = rounds or 2 * len(oof)
    counts = torch.zeros(len(oof))
    best_counts, best_key = counts.clone(), (-math.inf, -math.inf)
    for _ in range(rounds):
        keys = []
        for c in range(len(oof)):
            trial = counts.clone()
            trial[c] += 1
            combined = combine(oof, trial, task)
            keys.append((score(combined, y, task), -tie_loss(combined, y, task)))
        choice = max(range(len(oof)), key=lambda c: keys[c])
        counts[choice] += 1
        if keys[choice] > best_key:
            best_key, best_counts = keys[choice], counts.clone()
    return [float(c) for c in best_counts]


def tie_loss(logits: torch.Tensor, y: torch.Tensor, task: str) -> float:
    if task == "regression":
        return float(((logits.squeeze(-1) - y) ** 2).mean())
    if logits.shape[-1] == 1:
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), y.double()))
    return float(torch.nn.functional.cross_entropy(logits, y))


def save_ensemble(cli: Any, spec: SearchSpec, out: Path, cv: float, estimate: str = "out-of-fold CV score") -> None:
    """ensemble.ckpt (a LitFNN checkpoint train.py test/predict read) and ensemble.yaml (its config)."""
    config = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))
    config.pop("weights_only", None)  # an argument of the parser without subcommands, not of train.py test
    atomic_write_text(
        out / "ensemble.yaml",
        f"# Ensemble of search {spec.name!r} ({estimate} {cv:.4f}). Each member's architecture is in\n"
        "# model.net.init_args.members (model.hidden_sizes and the other architecture fields stay at their\n"
        "# defaults, unused; the optimisation fields are unused too: the members are trained). Test or predict with:\n"
        f"#   python scripts/train.py test --config {out / 'ensemble.yaml'} --ckpt_path {out / 'ensemble.ckpt'}\n"
        + yaml.safe_dump(config, sort_keys=False))
    cli.trainer.save_checkpoint(str(out / "ensemble.ckpt"))
