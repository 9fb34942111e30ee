"""Apply each mutation of mutations.py to a copy of the tree, run its tests there, print what caught it.

    python -m tests.mutation                 # every mutation (`make mutants`)
    python -m tests.mutation --only l1_sign,patience_off_by_one
    python -m tests.mutation --baseline      # first run each named test set unmutated: all must pass
    python -m tests.mutation --list

The real files are never edited: src/, tests/, configs/, scripts/, pyproject.toml and README.md are copied
to a temporary folder once; each mutation rewrites one file there, runs `pytest <its tests>` with
PYTHONPATH at the copy, and puts the file back. A result is
  caught      some test failed an assertion (assert, pytest.approx, np.testing, pytest.raises' match);
  crash-only  tests failed, but only by exceptions other than assertions (the bug was hit, not checked);
  survived    every test passed;
  stale       the original text is not in the file (or not exactly once): the mutation needs updating.
Exit status 0 only when every mutation was caught.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mutation.mutations import MUTATIONS, Mutation

REPO = Path(__file__).resolve().parents[2]
COPIED = ("src", "tests", "configs", "scripts", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


@dataclass
class Outcome:
    status: str  # caught | crash-only | survived | stale
    detail: str = ""
    seconds: float = 0.0


def copy_tree(target: Path) -> None:
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, target / name)


def run_tests(root: Path, tests: list[str]) -> tuple[int, list[dict]]:
    """pytest on `tests` inside `root` with its sources first on the path; (exit code, recorded failures)."""
    report = root / ".mutant_report.jsonl"
    report.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}", "MUTANT_REPORT": str(report),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.mutation.plugin", "-p", "no:cacheprovider",
               "--tb=no", "--no-header", "-o", "addopts=", "-W", "ignore::DeprecationWarning", *tests]
    done = subprocess.run(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    if done.returncode not in (0, 1) and not failures:  # usage error, nothing collected, interrupted
        failures = [{"test": " ".join(tests), "type": "crash",
                     "message": f"pytest exit {done.returncode}: {done.stdout.strip().splitlines()[-1:]}"}]
    return done.returncode, failures


def classify(returncode: int, failures: list[dict]) -> Outcome:
    checks = [f for f in failures if f["type"] == "assertion"]
    if checks:
        return Outcome("caught", f"{checks[0]['test']}: {checks[0]['message']}")
    if failures or returncode != 0:
        first = failures[0] if failures else {"test": "?", "message": f"pytest exit {returncode}"}
        return Outcome("crash-only", f"{first['test']}: {first['message']}")
    return Outcome("survived")


def apply(root: Path, mutation: Mutation) -> str | None:
    """Rewrite the mutated file in the copy; returns its original text, or None when the mutation is stale."""
    path = root / mutation.file
    if not path.is_file():
        return None
    text = path.read_text()
    if text.count(mutation.original) != 1:
        return None
    path.write_text(text.replace(mutation.original, mutation.replacement))
    return text


def run_mutation(root: Path, mutation: Mutation) -> Outcome:
    original = apply(root, mutation)
    if original is None:
        count = (root / mutation.file).read_text().count(mutation.original) if (root / mutation.file).is_file() else 0
        return Outcome("stale", f"original text found {count} times in {mutation.file} (needs exactly 1)")
    started = time.perf_counter()
    try:
        outcome = classify(*run_tests(root, mutation.tests))
    finally:
        (root / mutation.file).write_text(original)
    outcome.seconds = time.perf_counter() - started
    return outcome


def one_line(text: str) -> str:
    return " ".join(text.split())


def table(rows: list[tuple[Mutation, Outcome]]) -> str:
    lines = ["| mutation | file | what | result | s | first failure |", "|---|---|---|---|---|---|"]
    for mutation, outcome in rows:
        detail = one_line(outcome.detail).replace("|", "/")[:110]
        lines.append(f"| {mutation.id} | {mutation.file.removeprefix('src/lit_basics/')} | {mutation.description} "
                     f"| {outcome.status} | {outcome.seconds:.0f} | {detail} |")
    counts = {s: sum(o.status == s for _, o in rows) for s in ("caught", "crash-only", "survived", "stale")}
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated mutation ids")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="first check every named test set passes unmutated")
    args = parser.parse_args(argv)
    ids = [m.id for m in MUTATIONS]
    if len(set(ids)) != len(ids):
        parser.error(f"duplicate mutation ids in mutations.py: {sorted({i for i in ids if ids.count(i) > 1})}")
    chosen = MUTATIONS
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in ids]
        if unknown:
            parser.error(f"unknown mutation {unknown[0]!r}; allowed: {', '.join(ids)}")
        chosen = [m for m in MUTATIONS if m.id in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.id}: {m.file}: {m.description} [{' '.join(m.tests)}]")
        return 0
    with tempfile.TemporaryDirectory(prefix="mutants-") as folder:
        root = Path(folder)
        copy_tree(root)
        if args.baseline:
            for tests in sorted({tuple(m.tests) for m in chosen}):
                outcome = classify(*run_tests(root, list(tests)))
                if outcome.status != "survived":
                    print(f"baseline: {' '.join(tests)} fails unmutated ({outcome.detail}); fix it first",
                          file=sys.stderr)
                    return 2
        rows = []
        for mutation in chosen:
            outcome = run_mutation(root, mutation)
            print(f"{mutation.id}: {outcome.status} ({outcome.seconds:.0f} s) {one_line(outcome.detail)[:150]}",
                  flush=True)
            rows.append((mutation, outcome))
    print()
    print(table(rows))
    return 0 if all(o.status == "caught" for _, o in rows) else 1
