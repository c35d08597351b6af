"""``model.fit`` settings in the stack: class weights, sample weights and ``shuffle=False``.

Each replica must train as its own ``model.fit`` with the same settings does:
after one step to float32 rounding (rtol 1e-5, atol 1e-6), after a few
epochs within 1e-4 relative. Keras weighs a batch's loss as
``sum(loss_i * w_i) / rows in the batch`` (``sum_over_batch_size``, not the sum
of the weights), and turns class weights into sample weights of each row.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.model_selection import KFold
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning.stacked import Replica, epoch_orders, read_structure, train_stack
from nn_tuning.stacked.read_model import weighted_layers


def _weights(model):
    return [(d.kernel.numpy(), d.bias.numpy()) for d in weighted_layers(model)]


def _build(builder, params, meta):
    keras.utils.set_random_seed(11)
    return builder(**meta, **params)


def _rel(result_weights, model):
    worst = 0.0
    for (kernel, bias), layer in zip(result_weights, weighted_layers(model)):
        for got, ref in ((kernel, layer.kernel.numpy()), (bias, layer.bias.numpy())):
            worst = max(worst, np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))
    return worst


def _assert_close(result_weights, model):
    for (kernel, bias), layer in zip(result_weights, weighted_layers(model)):
        np.testing.assert_allclose(kernel, layer.kernel.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bias, layer.bias.numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def iris3(iris):
    X, y = iris
    rows = np.random.default_rng(0).permutation(len(X))[:120]
    X, y = X[rows].astype("float32"), y[rows]
    # Unbalanced classes, so that class weights differ from 1.
    keep = np.concatenate([np.flatnonzero(y == 0)[:10], np.flatnonzero(y == 1),
                           np.flatnonzero(y == 2)])
    keep.sort()
    return X[keep], y[keep].reshape(-1, 1)


CLASSIFIERS = [dict(hidden_layers=(6,), activation="relu"),
               dict(hidden_layers=(5, 7), activation="tanh", optimizer="rmsprop")]


def _class_weight_replicas(X, y, folds, shuffle, seed0=0):
    replicas, refs = [], []
    for i, params in enumerate(CLASSIFIERS):
        model = _build(mlp_classifier, params, {"input_dim": 4, "n_classes": 3})
        for k, (train, _) in enumerate(folds):
            w = compute_sample_weight("balanced", y[train].ravel()).astype("float32")
            replicas.append(Replica(read_structure(model), _weights(model), train,
                                    seed=seed0 + 10 * i + k, row_weights=w, shuffle=shuffle))
            refs.append((params, train))
    return replicas, refs


def _class_weight(y):
    classes = np.unique(y)
    return dict(zip(classes.tolist(), compute_class_weight("balanced", classes=classes, y=y)))


def test_class_weight_one_step_matches_model_fit(iris3):
    X, y = iris3
    folds = [(np.arange(0, 40), None), (np.arange(30, 70), None)]  # one batch each
    replicas, refs = _class_weight_replicas(X, y, folds, shuffle=False)
    for opt_group in (replicas[:2], replicas[2:]):  # one optimizer type per stack
        assert len({r.structure.variant for r in opt_group}) == 1
    for part, part_refs in ((replicas[:2], refs[:2]), (replicas[2:], refs[2:])):
        result = train_stack(part, X, y, epochs=1, batch_size=40)
        for weights, (params, train) in zip(result.weights, part_refs):
            model = _build(mlp_classifier, params, {"input_dim": 4, "n_classes": 3})
            model.run_eagerly = True
            model.fit(X[train], y[train], batch_size=40, epochs=1, shuffle=False, verbose=0,
                      class_weight=_class_weight(y[train].ravel()))
            _assert_close(weights, model)


def test_class_weight_without_shuffle_for_epochs_matches_model_fit(iris3):
    """model.fit(class_weight=..., shuffle=False) itself, 6 epochs with a smaller last batch."""
    X, y = iris3
    folds = list(KFold(3, shuffle=True, random_state=1).split(X))[:1]
    replicas, refs = _class_weight_replicas(X, y, folds, shuffle=False)
    for part, part_refs in ((replicas[:1], refs[:1]), (replicas[1:], refs[1:])):
        result = train_stack(part, X, y, epochs=6, batch_size=16)
        for weights, (params, train) in zip(result.weights, part_refs):
            assert len(train) % 16  # the last batch of each epoch is smaller
            model = _build(mlp_classifier, params, {"input_dim": 4, "n_classes": 3})
            model.fit(X[train], y[train], batch_size=16, epochs=6, shuffle=False, verbose=0,
                      class_weight=_class_weight(y[train].ravel()))
            assert _rel(weights, model) <= 1e-4


def _regression_data(advertising):
    X, y = advertising
    X, y = X[:120].astype("float32"), y[:120].reshape(-1, 1).astype("float32")
    w = np.random.default_rng(3).uniform(0.0, 3.0, len(X)).astype("float32")
    w[::7] = 0.0  # rows that do not count
    return X, y, w


# SGD: Adam's first step (lr * g / |g|) hardly sees a rescaled gradient.
REGRESSORS = [dict(hidden_layers=(5,), activation="relu", optimizer="SGD", learning_rate=0.01),
              dict(hidden_layers=(4, 6), activation="sigmoid", optimizer="SGD",
                   learning_rate=0.003)]


def _sample_weight_replicas(X, w, folds, shuffle):
    replicas, refs = [], []
    for i, params in enumerate(REGRESSORS):
        model = _build(mlp_regressor, params, {"input_dim": 3})
        for k, (train, _) in enumerate(folds):
            replicas.append(Replica(read_structure(model), _weights(model), train,
                                    seed=7 + 10 * i + k, row_weights=w[train], shuffle=shuffle))
            refs.append((params, train))
    return replicas, refs


def test_sample_weight_one_step_matches_model_fit(advertising):
    X, y, w = _regression_data(advertising)
    folds = [(np.arange(0, 30), None), (np.arange(50, 80), None)]
    replicas, refs = _sample_weight_replicas(X, w, folds, shuffle=False)
    result = train_stack(replicas, X, y, epochs=1, batch_size=30)
    for weights, (params, train) in zip(result.weights, refs):
        model = _build(mlp_regressor, params, {"input_dim": 3})
        model.run_eagerly = True
        model.fit(X[train], y[train], sample_weight=w[train], batch_size=30, epochs=1,
                  shuffle=False, verbose=0)
        _assert_close(weights, model)


def test_sample_weight_follows_the_shuffled_rows(advertising):
    """Shuffled epochs: each batch's weights are its own rows' (gathered like Y)."""
    X, y, w = _regression_data(advertising)
    folds = list(KFold(4, shuffle=True, random_state=0).split(X))[:2]  # 90 rows: 3 batches of 30
    replicas, refs = _sample_weight_replicas(X, w, folds, shuffle=True)
    epochs = 5
    result = train_stack(replicas, X, y, epochs=epochs, batch_size=30)
    orders = epoch_orders(replicas, epochs, 30)
    for r, (weights, (params, train)) in enumerate(zip(result.weights, refs)):
        idx = np.concatenate([orders[e, r, :len(train)] for e in range(epochs)])
        assert not np.array_equal(idx[:len(train)], train)  # really shuffled
        model = _build(mlp_regressor, params, {"input_dim": 3})
        model.fit(X[idx], y[idx], sample_weight=w[idx], batch_size=30, epochs=1, shuffle=False,
                  verbose=0)
        assert _rel(weights, model) <= 1e-4


def test_unshuffled_epochs_take_the_rows_in_order():
    structure_model = _build(mlp_regressor, REGRESSORS[0], {"input_dim": 3})
    s, ws = read_structure(structure_model), _weights(structure_model)
    rows = np.array([9, 2, 5, 7, 1])
    replicas = [Replica(s, ws, rows, seed=1, shuffle=False), Replica(s, ws, rows, seed=1)]
    orders = epoch_orders(replicas, 2, 2)
    assert orders.shape == (2, 2, 6)
    for e in range(2):
        np.testing.assert_array_equal(orders[e, 0, :5], rows)
        assert sorted(orders[e, 1, :5]) == sorted(rows)
    assert not np.array_equal(orders[0, 1, :5], rows)


def test_a_configuration_s_replicas_carry_its_fit_settings(iris3):
    """plan.fold_replica (stacks and asha's slot stacks): each fold's replica weighs its own
    rows by the run's sample weights times the class weights of that fold's labels."""
    from nn_tuning.evaluation import make_protocol
    from nn_tuning.stacked.plan import build, fold_replica

    X, y = iris3[0], iris3[1].ravel()
    w = np.linspace(0.5, 2.0, len(X))
    protocol = make_protocol(mlp_classifier, X, y, cv=2, epochs=1, seed=0, fit={
        "class_weight": "balanced", "sample_weight": w, "shuffle": False})
    b = build(protocol, X, y, 0, {"neurons": 4})
    for k, (train, _) in enumerate(protocol.splits):
        replica = fold_replica(b, protocol, y, k, seed=0)
        np.testing.assert_array_equal(replica.rows, train)
        np.testing.assert_allclose(replica.row_weights,
                                   w[train] * compute_sample_weight("balanced", y[train]),
                                   rtol=1e-6)
        assert replica.shuffle is False
    plain = make_protocol(mlp_classifier, X, y, cv=2, epochs=1, seed=0)
    replica = fold_replica(build(plain, X, y, 0, {"neurons": 4}), plain, y, 0, seed=0)
    assert replica.row_weights is None and replica.shuffle is True
