"""Comparison experiments end to end on tiny settings, and their failure modes."""

from pathlib import Path

import pandas as pd
import pytest

from lit_basics.experiments.commands import compare_main
from lit_basics.experiments.compare.report import spread_sentences, summarize

from .conftest import config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _spec(tmp_path: Path, variants: str, plots: str = "[curves, boundaries, gap, weights]") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"name: tiny\nbase: {config('moons')}\nseeds: [0, 1]\ntarget_accuracy: 0.6\nplots: {plots}\n"
        "common:\n  trainer.max_epochs: 2\n  data.init_args.n_samples: 200\n"
        f"variants:\n{variants}"
    )
    return path


TWO_VARIANTS = (
    "  relu: {model.activation: relu}\n"
    "  tanh_wide: {model.activation: tanh, model.hidden_sizes: [16, 16, 16]}\n"
)


def test_tiny_comparison_writes_tables_figures_and_runs(workdir, capsys):
    readme = workdir / "README.md"
    readme.write_text("# Project\n\n<!-- results:tiny:start -->\nold\n<!-- results:tiny:end -->\n\n## After\n")
    out = compare_main(["--config", str(_spec(workdir, TWO_VARIANTS)), "--no-progress", "--readme", str(readme)])
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 and set(results["variant"]) == {"relu", "tanh_wide"}
    expected = {"variant", "seed", "hidden_sizes", "activation", "optimizer", "lr", "batch_size", "best_val_acc",
                "test_acc", "final_train_loss", "train_val_gap", "loss_gap", "epochs", "fit_seconds",
                "time_to_target"}
    assert expected <= set(results.columns)
    assert (results["epochs"] == 2).all()
    assert results.loc[results["variant"] == "tanh_wide", "hidden_sizes"].eq("[16, 16, 16]").all()
    markdown = (out / "results.md").read_text()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ") and "variant" not in line]
    assert len(table_rows) == 2 and "(best)" in table_rows[0]
    assert "seed-to-seed standard error" in markdown
    for name in ("curves", "boundaries", "gap", "weights"):
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 5000, name
        assert f"![{name}]({name}.png)" in markdown
    for variant in ("relu", "tanh_wide"):
        for seed in (0, 1):
            run = Path("logs/tiny") / variant / f"seed_{seed}"
            assert list(run.glob("events.out.tfevents.*")) and (run / "checkpoints" / "best.ckpt").is_file()
    assert list(Path("logs/tiny/figures").glob("events.out.tfevents.*"))
    assert "report: reports/tiny/" in capsys.readouterr().out
    text = readme.read_text()
    assert "old" not in text and text.endswith("## After\n") and "### tiny" in text
    assert "![curves](docs/tiny_curves.png)" in text and (workdir / "docs" / "tiny_curves.png").is_file()


def test_rerun_replaces_old_runs_instead_of_stacking_them(workdir):
    spec = _spec(workdir, "  relu: {model.activation: relu}\n", plots="[curves]")
    compare_main(["--config", str(spec), "--no-progress", "--seeds", "1"])
    compare_main(["--config", str(spec), "--no-progress", "--seeds", "1"])
    assert len(list(Path("logs/tiny/relu/seed_0").glob("events.out.tfevents.*"))) == 2  # one fit + one test


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (
            "  ok: {model.activation: relu}\n  typo: {model.activaton: relu}\n",
            "variant 'typo': --model.activaton is not an argument; did you mean --model.activation?",
        ),
        ("  bad: {model.activation: swish}\n", "variant 'bad': unknown activation 'swish'"),
        ("  bad: {model.dropout: 2}\n", "variant 'bad': dropout=2.0 is outside the allowed range"),
    ],
)
def test_bad_variant_fails_before_anything_runs(workdir, capsys, variants, message):
    with pytest.raises(SystemExit) as info:
        compare_main(["--config", str(_spec(workdir, variants)), "--no-progress"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not Path("logs").exists() and not Path("reports").exists()


def test_bad_experiment_files_are_named(workdir, capsys):
    path = workdir / "broken.yaml"
    path.write_text("name: x\nbase: nowhere.yaml\nvariants: {a: {}}\n")
    with pytest.raises(SystemExit):
        compare_main(["--config", str(path)])
    assert "base config" in capsys.readouterr().err
    path.write_text("name: x\nbase: nowhere.yaml\nvariant: {a: {}}\n")
    with pytest.raises(SystemExit):
        compare_main(["--config", str(path)])
    assert "unknown keys ['variant']" in capsys.readouterr().err


def test_spread_sentences_separate_real_differences_from_noise():
    results = pd.DataFrame(
        {
            "variant": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "seed": [0, 1, 2] * 3,
            "best_val_acc": [0.95, 0.96, 0.95, 0.80, 0.81, 0.80, 0.94, 0.97, 0.95],
            "best_val_loss": [0.1] * 9,
        }
    )
    summary = summarize(results)
    assert summary.index[0] == "a"
    sentences = " ".join(spread_sentences(summary, results))
    assert "than **b**, more than twice" in sentences and "a real difference" in sentences
    assert "than **c**, within twice" in sentences


@pytest.mark.parametrize("name", ["activations", "optimizers", "regularization"])
def test_shipped_experiments_parse_and_build(name):
    from lit_basics.experiments.compare.runner import validate
    from lit_basics.experiments.compare.spec import load_spec

    spec = load_spec(Path(config("experiments/" + name)))
    validate(spec)
    assert len(spec.seeds) == 3 and len(spec.variants) >= 4
