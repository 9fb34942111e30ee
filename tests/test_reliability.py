"""Bad input, interruption and resume, divergence, determinism, safe checkpoints, several workers."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from lit_basics.checkpoint_io import stamp_digest
from lit_basics.cli import cli_main
from lit_basics.errors import ConfigError
from lit_basics.experiments.commands import compare_main, tune_main
from lit_basics.experiments.search.study import make_storage
from lit_basics.models import load_model

from .bad_input_cases import CASE_FILES, CASES, render_markdown
from .conftest import CONFIGS, QUIET, REPO, config, run_cli

COMMANDS = {
    "fit": lambda args: cli_main(["fit", *args, *QUIET]),
    "test": lambda args: cli_main(["test", *args, *QUIET]),
    "predict": lambda args: cli_main(["predict", *args, *QUIET]),
    "tune": lambda args: tune_main([*args, "--no-progress"]),
    "compare": lambda args: compare_main([*args, "--no-progress"]),
}


@pytest.fixture
def bad_files(workdir, iris_run) -> Path:
    """The files the bad-input cases name, written into the test's folder."""
    tmp = workdir
    (tmp / "empty.csv").write_text("")
    (tmp / "good.csv").write_text("a,b,label\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(20)))
    (tmp / "inf.csv").write_text("a,b,label\n1,2,0\n2,3,1\n-inf,4,0\n")
    (tmp / "short_header.csv").write_text("20,2,label\n" + "\n".join(f"{i},{i % 3},{i % 5},{i % 2}" for i in range(20)))
    (tmp / "duplicate.csv").write_text("a,a,label\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(20)))
    (tmp / "float_label.csv").write_text("a,b,label\n" + "\n".join(f"{i},{i % 3},{i * 0.37:.2f}" for i in range(30)))
    (tmp / "gaps.csv").write_text("a,empty,same,label\n" + "\n".join(f"{i},,7,{i % 2}" for i in range(20)))
    (tmp / "decimal_comma.csv").write_text("a;b;label\n" + "".join(f"{i},5;{i % 3};{i % 2}\n" for i in range(20)))
    (tmp / "question_marks.csv").write_text("a,b,label\n" + "".join(f"{'?' if i % 5 == 2 else i},{i % 3},{i % 2}\n"
                                                                     for i in range(20)))
    (tmp / "spaces.csv").write_text("a b label\n" + "\n".join(f"{i} {i % 3} {i % 2}" for i in range(20)))
    (tmp / "broken.yaml").write_text("model: [unclosed\n")
    for name, content in CASE_FILES.items():  # the table cases' files (issue 21)
        (tmp / name).write_bytes(content)
    search = f"name: s\nbase: {config('iris')}\nsampler: grid\nfolds: 2\ncommon:\n  trainer.max_epochs: 1\n"
    (tmp / "search.yaml").write_text(search + "space:\n  width: [4, 8]\n")
    (tmp / "lowhigh.yaml").write_text(search.replace("grid", "random") + "n_trials: 2\nspace:\n"
                                      "  model.lr: {low: 0.1, high: 0.01}\n")
    (tmp / "empty_choices.yaml").write_text(search + "space:\n  width: []\n")
    (tmp / "ensemble_config.yaml").write_text("model:\n  net:\n    class_path: lit_basics.models.ensemble.Ensemble\n"
                                              "    init_args: {members: []}\n")
    (tmp / "unbatchable.yaml").write_text(search + "  model.net: {class_path: tests.test_models.DataDependent}\n"
                                        "  model.hidden_sizes: [64, 64]\nspace:\n  model.lr: [0.01, 0.1]\n")
    (tmp / "batched_regression.yaml").write_text(search.replace(config("iris"), config("diabetes"))
                                                 + "space:\n  width: [4, 8]\n")
    (tmp / "typo_experiment.yaml").write_text(
        f"name: e\nbase: {config('moons')}\nvariants:\n  ok: {{}}\n  typo: {{model.activaton: relu}}\n")
    best = iris_run["root"] / iris_run["best_model_path"]
    shutil.copyfile(best, tmp / "iris.ckpt")
    data = best.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    write_artifact_cases(tmp, best)
    return tmp


def write_artifact_cases(tmp: Path, checkpoint: Path) -> None:
    """Files for the cases of artefacts read back: checkpoints, studies, output folders (issue 13)."""
    from lit_basics.experiments.search.space import load_search
    from lit_basics.experiments.search.study import search_settings
    from lit_basics.experiments.search.tune import validate_search

    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.3f}" for v in rng.normal(size=4)) + f",{i % 3}" for i in range(60)]
    (tmp / "four.csv").write_text("p,q,r,s,label\n" + "\n".join(rows) + "\n")  # iris's shape, other data
    old = torch.load(checkpoint, weights_only=True)
    del old["IrisDataModule"]["identity"], old["lit_basics_digest"]  # an older version wrote neither
    torch.save(old, tmp / "old.ckpt")
    torch.save({"state_dict": {}, "path": PurePosixPath("a")}, tmp / "objects.ckpt")
    write_flipped_checkpoint(checkpoint, tmp / "flipped.ckpt")
    nan = torch.load(checkpoint, weights_only=True)
    nan["state_dict"] = {k: torch.full_like(v, float("nan")) for k, v in nan["state_dict"].items()}
    torch.save(stamp_digest(nan), tmp / "nan.ckpt")  # consistent digest: only the metrics can tell
    (tmp / "afolder").mkdir()
    (tmp / "afile").write_text("not a folder")
    (tmp / "runs/moons/version_0").mkdir(parents=True)
    (tmp / "rep").mkdir()
    (tmp / "rep/s").write_text("not a folder")
    (tmp / "s_experiment.yaml").write_text(f"name: s\nbase: {config('moons')}\nvariants:\n  a: {{}}\n")
    (tmp / "runs/moons/version_0/checkpoints").write_text("not a folder")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9))
    (tmp / "bomb.yaml").write_text(laughs)  # 10**10 nodes once expanded
    (tmp / "bomb_search.yaml").write_text(f"name: s\nbase: {config('iris')}\nspace:\n  width: [4, 8]\n" + laughs)
    (tmp / "escape_experiment.yaml").write_text(f"name: ../escape\nbase: {config('moons')}\nvariants:\n  a: {{}}\n")
    spec = load_search(tmp / "search.yaml")
    other = search_settings(spec, validate_search(spec))  # the same data and engine: only the space differs
    other["space"]["width"] = [4, 16]
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp / 'other_space.db'}")
    study.set_user_attr("search", other)
    older = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp / 'old_study.db'}")
    older.enqueue_trial({"width": 4})


def write_flipped_checkpoint(source: Path, target: Path, count: int = 64) -> None:
    """`source` with `count` bytes of its largest tensor inverted in place (torch does not check the zip CRC)."""
    import struct
    import zipfile

    with zipfile.ZipFile(source) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(source.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length  # the stored (uncompressed) tensor bytes
    data[start: start + count] = bytes(b ^ 0xFF for b in data[start: start + count])
    target.write_bytes(bytes(data))


@pytest.mark.parametrize(("case", "command", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_leaves_nothing(bad_files, capsys, case, command, args, message):
    tmp = str(bad_files)
    argv = args.replace("{tmp}", tmp)
    for name in ("iris", "moons", "diabetes", "csv", "mnist", "digits"):
        argv = argv.replace(f"{{cfg:{name}}}", str(CONFIGS / f"{name}.yaml"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        COMMANDS[command](argv.split())
    assert info.value.code == 2, case
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err[-3:]
    assert message.replace("{tmp}", tmp) in err[-1]
    assert len(err[-1].replace(tmp, "")) < 300, err[-1]
    written = [p for root in ("logs", "reports") for p in Path(root).rglob("*") if p.is_file()]
    assert not written, written
    assert not Path("reports").exists()


def test_there_are_at_least_25_cases_and_the_readme_lists_them():
    assert len(CASES) >= 25
    readme = (REPO / "docs" / "reliability.md").read_text()
    block = readme[readme.index("<!-- reliability:start -->") + len("<!-- reliability:start -->"):
                   readme.index("<!-- reliability:end -->")]
    assert block.strip() == render_markdown().strip(), "run `make docs`"


def _wait_for(condition, limit: float = 120.0) -> None:
    """Poll until `condition()` holds; `limit` only bounds a hung subprocess, nothing is asserted on time."""
    end = time.monotonic() + limit
    while not condition() and time.monotonic() <= end:
        time.sleep(0.02)


def _moons_args(save_dir: Path) -> list[str]:
    return ["fit", "--config", config("moons"), "--data.n_samples=3000", "--model.dropout=0.2",
            "--trainer.max_epochs=12", f"--trainer.logger.init_args.save_dir={save_dir}", *QUIET]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(workdir, signum, code):
    reference = cli_main(_moons_args(workdir / "straight"))
    logs = workdir / "stopped"
    process = subprocess.Popen([sys.executable, str(REPO / "scripts/train.py"), *_moons_args(logs)],
                               stderr=subprocess.PIPE, text=True, cwd=workdir)
    last = logs / "moons/version_0/checkpoints/last.ckpt"
    _wait_for(lambda: last.exists() or process.poll() is not None)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr[-2000:]
    assert "interrupted:" in stderr and "resumable checkpoint" in stderr
    stopped_at = torch.load(last, weights_only=True)["epoch"]
    assert 0 < stopped_at < 12
    resumed = cli_main([*_moons_args(logs), "--ckpt_path", "last"])
    assert Path(resumed["log_dir"]) == logs / "moons/version_0"  # the same run continues
    assert [h["val/loss"] for h in resumed["history"]] == [h["val/loss"] for h in reference["history"]]
    assert resumed["test/acc"] == reference["test/acc"] and resumed["test/loss"] == reference["test/loss"]


def test_a_diverging_run_stops_with_a_clear_message(workdir, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli("fit", "--config", config("digits"), "--model.optimizer=sgd", "--model.lr=1e6")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: training diverged at epoch 0 (loss nan)") and "lr=1e+06" in err


def test_compare_after_sigterm_names_its_own_way_to_continue(workdir):
    (workdir / "e.yaml").write_text(f"name: e\nbase: {config('moons')}\nseeds: [0]\nvariants:\n  a: {{}}\n"
                                    "common:\n  data.n_samples: 3000\n  trainer.max_epochs: 50\n")
    process = subprocess.Popen([sys.executable, str(REPO / "scripts/compare.py"), "--config", "e.yaml",
                                "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               cwd=workdir)
    last = workdir / "logs/e/a/seed_0/checkpoints/last.ckpt"
    _wait_for(lambda: last.exists() or process.poll() is not None)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: SIGTERM: stopped before epoch ") and "--ckpt_path" not in line
    assert line.endswith("compare.py keeps no partial results: run the same compare.py command again "
                         "(every run starts anew)")


def test_same_seed_gives_identical_fits(workdir):
    first = run_cli("fit", "--config", config("moons"), "--trainer.max_epochs=5", "--model.dropout=0.3")
    second = run_cli("fit", "--config", config("moons"), "--trainer.max_epochs=5", "--model.dropout=0.3")
    def metrics_only(history: list[dict]) -> list[dict]:  # wall time differs between runs, nothing else may
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert len(first["history"]) == 5
    assert metrics_only(first["history"]) == metrics_only(second["history"])
    assert first["test/acc"] == second["test/acc"]


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint_and_says_so(workdir, monkeypatch, capsys):
    """The save is written beside its final name (observable: the handle's name), fails half-way, and the
    checkpoints folder is left exactly as it was before that save, with no temporary file."""
    import errno

    from lit_basics import atomic_files
    from lit_basics.checkpoints import read_checkpoint

    seen: list[Path] = []
    before: dict[str, bytes] = {}
    original = atomic_files.write_chunk

    def fill_the_disk_at_the_third_save(handle, data):
        seen.append(Path(handle.name))
        if len(seen) < 3:
            return original(handle, data)
        before.update({p.name: p.read_bytes() for p in Path(handle.name).parent.glob("*.ckpt")})
        original(handle, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files, "write_chunk", fill_the_disk_at_the_third_save)
    with pytest.raises(SystemExit) as info:
        cli_main([*_moons_args(workdir / "logs"), "--trainer.max_epochs=5"])
    assert info.value.code == 2
    folder = workdir / "logs/moons/version_0/checkpoints"
    failed = seen[-1]
    assert failed.parent == folder and failed.name.startswith(".") and failed.name.endswith(f".{os.getpid()}.tmp")
    final = folder / failed.name[1:].rsplit(".", 2)[0]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: cannot write {str(final)!r}: no space left on device (ENOSPC); "
                       "the previous file, if any, is unchanged")
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)  # no temporary file left
    assert {p.name: p.read_bytes() for p in folder.glob("*.ckpt")} == before
    for path in folder.glob("*.ckpt"):
        assert read_checkpoint(str(path))["state_dict"]  # loads and its digest verifies


def test_a_full_disk_during_the_final_test_logging_is_one_line(workdir, monkeypatch, capsys):
    import errno

    from lightning.pytorch.loggers import TensorBoardLogger

    original = TensorBoardLogger.log_metrics

    def full_at_test(self, metrics, step=None):
        if any(key.startswith("test/") for key in metrics):
            raise OSError(errno.ENOSPC, "No space left on device", f"{self.log_dir}/events.out.tfevents")
        return original(self, metrics, step)

    monkeypatch.setattr(TensorBoardLogger, "log_metrics", full_at_test)
    with pytest.raises(SystemExit) as info:
        cli_main([*_moons_args(workdir / "logs"), "--trainer.max_epochs=2"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: cannot write '{workdir}/logs/moons/version_0/events.out.tfevents': "
                       "no space left on device (ENOSPC)")
    assert (workdir / "logs/moons/version_0/checkpoints/last.ckpt").is_file()  # the fit's work is kept


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_accelerator_gpu_without_one_is_one_line(workdir, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["fit", "--config", config("moons"), "--trainer.accelerator=gpu", *QUIET])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --trainer.accelerator=gpu: this machine has no GPU that torch can use; "
        "use --trainer.accelerator auto or cpu")
    assert not Path("logs").exists()


def test_checkpoints_load_with_weights_only(workdir):
    marker = workdir / "executed"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, workdir / "evil.ckpt")
    with pytest.raises(ConfigError, match="holds objects other than tensors and plain values; .* refused"):
        load_model(str(workdir / "evil.ckpt"))
    assert not marker.exists()


def _study_trials(db: Path) -> pd.DataFrame:
    study = optuna.load_study(study_name="workers", storage=f"sqlite:///{db}")
    return study.trials_dataframe(attrs=("number", "state", "params", "user_attrs"))


def _search_file(tmp: Path, widths: list[int], epochs: int = 25) -> Path:
    path = tmp / "workers.yaml"
    path.write_text(f"name: workers\nbase: {config('iris')}\nsampler: grid\nfolds: 2\npatience: 100\n"
                    f"common:\n  trainer.max_epochs: {epochs}\nspace:\n  width: {widths}\n")
    return path


def _tune_process(path: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    # One configuration per trial (the Lightning engine), so workers interleave trial by trial; the batched
    # engine takes rounds of up to 64 configurations, and a round this small would all go to one worker.
    return subprocess.Popen([sys.executable, str(REPO / "scripts/tune.py"), "--config", str(path), "--no-progress",
                             "--no-refit", "--engine", "lightning", *extra], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _count(db: Path, state: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        try:
            return con.execute("select count(*) from trials where state = ?", (state,)).fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def test_killed_search_resumes_without_repeating_finished_trials(workdir):
    path = _search_file(workdir, [4, 8, 16, 32])
    db = workdir / "reports/workers/study.db"
    process = _tune_process(path, workdir)
    _wait_for(lambda: _count(db, "COMPLETE") >= 1 or process.poll() is not None)
    process.kill()
    process.wait()
    finished = _study_trials(db)
    done_before = set(finished.loc[finished["state"] == "COMPLETE", "params_width"])
    assert 1 <= len(done_before) < 4
    tune_main(["--config", str(path), "--no-progress", "--no-refit", "--resume", "--engine", "lightning"])
    trials = _study_trials(db)
    complete = trials[trials["state"] == "COMPLETE"]
    assert sorted(complete["params_width"]) == [4, 8, 16, 32]  # each configuration exactly once
    assert len(trials[trials["params_width"].isin(done_before)]) == len(done_before)  # none rerun


def _pop_queue(url: str, queue) -> None:
    study = optuna.load_study(study_name="race", storage=make_storage(url))
    popped = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:  # what study.ask() calls first
        popped.append(trial_id)
    queue.put(popped)


def test_workers_popping_one_sqlite_queue_never_take_the_same_trial(tmp_path):
    """Optuna's SELECT ... FOR UPDATE does nothing on SQLite; without make_storage's BEGIN IMMEDIATE,
    three processes popping 60 queued trials took 64-68 between them (some twice)."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(study_name="race", storage=make_storage(url))
    for i in range(60):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_pop_queue, args=(url, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    popped = [trial_id for _ in workers for trial_id in queue.get(timeout=120)]
    for worker in workers:
        worker.join()
    assert sorted(popped) == sorted(t._trial_id for t in study.get_trials(deepcopy=False))


def test_two_workers_share_one_study_without_running_a_trial_twice(workdir):
    widths = [4, 6, 8, 10, 12, 16, 20, 24]
    path = _search_file(workdir, widths, epochs=30)
    db = workdir / "reports/workers/study.db"
    workers = [_tune_process(path, workdir, "--resume") for _ in range(2)]  # both start on a fresh storage
    for process in workers:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    trials = _study_trials(db)
    complete = trials[trials["state"] == "COMPLETE"]
    assert sorted(complete["params_width"]) == widths  # every configuration ran exactly once
    assert complete["user_attrs_worker"].nunique() == 2  # and both processes took part


def _ddp(workdir: Path, devices: int, *args: str) -> None:
    """`train.py ARGS` on `devices` CPU processes (gloo), as a user starts it."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/train.py"), *args, "--trainer.strategy=ddp", "--trainer.accelerator=cpu",
         f"--trainer.devices={devices}", *QUIET],
        cwd=workdir, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _logged(run: Path, prefix: str) -> dict[str, float]:
    """The last value of each `prefix` scalar in a run folder's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        values |= {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"] if tag.startswith(prefix)}
    return values


def test_ddp_on_two_cpu_processes_finishes_and_logs_once(workdir):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/train.py"), "fit", "--config", config("iris"), "--trainer.strategy=ddp",
         "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.max_epochs=3", *QUIET],
        cwd=workdir, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(Path(workdir, "logs/iris").glob("version_*"))
    assert len(runs) == 1  # rank 1 writes no run folder of its own
    assert len(list(runs[0].glob("events.out.tfevents.*"))) == 2  # one for fit, one for the test
    assert result.stdout.count("test/acc") == 1  # the metrics table is printed once
    assert (runs[0] / "checkpoints/best.ckpt").is_file()
    on_two = _logged(runs[0], "test/")  # 45 test rows: the ranks score 23 and 22, no row twice
    alone = run_cli("test", "--config", config("iris"), "--ckpt_path", str(runs[0] / "checkpoints/best.ckpt"))
    assert set(on_two) == {"test/loss", "test/acc", "test/f1"}
    assert all(value == pytest.approx(alone[key], rel=1e-5) for key, value in on_two.items()), (on_two, alone)


def test_distributed_evaluation_equals_one_process_on_rows_no_rank_count_divides(workdir):
    # 155 moons: 93 train, 31 val and 31 test rows; eval batches of 5 give the ranks unequal batch counts too,
    # and BatchNorm's running statistics differ by rank unless rank 0's are shared before evaluating
    data = ["--config", config("moons"), "--data.n_samples=155", "--data.noise=0.4", "--data.eval_batch_size=5",
            "--model.norm=batch"]
    _ddp(workdir, 3, "fit", *data, "--trainer.max_epochs=2")
    run = workdir / "logs/moons/version_0"
    on_three = _logged(run, "val/") | _logged(run, "test/")
    alone = run_cli("validate", *data, "--ckpt_path", str(run / "checkpoints/last.ckpt"))
    alone |= run_cli("test", *data, "--ckpt_path", str(run / "checkpoints/best.ckpt"))
    assert set(on_three) == {"val/loss", "val/acc", "val/f1", "test/loss", "test/acc", "test/f1"}
    for key, value in on_three.items():
        assert value == pytest.approx(alone[key], rel=1e-5), key
    best = str(run / "checkpoints/best.ckpt")
    _ddp(workdir, 2, "predict", *data, "--ckpt_path", best)
    on_two = (run / "predictions.csv").read_text()
    run_cli("predict", *data, "--ckpt_path", best)
    assert (run / "predictions.csv").read_text() == on_two  # each row once, in order, as one process writes them
    assert pd.read_csv(run / "predictions.csv")["row"].tolist() == list(range(31))


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a Unix socket (no TCP), for the several-machines storage."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed here (.ci/run installs Debian's postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 is needed for a postgresql:// storage")
    root = Path(tempfile.mkdtemp(prefix="lit_basics_pg_"))  # pytest's tmp is closed to the postgres user
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    run_as = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the package's postgres user
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                        f"-k {sockets} -p 54329 -c listen_addresses=''", "start"], check=True, capture_output=True,
                       timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as err:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start here: {err}")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={sockets}&port=54329"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_study_on_a_postgresql_server(workdir, postgres_url):
    widths = [4, 6, 8, 10, 12, 16]
    path = _search_file(workdir, widths, epochs=30)
    workers = [_tune_process(path, workdir, "--resume", "--storage", postgres_url) for _ in range(2)]
    for process in workers:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="workers", storage=postgres_url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["width"] for t in complete) == widths
    assert len({t.user_attrs["worker"] for t in complete}) == 2
