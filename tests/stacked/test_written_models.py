"""Models people write stack: L1/L2 regularizers, Lion and Ftrl, learning-rate schedules.

Stack-mates differ in regularizer strengths (some have none), schedules and
optimizers; each matches its own ``model.fit`` after one step (rtol 1e-5,
atol 1e-6) and after 15 epochs (1e-4 relative error), on TensorFlow and on JAX
(:mod:`tests.stacked.written`). What a stack cannot train exactly is refused
with a reason.
"""

from __future__ import annotations

import textwrap

import keras
import pytest

from nn_tuning.evaluation import evaluate, make_protocol
from nn_tuning.result import TrialState
from nn_tuning.stacked import NotStackable, read_structure
from nn_tuning.stacked.plan import stacked_trials
from tests.stacked.written import CONFIGS, build, compare


def _assert_matches(result):
    assert max(result["one_step"]) <= 0.0  # allclose(rtol=1e-5, atol=1e-6) after one step
    assert max(result["rel"]) <= 1e-4


def test_regularizers_schedules_lion_and_ftrl_match_model_fit():
    structures = [read_structure(build(c)) for c in CONFIGS]
    # Different strengths and schedules share one stack: the first and last replicas share
    # their optimizer variant (schedule settings) at other initial rates and strengths.
    assert structures[0].variant == structures[-1].variant
    assert structures[0].learning_rate != structures[-1].learning_rate
    assert structures[0].penalties != structures[-1].penalties and structures[2].penalties == ()
    _assert_matches(compare())


def test_they_match_model_fit_under_jax():
    pytest.importorskip("jax", reason="the JAX backend needs jax (pip install -e '.[dev]')")
    from tests.stacked.test_jax_backend import run_jax

    # Fewer configurations than on TensorFlow (each reference compiles its own train step):
    # every regularizer, both new optimizers, schedules that restart or step.
    result = run_jax(textwrap.dedent("""
        import json
        from tests.stacked.written import CONFIGS, compare
        print(json.dumps(compare([CONFIGS[i] for i in (0, 1, 4, 5, 6)])))
    """))
    assert result["backend"] == "jax"
    _assert_matches(result)


def searched(l2=0.0, decay_rate=1.0, meta=None):
    """A user's builder whose L2 strength and learning-rate decay are searched."""
    model = keras.Sequential([
        keras.Input((meta["n_features_in_"],)),
        keras.layers.Dense(6, activation="relu", kernel_regularizer=keras.regularizers.L2(l2)),
        keras.layers.Dense(1)])
    rate = keras.optimizers.schedules.ExponentialDecay(0.01, 10, decay_rate)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    return model


def test_searched_strengths_and_decays_train_in_one_stack(advertising):
    X, y = advertising
    X, y = X[:64], y[:64]
    protocol = make_protocol(searched, X, y, cv=2, epochs=2, batch_size=16, seed=0)
    configs = [{"l2": l2, "decay_rate": d} for l2 in (0.0, 0.01) for d in (0.5, 0.9)]
    trials = list(stacked_trials(protocol, X, y, configs, seed=0, fallback=lambda cs: (
        evaluate(protocol, X, y, c) for c in cs)))
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert [getattr(t, "engine", None) for t in trials] == ["stacked"] * 4


def _model(optimizer="adam", **dense):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, **dense),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("make, reason", [
    (lambda: _model(kernel_regularizer=keras.regularizers.OrthogonalRegularizer()),
     "kernel_regularizer is a OrthogonalRegularizer, not one of Keras' own L1, L2, L1L2"),
    (lambda: _model(activity_regularizer="l2"), "activity_regularizer"),
    (lambda: _model(keras.optimizers.Adam(keras.optimizers.schedules.PiecewiseConstantDecay(
        [10], [0.01, 0.001]))), "schedule PiecewiseConstantDecay is not one of"),
    (lambda: _model(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        0.0, 100, warmup_target=0.01, warmup_steps=10))), "warmup_target"),
])
def test_what_cannot_stack_exactly_is_refused_with_a_reason(make, reason):
    with pytest.raises(NotStackable, match=reason):
        read_structure(make())
