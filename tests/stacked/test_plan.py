"""From configurations to trials through stacks: chunking, fallback, scoring, dropout."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import load_iris

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning.evaluation import evaluate, make_protocol
from nn_tuning.result import TrialState
from nn_tuning.stacked.plan import build, plan_chunks, stacked_trials


def _fallback(protocol, X, y):
    def run(configs):
        for params in configs:
            yield evaluate(protocol, X, y, params)
    return run


def _trials(protocol, X, y, configs, seed=0, **kw):
    return list(stacked_trials(protocol, X, y, configs, seed=seed,
                               fallback=_fallback(protocol, X, y), **kw))


def test_chunks_depend_only_on_the_settings(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=3, epochs=2, batch_size=40, seed=0)
    configs = [{"neurons": n, "optimizer": o} for n in (4, 8, 16) for o in ("adam", "sgd")]
    built = [build(protocol, X, y, i, c) for i, c in enumerate(configs)]
    chunks = plan_chunks(built, protocol, max_replicas=6)
    # Optimizers share stacks (one Keras optimizer per variant in the stack), in order; at
    # most 6 replicas (2 configurations x 3 folds) each.
    assert [[b.params for b in c] for c in chunks] == [
        [configs[0], configs[1]], [configs[2], configs[3]], [configs[4], configs[5]]]
    again = plan_chunks([build(protocol, X, y, i, c) for i, c in enumerate(configs)], protocol,
                        max_replicas=6)
    assert [[b.params for b in c] for c in again] == [[b.params for b in c] for c in chunks]


def test_a_configuration_scores_the_same_whatever_its_chunk(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=3, epochs=5, batch_size=32, seed=3)
    configs = [{"neurons": n, "activation": a} for n in (3, 9) for a in ("relu", "tanh")]
    together = {repr(t.params): t.fold_scores for t in _trials(protocol, X, y, configs)}
    apart = {repr(t.params): t.fold_scores
             for t in _trials(protocol, X, y, configs, max_replicas=3)}
    for key, scores in together.items():
        np.testing.assert_allclose(apart[key], scores, rtol=1e-5, atol=1e-6)


def test_unstackable_configurations_fall_back_and_failures_are_recorded(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=2, batch_size=40, seed=0)
    configs = [{"neurons": 4}, {"neurons": 4, "optimizer": "adafactor"}, {"neurons": -1}]
    trials = {repr(t.params): t for t in _trials(protocol, X, y, configs)}
    assert getattr(trials[repr(configs[0])], "engine", None) == "stacked"
    assert trials[repr(configs[1])].state is TrialState.COMPLETE  # Adafactor: per configuration
    assert getattr(trials[repr(configs[1])], "engine", "keras") != "stacked"
    failed = trials[repr(configs[2])]
    assert failed.state is TrialState.FAILED and "neurons" in failed.reason


def test_classifier_labels_and_probability_scorers_are_scored_as_the_wrapper_does():
    X, y = load_iris(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype("float32")
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    protocol = make_protocol(mlp_classifier, X, names, cv=3, epochs=30, batch_size=16, seed=0,
                             scoring="neg_log_loss")
    trial, = _trials(protocol, X, names, [{"neurons": 8}])
    assert trial.state is TrialState.COMPLETE and trial.engine == "stacked"
    reference = evaluate(protocol, X, names, {"neurons": 8})
    # Different shuffles, same model and data: close log-losses, both better than chance (-1.1).
    assert abs(trial.mean_score - reference.mean_score) < 0.15
    assert trial.mean_score > -1.0


def test_a_diverging_replica_fails_alone(advertising):
    X, y = advertising
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=20, batch_size=40, seed=0)
    configs = [{"neurons": 4, "optimizer": "sgd", "learning_rate": 1e4},
               {"neurons": 4, "optimizer": "sgd", "learning_rate": 1e-3}]
    trials = {t.params["learning_rate"]: t for t in _trials(protocol, X, y, configs)}
    assert trials[1e4].state is TrialState.FAILED
    assert "diverged" in trials[1e4].reason
    assert trials[1e-3].state is TrialState.COMPLETE


@pytest.mark.slow
def test_dropout_scores_agree_with_the_per_configuration_path(advertising):
    X, y = advertising
    params = {"hidden_layers": (16, 16), "dropout": 0.3, "activation": "relu"}
    stacked, keras_path = [], []
    for seed in range(5):
        protocol = make_protocol(mlp_regressor, X, y, cv=5, epochs=40, batch_size=32, seed=seed)
        trial, = _trials(protocol, X, y, [params], seed=seed)
        stacked.append(trial.mean_score)
        keras_path.append(evaluate(protocol, X, y, params).mean_score)
    # The two means differ by chance alone within about two standard errors of
    # their difference (std / sqrt(n) each; n = 5 seeds, each a 5-fold mean).
    n = len(stacked)
    se = np.sqrt(np.var(stacked, ddof=1) / n + np.var(keras_path, ddof=1) / n)
    assert abs(np.mean(stacked) - np.mean(keras_path)) <= 2 * se


def test_configurations_are_built_as_stacks_fill_and_stop_when_told(advertising):
    X, y = advertising
    built = []

    @functools.wraps(mlp_regressor)  # its signature: the wrapper passes the same arguments
    def counted_regressor(*args, **kwargs):
        built.append(kwargs["neurons"])
        return mlp_regressor(*args, **kwargs)

    protocol = make_protocol(counted_regressor, X, y, cv=2, epochs=1, batch_size=40, seed=0)
    configs = [{"neurons": n} for n in range(2, 42)]
    stop, trials = [], []
    for trial in stacked_trials(protocol, X, y, configs, seed=0,
                                fallback=_fallback(protocol, X, y), max_replicas=6,
                                stopping=lambda: bool(stop)):
        trials.append(trial)
        stop.append(True)
    # 3 configurations x 2 folds fill a stack of 6: it trains before a 4th is built,
    # its trials all come back, and nothing more is built once stopping.
    assert built == [2, 3, 4]
    assert [t.params for t in trials] == configs[:3]
    assert all(t.engine == "stacked" for t in trials)


def _ann_model(activation="relu", neurons=10, optimizer="Adam"):
    """The seed recipe's builder, as its notebook writes it."""
    import keras

    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(neurons, activation=activation),
                              keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer=optimizer)
    return model


def _grown_mlp(units=8, optimizer="adam"):
    """A user's Sequential MLP grown with add(), the Keras guides' way."""
    import keras

    model = keras.Sequential()
    model.add(keras.Input(shape=(3,)))
    model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(units // 2, activation="tanh"))
    model.add(keras.layers.Dense(1))
    model.compile(loss="mse", optimizer=optimizer)
    return model


@pytest.mark.parametrize("builder, configs", [
    (mlp_regressor, [{"hidden_layers": (6, 4), "activation": "tanh"}, {"neurons": 12}]),
    (_ann_model, [{"activation": "softmax", "neurons": 5, "optimizer": "SGD"},
                  {"activation": "relu", "neurons": 50, "optimizer": "Adamax"}]),
    (_grown_mlp, [{"units": 8}, {"units": 16, "optimizer": "sgd"}]),
])
def test_every_replica_starts_from_the_builders_own_initial_weights(advertising, builder, configs):
    """Exactly what the builder's own model draws for that configuration and the run's seed."""
    import keras

    X, y = advertising
    for seed in (0, 5):
        protocol = make_protocol(builder, X, y, cv=3, epochs=1, batch_size=40, seed=seed)
        for i, params in enumerate(configs):
            built = build(protocol, X, y, i, params)
            keras.utils.set_random_seed(seed)
            model = builder(**params, **({"input_dim": 3} if builder is mlp_regressor else {}))
            own = [w.numpy() for w in model.trainable_weights]
            ours = [w for pair in built.weights for w in pair]
            assert len(own) == len(ours)
            for a, b in zip(own, ours):
                np.testing.assert_array_equal(a, b)
