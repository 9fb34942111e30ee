"""A checkpoint carries its run's identity: the right one still tests and predicts, a transfer needs the flag."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from lit_basics.checkpoints import data_identity, epochs_done
from lit_basics.memory import estimate_bytes

from .conftest import config, run_cli


def shipped_model() -> dict:
    """The model section of configs/iris.yaml, which trained the session's iris run."""
    import yaml

    return yaml.safe_load(open(config("iris")))["model"]


@pytest.fixture
def iris_ckpt(iris_run, workdir):
    path = workdir / "iris.ckpt"
    shutil.copyfile(iris_run["root"] / iris_run["best_model_path"], path)
    return path


def test_a_checkpoint_records_data_identity_and_architecture_as_plain_values(iris_ckpt):
    checkpoint = torch.load(iris_ckpt, weights_only=True)
    split = {"seed": 42, "val_fraction": 0.2, "test_fraction": 0.3, "standardize": True, "folds": 0, "fold": 0}
    assert data_identity(checkpoint) == {"dataset": "iris", "source": None, "task": "classification",
                                         "num_features": 4, "feature_names": None, "classes": [0, 1, 2],
                                         "split": split}
    assert checkpoint["hyper_parameters"]["hidden_sizes"] == shipped_model()["hidden_sizes"]
    assert epochs_done(checkpoint) >= 1


def test_the_right_checkpoint_still_tests_and_predicts(iris_run, iris_ckpt, workdir, capsys):
    tested = run_cli("test", "--config", config("iris"), "--ckpt_path", str(iris_ckpt))
    assert tested["test/acc"] == pytest.approx(iris_run["test/acc"])  # the trained weights, not random ones
    run_cli("predict", "--config", config("iris"), "--ckpt_path", str(iris_ckpt))
    written = capsys.readouterr().out
    path = written.split("-> ")[-1].split()[0]
    assert len(pd.read_csv(path)) == 45
    assert "transfer:" not in capsys.readouterr().err


def test_model_settings_the_checkpoint_overrides_are_named(iris_run, iris_ckpt, capsys):
    capsys.readouterr()
    tested = run_cli("test", "--config", config("iris"), "--ckpt_path", str(iris_ckpt), "--model.hidden_sizes=[32]",
                     "--model.lr=0.5")
    assert tested["test/acc"] == pytest.approx(iris_run["test/acc"])  # the checkpoint's network ran
    note = capsys.readouterr().err
    model = shipped_model()
    assert "note: the checkpoint's model settings are used: " in note
    assert f"hidden_sizes {model['hidden_sizes']} (config: [32])" in note
    assert f"lr {model['lr']} (config: 0.5)" in note


def test_a_deliberate_transfer_runs_with_the_flag_and_says_what_differs(iris_ckpt, workdir, capsys):
    rng = np.random.default_rng(1)
    rows = [",".join(f"{v:.3f}" for v in rng.normal(size=4)) + f",{i % 3}" for i in range(60)]
    table = workdir / "four.csv"
    table.write_text("p,q,r,s,label\n" + "\n".join(rows) + "\n")
    args = ["--config", config("csv"), f"--data.path={table}", "--ckpt_path", str(iris_ckpt)]
    with pytest.raises(SystemExit):
        run_cli("test", *args)
    capsys.readouterr()
    tested = run_cli("test", *args, "--allow_transfer=true")
    err = capsys.readouterr().err
    assert "transfer: checkpoint" in err and "was trained on iris" in err and "csv file four.csv" in err
    assert 0.0 <= tested["test/acc"] <= 1.0


def test_resume_continues_when_max_epochs_is_raised(iris_run, workdir):
    last = iris_run["root"] / iris_run["log_dir"] / "checkpoints" / "last.ckpt"
    done = epochs_done(torch.load(last, weights_only=True))
    resumed = run_cli("fit", "--config", config("iris"), "--ckpt_path", str(last), f"--trainer.max_epochs={done + 2}",
                      "--trainer.callbacks=[]")
    assert len(resumed["history"]) == done + 2


def test_memory_estimate_counts_parameters_and_activations():
    params, needed = estimate_bytes(4, [10], 3, batch_size=8, eval_batch_size=16, training=True)
    assert params == 4 * 10 + 10 + 10 * 3 + 3
    assert needed == 4 * (params * 4 + max(8 * 10 * 3, 16 * 10 * 2))


def test_last_ckpt_is_the_last_epoch_and_test_last_scores_it(iris_run, workdir):
    run = iris_run["root"] / iris_run["log_dir"] / "checkpoints"
    last, best = (torch.load(run / name, weights_only=True) for name in ("last.ckpt", "best.ckpt"))
    assert epochs_done(last) == iris_run["epochs"] == len(iris_run["history"])
    assert best["epoch"] < last["epoch"] == iris_run["epochs"] - 1  # early stopping ran on past the best
    shutil.copytree(iris_run["root"] / "logs", workdir / "logs")
    explicit = run_cli("test", "--config", config("iris"), "--ckpt_path", str(run / "last.ckpt"))
    latest = run_cli("test", "--config", config("iris"), "--ckpt_path", "last")
    assert latest["test/loss"] == explicit["test/loss"] != iris_run["test/loss"]  # iris_run tested the best


def _fit_iris(*args: str) -> dict:
    return run_cli("fit", "--config", config("iris"), "--trainer.max_epochs=2", *args)


def _refused(capsys, *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        _fit_iris(*args)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_resume_last_takes_the_run_of_this_identity_in_its_own_folder(workdir, capsys):
    _fit_iris()
    _fit_iris("--model.lr=0.1")  # newer, another identity
    resumed = _fit_iris("--trainer.max_epochs=3", "--ckpt_path", "last")
    assert resumed["log_dir"] == "logs/iris/version_0" and len(resumed["history"]) == 3
    assert (workdir / "logs/iris/version_0/run_identity.json").is_file()
    line = _refused(capsys, "--trainer.max_epochs=4", "--ckpt_path", "last", "--model.lr=0.5")  # newest first
    assert line == ("error: --ckpt_path last: no run under logs/iris has this configuration; "
                    "version_0: model.lr=0.03 there, 0.5 here | version_1: model.lr=0.1 there, 0.5 here; "
                    "pass the run's settings, or drop --ckpt_path to start a new run")
    explicit = "logs/iris/version_1/checkpoints/last.ckpt"
    continued = _fit_iris("--trainer.max_epochs=3", "--ckpt_path", explicit, "--model.lr=0.1")
    assert continued["log_dir"] == "logs/iris/version_1" and len(continued["history"]) == 3
    assert not (workdir / "logs/iris/version_2").exists()


def test_a_resume_with_changed_settings_is_refused_naming_both_values(workdir, capsys):
    _fit_iris()
    last = "logs/iris/version_0/checkpoints/last.ckpt"
    line = _refused(capsys, "--trainer.max_epochs=4", "--ckpt_path", last, "--model.lr=0.5")
    assert line.startswith(f"error: fit --ckpt_path '{last}': the checkpoint was trained with lr 0.03 (config: 0.5); "
                           "a resume may change only trainer.max_epochs, EarlyStopping patience")
    line = _refused(capsys, "--trainer.max_epochs=4", "--ckpt_path", last, "--data.batch_size=16")
    assert line.startswith("error: fit --ckpt_path: run 'logs/iris/version_0' was trained with other settings: "
                           "data.batch_size=8 there, 16 here")
    line = _refused(capsys, "--trainer.max_epochs=4", "--ckpt_path", last, "--trainer.min_epochs=1")
    assert "trainer.min_epochs=None there, 1 here" in line
    assert len(_fit_iris("--trainer.max_epochs=4", "--ckpt_path", last)["history"]) == 4  # max_epochs may change


def test_a_second_process_on_a_run_folder_is_refused(workdir, capsys):
    import os

    _fit_iris()
    lock = workdir / "logs/iris/version_0/.lock"
    lock.write_text(str(os.getppid()))  # a live process other than this one holds the run
    line = _refused(capsys, "--trainer.max_epochs=3", "--ckpt_path", "last")
    assert line == (f"error: run folder 'logs/iris/version_0' is in use by process {os.getppid()} (its .lock); "
                    "wait for it to finish, or write another run")
    assert lock.read_text() == str(os.getppid())  # the holder's lock is left alone
    lock.write_text("999999999")  # a holder that died: taken over, and released at the end
    assert len(_fit_iris("--trainer.max_epochs=3", "--ckpt_path", "last")["history"]) == 3
    assert not lock.exists()


def test_a_csv_changed_in_its_rows_is_refused_for_test_and_named_for_predict(workdir, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    table = pd.DataFrame({"a": x[:, 0].round(3), "b": x[:, 1].round(3), "label": (x[:, 0] + x[:, 1] > 0).astype(int)})
    path = workdir / "rows.csv"
    table.to_csv(path, index=False)
    args = ["--config", config("csv"), f"--data.path={path}"]
    fitted = run_cli("fit", *args, "--trainer.max_epochs=2")
    ckpt = str(workdir / fitted["best_model_path"])
    assert set(torch.load(ckpt, weights_only=True)["lit_basics_data_rows"]) == {"train", "val", "test"}
    assert run_cli("test", *args, "--ckpt_path", ckpt)["test/acc"] == pytest.approx(fitted["test/acc"])
    table.sample(frac=1.0, random_state=1).to_csv(path, index=False)  # same header, same rows, shuffled
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli("test", *args, "--ckpt_path", ckpt)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: checkpoint {ckpt!r} was trained on other rows of {str(path)!r}: its train, val, test rows differ "
        "(the file changed since); its test rows could include rows it trained on: retrain on this file, "
        "or use the file it was trained on")
    run_cli("predict", *args, "--ckpt_path", ckpt)
    assert f"note: checkpoint {ckpt!r} was trained on other rows" in capsys.readouterr().err


def test_a_kill_9_in_the_middle_of_a_save_keeps_the_old_file_and_the_orphan_goes_at_the_next_save(tmp_path):
    """A process SIGKILLed half-way through writing `last.ckpt` (no cleanup can run): the old file is intact,
    the half-written bytes are in `.last.ckpt.<pid>.tmp` beside it, and the next save removes them."""
    import subprocess
    import sys

    from lit_basics.atomic_files import atomic_write_bytes

    from .conftest import REPO

    target = tmp_path / "last.ckpt"
    atomic_write_bytes(target, b"previous epoch" * 1000)
    script = ("import os, signal, sys\nfrom lit_basics import atomic_files\n"
              "def half_then_killed(handle, data):\n"
              "    handle.write(data[: len(data) // 2]); handle.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
              "atomic_files.write_chunk = half_then_killed\n"
              "atomic_files.atomic_write_bytes(sys.argv[1], b'next epoch' * 5000)\n")
    process = subprocess.run([sys.executable, "-c", script, str(target)], env={"PYTHONPATH": str(REPO / "src")},
                             capture_output=True, timeout=120)
    assert process.returncode == -9, process.stderr
    assert target.read_bytes() == b"previous epoch" * 1000
    orphans = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(orphans) == 1 and orphans[0].startswith(".last.ckpt.") and orphans[0].endswith(".tmp")
    atomic_write_bytes(tmp_path / "best.ckpt", b"best")  # any later save in the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
