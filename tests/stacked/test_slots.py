"""A slot stack continues training exactly: segments, late arrivals and freed slots change nothing.

The contract of successive halving inside a stack: a replica trained in
segments, loaded late into a slot freed by another, beside stack-mates of
other ages, ends with the weights it would have after the same epochs in one
:func:`train_stack` (rtol 1e-5), for every supported optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from nn_tuning.stacked import SUPPORTED_OPTIMIZERS, train_stack
from nn_tuning.stacked.slots import SlotStack

from tests.stacked.replicas import mlp_replica

FAST = ("Adam", "SGD")


@pytest.mark.parametrize("optimizer", [
    pytest.param(o, marks=[] if o in FAST else pytest.mark.slow) for o in SUPPORTED_OPTIMIZERS])
def test_segments_and_new_arrivals_match_one_run(advertising, optimizer):
    X, y = advertising
    folds = [train for train, _ in KFold(3, shuffle=True, random_state=0).split(X)]
    Y = y.reshape(-1, 1).astype("float32")
    a = mlp_replica(1, folds[0], optimizer, (6, 4), "relu", 0.01, dropout=0.2)
    b = mlp_replica(2, folds[1], optimizer, (5,), "tanh", 0.003)
    c = mlp_replica(3, folds[2], optimizer, (3, 6), "relu", 0.02)
    stack = SlotStack([a, b, c], 3, X, Y, batch_size=32, steps=-(-len(folds[0]) // 32),
                      segment=2)
    stack.load(1, a)
    stack.load(2, b)
    stack.train()                      # a, b: 2 epochs
    stack.release(2)                   # b stops; c takes its slot two epochs later
    stack.load(2, c)
    stack.train()
    stack.train()                      # a: 6 epochs, c: 4 epochs
    assert list(stack.epochs[1:]) == [6, 4]
    for slot, rep, epochs in ((1, a, 6), (2, c, 4)):
        alone = train_stack([rep], X, Y, epochs=epochs, batch_size=32).weights[0]
        for (k1, b1), (k2, b2) in zip(stack.weights(slot), alone):
            np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)


def test_fits_refuses_what_would_change_the_shapes(advertising):
    X, y = advertising
    rows = np.arange(150)
    a = mlp_replica(1, rows, "Adam", (6, 4), "relu", 0.01)
    stack = SlotStack([a], 2, X, y.reshape(-1, 1).astype("float32"), batch_size=32, steps=5,
                      segment=1)
    assert stack.fits(mlp_replica(2, rows, "Adam", (3,), "relu", 0.1))
    assert not stack.fits(mlp_replica(3, rows, "Adam", (8,), "relu", 0.1))      # wider
    assert not stack.fits(mlp_replica(4, rows, "Adam", (4, 4, 4), "relu", 0.1))  # deeper
    assert not stack.fits(mlp_replica(5, rows, "Adam", (4,), "tanh", 0.1))      # activation
    assert not stack.fits(mlp_replica(6, rows, "SGD", (4,), "relu", 0.1))       # optimizer
    assert not stack.fits(mlp_replica(7, rows[:100], "Adam", (4,), "relu", 0.1))  # steps


def test_a_replica_moved_to_a_smaller_stack_goes_on_as_if_it_had_stayed(advertising):
    X, y = advertising
    Y = y.reshape(-1, 1).astype("float32")
    rows = np.arange(120)
    a = mlp_replica(1, rows, "Adam", (6, 4), "relu", 0.01, dropout=0.2)
    b = mlp_replica(2, rows, "Adam", (5,), "tanh", 0.003)
    big = SlotStack([a, b], 4, X, Y, batch_size=32, steps=4, segment=2)
    big.load(3, a)
    big.load(0, b)
    big.train()
    small = SlotStack([a, b], 1, X, Y, batch_size=32, steps=4, segment=2)
    small.adopt(0, big, 3)
    small.train()
    assert small.epochs[0] == 4
    alone = train_stack([a], X, Y, epochs=4, batch_size=32).weights[0]
    for (k1, b1), (k2, b2) in zip(small.weights(0), alone):
        np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)
