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
import numpy as np
import pytest

from nn_tuning.evaluation import evaluate, make_protocol
from nn_tuning.result import TrialState
from nn_tuning.stacked import NotStackable, Replica, compiled, read_structure, train_stack
from nn_tuning.stacked.plan import stacked_trials
from nn_tuning.stacked.slots import SlotStack
from nn_tuning.stacked.read_model import weighted_layers
from tests.stacked.written import BATCH, CONFIGS, ROWS, build, compare, data


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
    # every regularizer, both new optimizers, schedules that restart, step or are piecewise.
    result = run_jax(textwrap.dedent("""
        import json
        from tests.stacked.written import CONFIGS, compare
        print(json.dumps(compare([CONFIGS[i] for i in (1, 4, 5, 6, 7)])))
    """))
    assert result["backend"] == "jax"
    _assert_matches(result)


def _replica(config, seed):
    model = build(config)
    return Replica(read_structure(model), [(d.kernel.numpy(), d.bias.numpy())
                                           for d in weighted_layers(model)], np.arange(ROWS), seed)


def _assert_same(got, ref):
    for (k1, b1), (k2, b2) in zip(got, ref):
        np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)


def test_replicas_of_other_ages_each_follow_their_own_schedule():
    """A slot stack: one optimizer (one schedule) for two replicas two epochs apart, each at
    its own step count, ends where each would alone."""
    X, Y = data()
    a, c = _replica(CONFIGS[0], 1), _replica(CONFIGS[-1], 2)  # one variant, other rates
    stack = SlotStack([a, c], 2, X, Y, batch_size=BATCH, steps=ROWS // BATCH, segment=2)
    stack.load(0, a)
    stack.train()
    stack.load(1, c)
    stack.train()
    stack.train()
    assert list(stack.epochs) == [6, 4]
    for slot, rep, epochs in ((0, a, 6), (1, c, 4)):
        _assert_same(stack.weights(slot), train_stack([rep], X, Y, epochs=epochs,
                                                      batch_size=BATCH).weights[0])


def test_empty_ftrl_slots_leave_their_stack_mates_alone():
    """Ftrl divides by the learning rate, which is 0 in an empty slot; with as many slots as
    inputs, Keras' TensorFlow ops.add once spread that slot's NaN to every replica."""
    X, Y = data()
    ftrl = _replica(CONFIGS[6], 0)
    stack = SlotStack([ftrl], X.shape[1], X, Y, batch_size=BATCH, steps=ROWS // BATCH,
                      segment=2)
    stack.load(1, ftrl)
    stack.train()
    _assert_same(stack.weights(1), train_stack([ftrl], X, Y, epochs=2,
                                               batch_size=BATCH).weights[0])


def test_a_loop_serves_only_stacks_whose_penalties_it_computes():
    X, Y = data()
    regularized = _replica(CONFIGS[3], 0)
    plain = _replica(CONFIGS[3][:2] + (None, None, None) + CONFIGS[3][5:], 0)
    compiled.forget()
    before = compiled.traces()
    alone = train_stack([plain], X, Y, epochs=2, batch_size=BATCH).weights[0]
    train_stack([regularized], X, Y, epochs=2, batch_size=BATCH)
    assert compiled.traces() - before == 2  # the plain stack's loop lacks the L2 term
    # The regularized stack's loop serves the plain one, at a coefficient of 0.
    _assert_same(train_stack([plain], X, Y, epochs=2, batch_size=BATCH).weights[0], alone)
    assert compiled.traces() - before == 2
    slot_stack = {"steps": ROWS // BATCH, "batch_size": BATCH, "segment": 1}
    assert not SlotStack([plain], 1, X, Y, **slot_stack).fits(regularized)
    assert SlotStack([regularized], 1, X, Y, **slot_stack).fits(plain)


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


class _Halving(keras.optimizers.schedules.ExponentialDecay):
    """A schedule of the user's own (a subclass may compute anything)."""

    def __init__(self, rate):
        super().__init__(rate, 10, 0.5)


def _model(optimizer="adam", **dense):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, **dense),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("make, reason", [
    (lambda: _model(kernel_regularizer=keras.regularizers.OrthogonalRegularizer()),
     "kernel_regularizer is a OrthogonalRegularizer, not one of Keras' own L1, L2, L1L2"),
    (lambda: _model(activity_regularizer="l2"), "activity_regularizer"),
    (lambda: _model(keras.optimizers.Adam(_Halving(0.01))), "schedule _Halving is not one of"),
    (lambda: _model(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        0.0, 100, warmup_target=0.01, warmup_steps=10))), "warmup_target"),
    (lambda: _model(keras.optimizers.Ftrl(beta=0.1)), "Ftrl with beta=0.1"),
])
def test_what_cannot_stack_exactly_is_refused_with_a_reason(make, reason):
    with pytest.raises(NotStackable, match=reason):
        read_structure(make())
