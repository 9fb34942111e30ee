"""One run, one identity: what a run folder was trained with, which run `--ckpt_path last` resumes, one writer.

A fit writes `<run>/run_identity.json`: its data options, model settings, seed and trainer limits, and
their sha256. `--ckpt_path last` resumes the newest run whose identity is this command's (or stops
naming the candidates and how they differ); a resume whose settings differ from its run's is refused,
except for RESUMABLE ones. `<run>/.lock` keeps a second process out of a run folder.
"""

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lit_basics.atomic_files import atomic_write_text, process_alive
from lit_basics.errors import ConfigError

IDENTITY_FILE = "run_identity.json"
LOCK_FILE = ".lock"
# What a run's results depend on besides data, model and seed (max_epochs is RESUMABLE: not here).
TRAINER_LIMITS = ("max_steps", "min_epochs", "min_steps", "max_time", "limit_train_batches", "limit_val_batches",
                  "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm", "precision",
                  "check_val_every_n_epoch", "val_check_interval", "deterministic")
NOT_IDENTITY_DATA = ("eval_batch_size", "num_workers", "download")  # change no trained weight
LINKED = ("input_dim", "num_classes", "task")  # set from the data
RESUMABLE = ("trainer.max_epochs", "EarlyStopping patience (callbacks)")  # may change on resume; README lists them
SCORING = ("data", "model")  # what test/validate/predict --ckpt_path last match on


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def identity_of(config: Any) -> dict[str, Any]:
    """The identity of a parsed subcommand config: data, model, seed and trainer sections of plain values."""
    data = _plain(config.get("data")) or {}
    init_args = {k: v for k, v in (data.get("init_args") or {}).items() if k not in NOT_IDENTITY_DATA}
    model = {k: v for k, v in (_plain(config.get("model")) or {}).items() if k not in LINKED}
    trainer = _plain(config.get("trainer")) or {}
    return {"data": {"class_path": data.get("class_path"), **init_args}, "model": model,
            "seed": _plain(config.get("seed_everything")), "trainer": {k: trainer.get(k) for k in TRAINER_LIMITS}}


def digest(identity: dict[str, Any], sections: tuple[str, ...] | None = None) -> str:
    chosen = {k: v for k, v in identity.items() if sections is None or k in sections}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()


def write_identity(run_dir: str | Path, identity: dict[str, Any]) -> None:
    text = json.dumps({"sha256": digest(identity), **identity}, indent=1, sort_keys=True)
    atomic_write_text(Path(run_dir) / IDENTITY_FILE, text + "\n")


def read_identity(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's recorded identity (None: a run of an older lit-basics, or none written yet)."""
    try:
        recorded = json.loads((Path(run_dir) / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {k: recorded.get(k) for k in ("data", "model", "seed", "trainer")} if isinstance(recorded, dict) else None


def differences(there: dict[str, Any], here: dict[str, Any], sections: tuple[str, ...] | None = None) -> list[str]:
    """`model.lr=0.03 there, 0.5 here` for each setting that differs."""
    out = []
    for section in sections or ("data", "model", "seed", "trainer"):
        a, b = there.get(section), here.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{section}.{k}={a.get(k)!r} there, {b.get(k)!r} here" for k in sorted({*a, *b})
                    if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{section}={a!r} there, {b!r} here")
    return out


def choose_run(base: Path, pattern: str, identity: dict[str, Any], fit: bool) -> Path:
    """The newest `base/pattern/checkpoints/last.ckpt` whose run has this identity, else one line naming why not."""
    candidates = sorted(base.glob(f"{pattern}/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ConfigError(f"--ckpt_path last: no {base}/{pattern}/checkpoints/last.ckpt to resume from")
    sections = None if fit else SCORING
    matching = [p for p in candidates if (rec := read_identity(p.parent.parent)) is not None
                and digest(rec, sections) == digest(identity, sections)]
    if matching:
        return matching[-1]
    described = []
    for path in reversed(candidates[-3:]):
        recorded = read_identity(path.parent.parent)
        why = ("records no identity (an older lit-basics); pass its last.ckpt as --ckpt_path" if recorded is None
               else "; ".join(differences(recorded, identity, sections)[:3]))
        described.append(f"{path.parent.parent.name}: {why}")
    more = f" (and {len(candidates) - 3} older)" if len(candidates) > 3 else ""
    raise ConfigError(f"--ckpt_path last: no run under {base} has this configuration; {' | '.join(described)}{more}; "
                      "pass the run's settings, or drop --ckpt_path to start a new run")


def check_resume_identity(run_dir: Path, identity: dict[str, Any]) -> None:
    """A resumed fit keeps its run's settings: a change (other than RESUMABLE ones) is refused naming both values."""
    recorded = read_identity(run_dir)
    if recorded is None:
        return
    changed = differences(recorded, identity)
    if changed:
        raise changed_resume_error(f"fit --ckpt_path: run {str(run_dir)!r} was trained with other settings:", changed)


def changed_resume_error(what: str, changed: list[str]) -> ConfigError:
    """`<what> lr 0.03 (config: 0.5); a resume may change only ...`: the one line of a refused resume."""
    return ConfigError(f"{what} {'; '.join(changed[:3])}; a resume may change only {', '.join(RESUMABLE)}; "
                       "resume with the run's settings, or drop --ckpt_path to start a new run")


def run_folder_of(checkpoint: str | Path, base: Path) -> str | None:
    """`version_3` when `checkpoint` is `base/version_3/checkpoints/x.ckpt`, else None."""
    path = Path(checkpoint).resolve()
    if path.parent.name != "checkpoints" or path.parent.parent.parent != base.resolve():
        return None
    return path.parent.parent.name


def logger_version(run: str) -> int | str:
    return int(run.removeprefix("version_")) if re.fullmatch(r"version_\d+", run) else run


def is_launcher() -> bool:
    """This process is rank 0 of its run (DDP's other ranks get LOCAL_RANK/NODE_RANK from the launcher)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold `<run>/.lock` (this process's id) while a fit writes the run; a live holder is refused in one line.

    Only the launching process (rank 0) takes it: DDP's other ranks write nothing there.
    """
    if not is_launcher():
        yield
        return
    lock = Path(run_dir) / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = lock.read_text().strip() if lock.exists() else ""
            if holder.isdigit() and process_alive(int(holder)) and int(holder) != os.getpid():
                raise ConfigError(f"run folder {str(run_dir)!r} is in use by process {holder} (its {LOCK_FILE}); "
                                  "wait for it to finish, or write another run") from None
            if attempt:
                raise ConfigError(f"run folder {str(run_dir)!r}: its {LOCK_FILE} cannot be taken over") from None
            lock.unlink(missing_ok=True)  # left by a process that died
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
