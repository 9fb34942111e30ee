"""Shared fixtures: run the CLI in-process inside a temporary folder, tiny MNIST IDX files."""

import struct
from pathlib import Path

import numpy as np
import pytest

from lit_basics.cli import cli_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def run_cli(*args: str) -> dict:
    """`python scripts/train.py ARGS` in this process, quiet; returns the metrics dict."""
    subcommand, *rest = args
    return cli_main([subcommand, *rest, *QUIET])


def config(name: str) -> str:
    return str(CONFIGS / f"{name}.yaml")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run inside an empty folder so logs/ and reports/ land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (the MNIST format): magic, big-endian dims, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_tiny_mnist(root: Path, n_train: int = 200, n_test: int = 50, seed: int = 0) -> Path:
    """MNIST-format files whose class is readable from the image (a bright row per digit)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, size=(n, 28, 28))
        images[np.arange(n), 2 * labels + 4, :] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory) -> dict:
    """One full iris fit, shared by the tests that need a trained checkpoint."""
    import os

    folder = tmp_path_factory.mktemp("iris_run")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        metrics = run_cli("fit", "--config", config("iris"))
    finally:
        os.chdir(cwd)
    metrics["root"] = folder
    return metrics
