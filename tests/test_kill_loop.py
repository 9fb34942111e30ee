"""The SIGKILL loop of issue 23: a fit killed at random moments, resumed each time with --ckpt_path last.

After every kill each checkpoint of the run loads and verifies its digest; the run then resumes; at
the end its metrics equal an uninterrupted run's. Bounded: each wait has a limit, the loop has KILLS
rounds (LIT_BASICS_KILLS, default 20). `pytest -m slow tests/test_kill_loop.py -s` prints the figures.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lit_basics.checkpoints import read_checkpoint
from lit_basics.cli import cli_main

from .conftest import QUIET, REPO, config

KILLS = int(os.environ.get("LIT_BASICS_KILLS", "20"))
EPOCHS = 2 * KILLS + 10  # a round trains one epoch or a few: the run outlasts the kills


def _args(save_dir: Path) -> list[str]:
    return ["fit", "--config", config("moons"), "--data.n_samples=20000", "--model.dropout=0.2",
            f"--trainer.max_epochs={EPOCHS}", f"--trainer.logger.init_args.save_dir={save_dir}", *QUIET]


def _wait(condition, limit: float = 180.0) -> bool:
    end = time.monotonic() + limit  # bounds a hung process only
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow
def test_twenty_sigkills_at_random_moments_lose_nothing(workdir):
    reference = cli_main(_args(workdir / "straight"))
    logs = workdir / "killed"
    run = logs / "moons"
    rng = random.Random(23)
    figures = {"kills": 0, "during_save": 0, "checkpoints_verified": 0,
               "finished_before_kill": 0}
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for _ in range(KILLS):
        resume = any(run.glob("*/checkpoints/last.ckpt"))
        newest = max((p.stat().st_mtime_ns for p in run.glob("*/checkpoints/last.ckpt")), default=0)
        process = subprocess.Popen([sys.executable, str(REPO / "scripts/train.py"), *_args(logs),
                                    *(["--ckpt_path", "last"] if resume else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        # training has started once a last.ckpt newer than the round's start exists; then a random moment
        progressed = _wait(lambda process=process, newest=newest: process.poll() is not None or max(
            (p.stat().st_mtime_ns for p in run.glob("*/checkpoints/last.ckpt")), default=0) > newest)
        assert progressed, "no progress within the limit"
        time.sleep(rng.uniform(0.0, 0.5))  # an epoch takes about as long: kills land in training and in saves
        if process.poll() is not None:
            figures["finished_before_kill"] += 1
            assert process.returncode == 0, process.stderr.read()[-2000:]
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        figures["kills"] += 1
        orphans = list(run.glob("*/checkpoints/.*.tmp"))
        figures["during_save"] += bool(orphans)
        for path in run.glob("*/checkpoints/*.ckpt"):
            assert read_checkpoint(str(path))["state_dict"]  # loads, and its digest verifies
            figures["checkpoints_verified"] += 1
    final = cli_main([*_args(logs), "--ckpt_path", "last"]) if figures["finished_before_kill"] == 0 else None
    figures["seconds"] = round(time.monotonic() - started, 1)
    if final is not None:
        assert Path(final["log_dir"]) == run / "version_0"  # one run folder, continued after every kill
        assert [h["val/loss"] for h in final["history"]] == [h["val/loss"] for h in reference["history"]]
        assert final["test/acc"] == reference["test/acc"]
        figures["final_epochs"] = len(final["history"])
    assert not list(run.glob("*/checkpoints/.*.tmp"))  # orphans of killed saves are gone after the next save
    print("kill loop:", json.dumps(figures))
    (workdir / "kill_loop.json").write_text(json.dumps(figures))
