"""The benchmark's code paths on tiny sizes (its timings are not tested: machines here are shared)."""

import numpy as np

from lit_basics import benchmark


def test_cv_comparison_runs_both_searches_and_scores_them_alike():
    out = benchmark.cv_comparison(epochs=1, folds=2, repeats=1)
    assert out["cv_ours_s"] > 0 and out["cv_sklearn_s"] > 0
    assert out["cv_speedup_vs_sklearn"] == out["cv_sklearn_s"] / out["cv_ours_s"]
    assert 0.1 < out["cv_best_acc_ours"] <= 1 and 0.1 < out["cv_best_acc_sklearn"] <= 1
    assert out["cv_configurations"] == len(benchmark.GRID) == 24 and out["cv_workers"] >= 1
    assert out["searchcv_vs_gridsearchcv"] == out["cv_sklearn_s"] / out["searchcv_s"]
    assert 0.1 < out["searchcv_best_acc"] <= 1


def test_batched_speedup_and_the_table_name_each_target():
    out = benchmark.batched_speedup(models=3, epochs=1)
    assert out["batched_models"] == 3 and out["batched_per_model_speedup"] > 0
    text = benchmark.table({**out, "cv_speedup_vs_sklearn": 4.5, "lightning_vs_raw_digits": 1.3})
    assert ">= 4.0  met" in text and "<= 1.2  NOT met" in text
    assert not any(line.startswith("batched_per_model_s ") for line in text.splitlines())  # seconds: JSON only


def test_estimator_comparison_times_fnnclassifier_against_mlpclassifier():
    out = benchmark.estimator_comparison(epochs=1, repeats=1)
    key = "estimator_vs_mlpclassifier_digits"
    assert out[key] == out[f"{key}_ours_s"] / out[f"{key}_reference_s"]
    assert 0.1 < out["estimator_acc_digits"] <= 1 and 0.1 < out["mlpclassifier_acc_digits"] <= 1


def test_generic_vs_fast_trains_the_same_models_on_both_paths():
    out = benchmark.generic_vs_fast(epochs=1, folds=2, repeats=1)
    assert out["generic_vs_fast_batched_digits"] == out["generic_batched_ours_s"] / out["generic_batched_reference_s"]
    assert out["generic_vs_fast_first_epoch_val_loss_difference"] < 5e-3  # rounding only: test_components holds 2e-5


def test_ensemble_comparison_scores_both_and_times_them_against_the_search_alone():
    out = benchmark.ensemble_comparison(epochs=1, folds=2, n_ensemble=2)
    assert out["ensemble_vs_refit_digits"] == out["ensemble_test_acc_digits"] - out["refit_test_acc_digits"]
    assert 0.1 < out["ensemble_test_acc_digits"] <= 1 and out["ensemble_overhead_digits"] > 0


def test_generated_tables_have_their_columns_gaps_and_classes_and_repeat_by_seed():
    from lit_basics.benchmark.ensemble_tables import TABLES, make_table

    for spec in TABLES:
        x, y = make_table(spec, seed=3)
        assert x.shape == (spec.rows, spec.numeric + len(spec.levels))
        assert x.select_dtypes("number").shape[1] == spec.numeric
        strings = x.select_dtypes(exclude="number")
        assert [strings[c].dropna().nunique() for c in strings] == list(spec.levels)
        assert abs(x.isna().to_numpy().mean() - spec.missing) < 0.02
        assert sorted(set(y)) == list(range(spec.classes)) and np.bincount(y).min() >= 0.05 * spec.rows
    first, again, other = (make_table(TABLES[0], seed=s) for s in (3, 3, 4))
    assert first[0].equals(again[0]) and np.array_equal(first[1], again[1]) and not first[0].equals(other[0])


def test_ensemble_tables_compare_refit_and_ensemble_on_the_same_test_rows():
    from lit_basics.benchmark.ensemble_tables import ESTIMATOR, QUICK_GRID, TABLES, compare_on_split, make_table

    x, y = make_table(TABLES[2], seed=0)  # survey: 400 rows, 4 classes, 15% gaps
    out = compare_on_split(x, y, seed=1, grid=QUICK_GRID, estimator={**ESTIMATOR, "max_iter": 3}, n_ensemble=2,
                           folds=2)
    assert (out["n_train"], out["n_test"]) == (320, 80)
    assert all(0 <= out[k] <= 1 for k in ("refit_acc", "ensemble_acc", "refit_cv", "ensemble_cv"))
    assert all(v * 80 == round(v * 80) for v in (out["refit_acc"], out["ensemble_acc"]))  # scored on 80 rows
    assert 0 < out["search_s"] <= out["refit_s"] and out["ensemble_s"] > 0


def test_ensemble_tables_quick_run_prints_one_line_per_table(capsys):
    from lit_basics.benchmark.ensemble_tables import main

    stats = main(["--quick", "--seeds", "2", "--only", "clinic,iris"])
    assert [s["table"] for s in stats] == ["clinic", "iris"] and all(s["seeds"] == 2 for s in stats)
    assert stats[0]["categorical"] == 2 and stats[1]["categorical"] == 0
    text = capsys.readouterr().out
    assert text.count("\n| clinic | 600 | 6 / 2 | 2 |") == 1 and "| iris | 150 | 4 / 0 | 3 | 0.0% |" in text
