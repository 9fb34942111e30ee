"""BatchNorm against none on MNIST-format files: the 784-64-128-64 net, 2 epochs, through train.py.

No MNIST download here: the files are written from scikit-learn's 8x8 digits, each upscaled to 28x28 at a
random offset with pixel noise (real handwriting, MNIST's format and size class, harder than the tests'
files whose class is one bright row).
"""

import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_digit_mnist(root: Path, n_train: int = 12000, n_test: int = 2000, seed: int = 0) -> Path:
    """MNIST-format IDX files under root/MNIST/raw from scikit-learn's digits (train and test from disjoint images)."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    pools = {"train": order[: int(0.8 * len(order))], "t10k": order[int(0.8 * len(order)):]}
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        picked = rng.choice(pools[prefix], n)
        big = np.kron(images[picked].reshape(n, 8, 8), np.ones((3, 3))) * (255 / 16)  # (n, 24, 24)
        out = np.zeros((n, 28, 28))
        for i, (dy, dx) in enumerate(rng.integers(0, 5, size=(n, 2))):
            out[i, dy : dy + 24, dx : dx + 24] = big[i]
        out = np.clip(out + rng.normal(0, 40, out.shape), 0, 255)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", out)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[picked])
    return root


def norm_comparison(epochs: int = 2, n_train: int = 12000) -> dict[str, Any]:
    """Test accuracy of the 784-64-128-64 net with --model.norm none and batch (same seed and files)."""
    from lit_basics.cli import cli_main

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = write_digit_mnist(Path(folder), n_train=n_train)
        for norm in ("none", "batch"):
            metrics = cli_main(["fit", "--config", str(Path(__file__).resolve().parents[3] / "configs/mnist.yaml"),
                            f"--data.init_args.root={root}", "--data.init_args.download=false",
                            "--model.hidden_sizes=[64, 128, 64]", "--model.dropout=0.0", f"--model.norm={norm}",
                            f"--trainer.max_epochs={epochs}", "--trainer.logger=false",
                            "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={folder}/logs"])
            out[f"mnist_norm_{norm}_test_acc"] = float(metrics["test/acc"])
    return out
