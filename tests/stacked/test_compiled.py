"""One trace per study: later stacks reuse a kept loop that covers them, and train the same in it.

A stack padded into a larger kept envelope (more replicas, wider, deeper,
more activations and optimizers) must give each of its replicas exactly what
a stack of its own shape gives (the padding trains at a learning rate of 0
and is dropped), and must not trace again.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold

from nn_tuning.stacked import compiled, train_stack

from tests.stacked.replicas import mlp_replica


def _data(advertising):
    X, y = advertising
    folds = [train for train, _ in KFold(3, shuffle=True, random_state=0).split(X)]
    return X, y.reshape(-1, 1).astype("float32"), folds


def test_a_later_stack_reuses_the_kept_loop_and_trains_as_in_its_own(advertising):
    X, Y, folds = _data(advertising)
    big = [mlp_replica(i, folds[i % 3], ("adam", "sgd", "adamax")[i % 3], ((8, 6), (5,))[i % 2],
                    ("relu", "tanh", "softmax")[i % 3], 0.01, dropout=0.1 * (i % 2))
           for i in range(12)]
    small = [mlp_replica(20 + i, folds[i], ("sgd", "adam")[i % 2], (4,), ("tanh", "relu")[i % 2],
                      0.02) for i in range(3)]
    compiled.forget()
    own = train_stack(small, X, Y, epochs=3, batch_size=32, predict_rows=folds)
    compiled.forget()
    train_stack(big, X, Y, epochs=3, batch_size=32)
    before = compiled.traces()
    reused = train_stack(small, X, Y, epochs=3, batch_size=32, predict_rows=folds)
    assert compiled.traces() == before  # the big stack's loop covered it
    for mine, theirs in zip(reused.weights, own.weights):
        for (k1, b1), (k2, b2) in zip(mine, theirs):
            np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)
    for p1, p2 in zip(reused.predictions, own.predictions):
        np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)


def test_a_stack_the_kept_loops_do_not_cover_traces_its_own(advertising):
    X, Y, folds = _data(advertising)
    compiled.forget()
    train_stack([mlp_replica(1, folds[0], "adam", (4,), "relu", 0.01)], X, Y, epochs=2, batch_size=32)
    before = compiled.traces()
    # A new activation: the kept loop lacks it.
    train_stack([mlp_replica(2, folds[0], "adam", (4,), "elu", 0.01)], X, Y, epochs=2, batch_size=32)
    assert compiled.traces() == before + 1


def test_replicas_are_returned_in_the_given_order_whatever_the_grouping(advertising):
    X, Y, folds = _data(advertising)
    reps = [mlp_replica(i, folds[i % 3], "adam", (4,), ("tanh", "relu", "sigmoid")[i % 3], 0.01)
            for i in range(6)]
    compiled.forget()
    together = train_stack(reps, X, Y, epochs=2, batch_size=32)
    for i, rep in enumerate(reps):
        compiled.forget()
        (alone,) = train_stack([rep], X, Y, epochs=2, batch_size=32).weights
        for (k1, b1), (k2, b2) in zip(together.weights[i], alone):
            np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)
