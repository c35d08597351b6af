"""The smallest good network: trainable-parameter counts, the one-standard-error rule,
``TuningResult.simplest`` and ``refit="simplest"`` / ``nn-tune run --refit simplest``."""

from __future__ import annotations

import json
import math

import keras
import pandas as pd
import pytest

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning import ConfigError, SearchSpace, tune
from nn_tuning.result import one_standard_error


def _table(rows):
    """A trials table: (mean-free) fold scores, size, state, optional Hyperband budget."""
    out = []
    for i, (folds, size, *rest) in enumerate(rows):
        state = "complete" if all(math.isfinite(f) for f in folds) else "failed"
        row = {"trial": i, "mean_score": sum(folds) / len(folds) if state == "complete"
               else math.nan, "n_params": size, "state": state}
        row.update({f"fold{k}_score": f for k, f in enumerate(folds)})
        if rest:
            row["budget"] = rest[0]
        out.append(row)
    frame = pd.DataFrame(out)
    frame["n_params"] = frame["n_params"].astype("Int64")
    return frame


def test_standard_error_uses_ddof_1_over_root_folds():
    # Best: folds 1.0, 0.8 -> mean 0.9, std (ddof=1) 0.1414, SE 0.1 (ddof=0 would give 0.0707).
    table = _table([([1.0, 0.8], 1000), ([0.83, 0.81], 50), ([0.9, 0.6], 10)])
    choice = one_standard_error(table)
    assert choice["std_error"] == pytest.approx(0.1)
    assert choice["threshold"] == pytest.approx(0.8)
    assert (choice["trial"], choice["n_params"], choice["score"]) == (1, 50, pytest.approx(0.82))
    assert choice["best_trial"] == 0


def test_ties_in_size_go_to_the_higher_score_and_unknown_sizes_are_skipped():
    table = _table([([1.0, 0.8], 100), ([0.85, 0.85], 20), ([0.9, 0.88], 20),
                    ([0.88, 0.88], None)])
    choice = one_standard_error(table)
    assert (choice["best_trial"], choice["trial"], choice["n_params"]) == (0, 2, 20)
    # The best's own size unknown and nothing else within one SE: no choice.
    assert one_standard_error(_table([([0.95, 0.95], None), ([0.5, 0.5], 10)])) is None


def test_partial_budget_and_failed_trials_are_left_out():
    table = _table([([0.99, 0.99], 5, 2), ([0.8, 0.78], 30, 6), ([0.7, 0.7], 10, 6),
                    ([math.nan, math.nan], 1, 6)])
    choice = one_standard_error(table, budget_epochs=6)
    assert choice["best_trial"] == 1 and choice["trial"] == 1
    # Without a budget (not Hyperband), the 2-epoch trial is an ordinary one.
    assert one_standard_error(table)["trial"] == 0


def test_no_counts_means_no_choice():
    table = _table([([0.9, 0.8], None), ([0.7, 0.8], None)])
    assert one_standard_error(table) is None
    assert one_standard_error(table.drop(columns="n_params")) is None
    assert one_standard_error(pd.DataFrame()) is None


def _keras_count(builder, **kwargs):
    return int(sum(math.prod(w.shape) for w in builder(**kwargs).trainable_weights))


@pytest.mark.parametrize("strategy", ["grid", "manual"])
def test_each_trial_stores_its_trainable_parameters(advertising, strategy, tmp_path):
    X, y = advertising
    space = SearchSpace(neurons=[2, 16])
    result = tune(mlp_regressor, space, X, y, strategy=strategy, cv=2, epochs=2,
                  batch_size=40, configs=[{"neurons": 2}, {"neurons": 16}],
                  directory=tmp_path / strategy)
    expected = [_keras_count(mlp_regressor, input_dim=3, neurons=p["neurons"])
                for p in result.trial_params]
    assert list(result.trials["n_params"]) == expected
    saved = pd.read_csv(tmp_path / strategy / "trials.csv")
    assert list(saved["n_params"]) == expected
    simplest = result.simplest
    assert simplest["n_params"] in expected
    assert result.simplest_params == simplest["params"]
    summary = json.loads((tmp_path / strategy / "summary.json").read_text())
    assert summary["simplest"]["n_params"] == simplest["n_params"]
    assert summary["refit"] == "best"


def test_classifier_sizes_and_refit_simplest(iris):
    X, y = iris
    space = SearchSpace(hidden_layers=[[32, 32], [3]])
    result = tune(mlp_classifier, space, X, y, strategy="grid", cv=2, epochs=3,
                  batch_size=16, refit="simplest")
    sizes = {tuple(p["hidden_layers"]): n
             for p, n in zip(result.trial_params, result.trials["n_params"])}
    for layers, n in sizes.items():
        assert n == _keras_count(mlp_classifier, input_dim=4, n_classes=3, hidden_layers=layers)
    assert result.refit_choice == "simplest"
    assert _keras_count(lambda: result.best_model) == result.simplest["n_params"]


def test_a_bad_refit_is_refused_before_anything_is_written(advertising, tmp_path):
    X, y = advertising
    with pytest.raises(ConfigError, match="refit must be True, False, 'best' or 'simplest', "
                                          "got 'smallest'"):
        tune(mlp_regressor, {"neurons": [2]}, X, y, strategy="grid", cv=2, epochs=1,
             refit="smallest", directory=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_refit_simplest_exports_the_smallest_good_network(tmp_path):
    from nn_tuning import cli
    from run_folders import tiny_config

    config = tiny_config(tmp_path, space="neurons = [2, 24]", epochs=3)
    out = tmp_path / "run"
    assert cli.main(["run", str(config), "--out", str(out), "--quiet",
                     "--refit", "simplest"]) == 0
    summary = json.loads((out / "grid" / "summary.json").read_text())
    assert summary["refit"] == "simplest"
    model = keras.saving.load_model(out / "grid" / "best_model.keras")
    assert _keras_count(lambda: model) == summary["simplest"]["n_params"]
    assert "refit: smallest good" in (out / "report.md").read_text()
