import hashlib
import json

import keras
import numpy as np
import pandas as pd
import pytest

from model_builders import mlp_regressor
from nn_tuning import (
    AllTrialsFailedError,
    Choice,
    ConfigError,
    DataError,
    SearchSpace,
    SearchSpaceError,
    StoreError,
    Float,
    tune,
)

SPACE = SearchSpace(neurons=Choice([4, 8]))


def folder_digest(folder):
    """Names, sizes and contents of every file under ``folder`` (None if it does not exist)."""
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest())
                  for p in folder.rglob("*") if p.is_file())


def fragile_builder(neurons=4, explode=False, meta=None):
    """A user builder in the seed's style; ``explode`` raises inside the builder."""
    if explode:
        raise RuntimeError("builder exploded on purpose")
    model = keras.Sequential([keras.Input((meta["n_features_in_"],)),
                              keras.layers.Dense(neurons, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    return model


def test_failed_trials_are_recorded_and_never_best(advertising):
    X, y = advertising
    configs = [{"neurons": 4, "explode": True}, {"neurons": 8}, {"neurons": 8, "explode": True}]
    result = tune(fragile_builder, None, X, y, strategy="manual", configs=configs, cv=2,
                  epochs=3, batch_size=40)
    states = list(result.trials["state"])
    assert states == ["failed", "complete", "failed"]
    assert "builder exploded on purpose" in result.trials["reason"][0]
    assert result.best_params == {"neurons": 8}
    assert result.n_failed == 2


def test_grid_records_failures_with_reason(advertising):
    X, y = advertising
    space = SearchSpace(neurons=Choice([4]), explode=Choice([True, False]))
    result = tune(fragile_builder, space, X, y, strategy="grid", cv=2, epochs=3, batch_size=40)
    failed = result.trials[result.trials["state"] == "failed"]
    assert list(failed["explode"]) == [True]
    assert "builder exploded on purpose" in failed["reason"].iloc[0]
    assert result.best_params == {"neurons": 4, "explode": False}


def test_nan_loss_fails_the_trial(advertising):
    X, y = advertising
    space = SearchSpace(neurons=Choice([32]), learning_rate=Choice([1e6, 0.01]),
                        optimizer=Choice(["sgd"]))
    result = tune(mlp_regressor, space, X, y, strategy="grid", cv=2, epochs=5,
                  batch_size=20, refit=False)
    bad = result.trials[result.trials["learning_rate"] == 1e6]
    assert bad["state"].iloc[0] == "failed"
    assert "diverged" in bad["reason"].iloc[0]


def test_all_trials_failing_is_a_clear_error(advertising):
    X, y = advertising
    with pytest.raises(AllTrialsFailedError, match="all 2 trials of strategy 'manual' failed.*exploded"):
        tune(fragile_builder, None, X, y, strategy="manual", cv=2, epochs=2,
             configs=[{"explode": True}, {"explode": True, "neurons": 3}])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"strategy": "simulated_annealing"}, ConfigError, "unknown strategy 'simulated_annealing'"),
        ({"strategy": "grid", "space": None}, ConfigError, "strategy 'grid' needs a search space"),
        ({"strategy": "grid", "space": {}}, SearchSpaceError, "the search space is empty"),
        ({"strategy": "grid", "space": SearchSpace(lr=Float(0.1, 1.0))}, SearchSpaceError,
         "'lr' is a continuous Float"),
        ({"strategy": "manual", "configs": []}, ConfigError, "needs configs"),
        ({"strategy": "manual", "configs": [{"neurons": 4}, "x"]}, ConfigError, r"configs\[1\]"),
        ({"strategy": "random"}, ConfigError, "strategy 'random' needs max_trials"),
        ({"strategy": "bayesian", "max_trials": 0}, ConfigError, "max_trials must be an integer >= 1, got 0"),
        ({"strategy": "grid", "cv": 1}, ConfigError, "cv must be an integer >= 2"),
        ({"strategy": "grid", "scoring": "goodness"}, ConfigError, "scoring must be .* got 'goodness'"),
        ({"strategy": "grid", "epochs": 0}, ConfigError, "epochs must be an integer >= 1, got 0"),
        ({"strategy": "grid", "batch_size": "big"}, ConfigError, "batch_size must be an integer"),
        ({"strategy": "grid", "workers": 0}, ConfigError, "workers must be an integer >= 1, got 0"),
        ({"strategy": "grid", "task": "ranking"}, ConfigError, "task must be one of"),
    ],
)
def test_bad_arguments_give_one_line_errors(kwargs, error, match, advertising):
    X, y = advertising
    args = {"space": SPACE, **kwargs}
    space = args.pop("space")
    with pytest.raises(error, match=match) as info:
        tune(mlp_regressor, space, X, y, epochs=args.pop("epochs", 2), **args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [1, 1]]), np.array([1.0, 2.0, 3.0]),
         r"X contains NaN or infinite values \(first at row 0, column 1\)"),
        (np.ones((3, 2)), np.array([1.0, np.nan, 2.0]), r"y contains NaN .* row 1"),
        (np.array([["a", "b"], ["c", "d"]]), np.array([1.0, 2.0]), "X must be numeric"),
        (np.ones((3, 2)), np.ones(4), "same number of samples, got 3 and 4"),
        (np.ones(3), np.ones(3), r"at least 2 dimensions.*got shape \(3,\)"),
    ],
)
def test_bad_data_is_named(X, y, match):
    with pytest.raises(DataError, match=match):
        tune(mlp_regressor, SPACE, X, y, strategy="grid", epochs=1)


def test_save_writes_results_that_load(tmp_path, advertising):
    X, y = advertising
    result = tune(mlp_regressor, SPACE, X, y, strategy="grid", cv=2, epochs=3, batch_size=40,
                  directory=tmp_path / "run")
    run = tmp_path / "run"
    assert json.loads((run / "best_params.json").read_text()) == result.best_params
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trials_run"] == 2 and summary["strategy"] == "grid"
    assert SearchSpace.from_dict(json.loads((run / "space.json").read_text())) == SPACE
    frame = pd.read_csv(run / "trials.csv")
    assert list(frame["neurons"]) == [4, 8]
    model = keras.saving.load_model(run / "best_model.keras", safe_mode=True)
    np.testing.assert_allclose(model.predict(X[:3], verbose=0),
                               result.best_model.predict(X[:3], verbose=0), rtol=1e-5)


def test_rerun_resumes_from_the_store_and_other_runs_are_refused(tmp_path, advertising):
    X, y = advertising
    kwargs = dict(strategy="grid", cv=2, epochs=3, batch_size=40, directory=tmp_path / "r")
    first = tune(mlp_regressor, SPACE, X, y, **kwargs)
    again = tune(mlp_regressor, SPACE, X, y, **kwargs)
    assert again.resumed_trials == 2 and len(again.trials) == 2
    pd.testing.assert_frame_equal(first.trials, again.trials)
    before = folder_digest(tmp_path / "r")
    with pytest.raises(StoreError, match="holds a different run.*pass overwrite=True"):
        tune(mlp_regressor, SearchSpace(neurons=Choice([5])), X, y, **kwargs)
    assert folder_digest(tmp_path / "r") == before
    fresh = tune(mlp_regressor, SearchSpace(neurons=Choice([5])), X, y, overwrite=True, **kwargs)
    assert fresh.resumed_trials == 0 and list(fresh.trials["neurons"]) == [5]


def test_damaged_store_is_a_clear_error(tmp_path, advertising):
    X, y = advertising
    run = tmp_path / "r"
    run.mkdir()
    (run / "trials.db").write_bytes(b"this is not an sqlite database at all" * 20)
    with pytest.raises(StoreError, match="is damaged"):
        tune(mlp_regressor, SPACE, X, y, strategy="grid", cv=2, epochs=2, directory=run)


def test_same_seed_gives_the_same_trial_scores(advertising):
    X, y = advertising
    space = SearchSpace(neurons=Choice([4, 8]), learning_rate=Float(1e-3, 1e-1, log=True))
    runs = [tune(mlp_regressor, space, X, y, strategy="random", max_trials=2, cv=2, epochs=4,
                 batch_size=40, seed=11, refit=False).trials for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].drop(columns="fit_seconds"),
                                  runs[1].drop(columns="fit_seconds"))


def test_half_written_row_in_the_store_is_reported(tmp_path, advertising):
    import sqlite3

    X, y = advertising
    kwargs = dict(strategy="grid", cv=2, epochs=2, batch_size=40, directory=tmp_path / "r")
    tune(mlp_regressor, SPACE, X, y, **kwargs)
    with sqlite3.connect(tmp_path / "r" / "trials.db") as con:
        con.execute("UPDATE trials SET fold_scores = '[0.5, ' WHERE number = 2")
    with pytest.raises(StoreError, match="trial 1 in the store .* is damaged"):
        tune(mlp_regressor, SPACE, X, y, **kwargs)


def test_stability_rescoring_of_the_top_configs(advertising):
    from nn_tuning.evaluation import make_protocol
    from nn_tuning.stability import check_stability

    X, y = advertising
    space = SearchSpace(neurons=Choice([2, 16]), learning_rate=Choice([0.05]))
    result = tune(mlp_regressor, space, X, y, strategy="grid", cv=2, epochs=10, batch_size=40,
                  refit=False)
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=10, batch_size=40, seed=0)
    params = [{"neurons": int(n), "learning_rate": 0.05} for n in result.trials["neurons"]]
    table = check_stability(protocol, X, y, result.trials, params, top_k=2, seeds=[1, 2])
    assert len(table) == 2
    assert json.loads(table["params"][0]) == result.best_params
    for _, row in table.iterrows():
        scores = json.loads(row["seed_scores"])
        assert len(scores) == 2
        assert row["seed_mean"] == pytest.approx(np.mean(scores))
        assert row["seed_std"] == pytest.approx(np.std(scores))
    # The rule: a stable winner leads on the mean over seeds by more than its own spread.
    lead = table["seed_mean"][0] - table["seed_mean"][1]
    assert table["stable"][0] is bool(lead > 0 and table["seed_std"][0] <= lead)


def test_bayesian_repeat_proposals_are_not_counted_as_resumed(advertising):
    # On a 3-point space keras-tuner's Gaussian process runs out of new
    # configurations long before 8 trials and proposes scored ones again.
    X, y = advertising
    result = tune(mlp_regressor, {"neurons": Choice([2, 3, 4])}, X, y, strategy="bayesian",
                  max_trials=8, cv=2, epochs=1, batch_size=40, seed=0, refit=False)
    assert sorted(result.trials["neurons"]) == [2, 3, 4]
    assert result.resumed_trials == 0


# fit= : model.fit settings ---------------------------------------------------------------
def _unbalanced_iris(iris):
    X, y = iris
    keep = np.concatenate([np.flatnonzero(y == 0)[:12], np.flatnonzero(y == 1)[:30],
                           np.flatnonzero(y == 2)[:30]])
    return X[keep], y[keep]


def test_fit_class_weight_stacks_and_scores_as_the_keras_engine(iris):
    """Unshuffled, so that both engines see the same batches (their shuffles differ)."""
    from model_builders import mlp_classifier

    X, y = _unbalanced_iris(iris)
    runs = {engine: tune(mlp_classifier, {"neurons": [4, 7]}, X, y, strategy="grid", cv=3,
                         epochs=3, batch_size=16, scoring="neg_log_loss", engine=engine,
                         refit=False, fit={"class_weight": "balanced", "shuffle": False})
            for engine in ("stacked", "keras")}
    stacked, keras_ = (runs[e].trials for e in ("stacked", "keras"))
    assert set(stacked["engine"]) == {"stacked"} and set(keras_["engine"]) == {"keras"}
    folds = [f"fold{k}_score" for k in range(3)]
    np.testing.assert_allclose(stacked[folds].to_numpy(), keras_[folds].to_numpy(), rtol=1e-4,
                               atol=1e-5)
    unweighted = tune(mlp_classifier, {"neurons": [4, 7]}, X, y, strategy="grid", cv=3,
                      epochs=3, batch_size=16, scoring="neg_log_loss", engine="stacked",
                      refit=False, fit={"shuffle": False}).trials
    assert not np.allclose(unweighted[folds].to_numpy(), stacked[folds].to_numpy(), atol=1e-4)


def test_fit_sample_weight_each_fold_gets_its_rows_and_the_refit_all(advertising):
    """Weights sliced per fold (the stack and the keras engine agree), unshuffled; the
    refit trains on every row's weight, as the estimator's own fit does."""
    from nn_tuning.wrappers import KerasRegressor

    X, y = advertising[0][:60], advertising[1][:60]
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(X))
    fit = {"sample_weight": w, "shuffle": False}
    common = dict(strategy="manual", configs=[{"neurons": 4}], cv=2, epochs=2, batch_size=8,
                  fit=fit)
    stacked = tune(mlp_regressor, None, X, y, engine="stacked", refit=True, **common)
    keras_ = tune(mlp_regressor, None, X, y, engine="keras", refit=False, **common)
    assert list(stacked.trials["engine"]) == ["stacked"]
    folds = ["fold0_score", "fold1_score"]
    np.testing.assert_allclose(stacked.trials[folds].to_numpy(), keras_.trials[folds].to_numpy(),
                               rtol=1e-4)
    assert np.array_equal(w, fit["sample_weight"])  # the caller's weights are left alone

    def refit(**kwargs):
        est = KerasRegressor(mlp_regressor, model__neurons=4, epochs=2, batch_size=8,
                             random_state=0, verbose=0, shuffle=False)
        return [v.numpy() for v in est.fit(X, y, **kwargs).model_.weights]

    ours = [v.numpy() for v in stacked.best_model.weights]
    for got, ref in zip(ours, refit(sample_weight=w)):
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert not all(np.allclose(a, b) for a, b in zip(ours, refit()))


def test_fit_callbacks_fall_back_with_one_warning_and_a_count(advertising, caplog):
    X, y = advertising[0][:40], advertising[1][:40]
    # EarlyStopping stacks (tests/stacked/test_stopping.py); other callbacks do not.
    stop = keras.callbacks.TerminateOnNaN()
    with caplog.at_level("WARNING", logger="nn_tuning"):
        result = tune(mlp_regressor, SPACE, X, y, strategy="grid", cv=2, epochs=2, refit=False,
                      engine="auto", fit={"callbacks": [stop]})
    reason = "fit setting callbacks=[TerminateOnNaN] is not stacked yet"
    said = [r for r in caplog.records if "not stacked" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"] and reason in said[0].getMessage()
    assert result.extra["not_stacked"] == {reason: 2}
    assert set(result.trials["engine"]) == {"keras"}


@pytest.mark.parametrize("fit, match", [
    ({"epochs": 3}, r"unknown fit setting 'epochs'; allowed: validation_split, callbacks, "
                    r"class_weight, shuffle, sample_weight"),
    ({"validation_split": 1}, r"fit\.validation_split must be a number in \[0, 1\), got 1"),
    ({"validation_split": -0.1}, r"fit\.validation_split must be a number in \[0, 1\)"),
    ({"class_weight": "balanced"}, r"fit\.class_weight is for classification only"),
    ({"shuffle": 1}, r"fit\.shuffle must be True or False, got 1"),
    ({"callbacks": ["stop"]}, r"fit\.callbacks must be a list of keras\.callbacks\.Callback, "
                              r"got an item 'stop'"),
    ({"sample_weight": [1.0, 2.0]}, r"fit\.sample_weight must be 1-D with one weight per row "
                                    r"of X \(20\), got shape \(2,\)"),
    ({"sample_weight": np.r_[np.ones(19), -1.0]}, r"fit\.sample_weight must be finite and "
                                                  r">= 0, got -1\.0 at row 19"),
    ({"sample_weight": np.r_[np.nan, np.ones(19)]}, r"fit\.sample_weight must be finite"),
    ("balanced", r"fit must be a mapping of model\.fit settings"),
])
def test_bad_fit_settings_are_refused_before_the_run_folder(tmp_path, advertising, fit, match):
    X, y = advertising[0][:20], advertising[1][:20]
    with pytest.raises(ConfigError, match=match) as info:
        tune(mlp_regressor, SPACE, X, y, strategy="grid", cv=2, epochs=1,
             directory=tmp_path / "run", fit=fit)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_class_weight_labels_must_be_classes(tmp_path, iris):
    from model_builders import mlp_classifier

    X, y = iris
    with pytest.raises(ConfigError, match=r"fit\.class_weight has label 7, which is not a class "
                                          r"of y; classes: 0, 1, 2"):
        tune(mlp_classifier, {"neurons": [4]}, X, y, strategy="grid", cv=2, epochs=1,
             directory=tmp_path / "run", fit={"class_weight": {0: 1.0, 7: 2.0}})
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_with_other_fit_settings_is_refused(tmp_path, advertising):
    X, y = advertising[0][:30], advertising[1][:30]
    run = tmp_path / "run"
    common = dict(strategy="manual", configs=[{"neurons": 4}], cv=2, epochs=1, refit=False,
                  directory=run)

    def stop(patience):
        return keras.callbacks.EarlyStopping(monitor="loss", patience=patience)

    tune(mlp_regressor, None, X, y, fit={"shuffle": False, "callbacks": [stop(2)]}, **common)
    before = folder_digest(run)
    # The same settings (a new callback object, as a config makes) resume.
    again = tune(mlp_regressor, None, X, y, fit={"shuffle": False, "callbacks": [stop(2)]},
                 **common)
    assert again.resumed_trials == 1
    before = folder_digest(run)
    for other in ({"shuffle": True, "callbacks": [stop(2)]},
                  {"shuffle": False, "callbacks": [stop(3)]},
                  {"shuffle": False},
                  {"shuffle": False, "callbacks": [stop(2)], "sample_weight": np.ones(len(X))},
                  None):
        with pytest.raises(StoreError, match="holds a different run"):
            tune(mlp_regressor, None, X, y, fit=other, **common)
        assert folder_digest(run) == before
