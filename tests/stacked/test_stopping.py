"""validation_split and Keras' EarlyStopping in a stack: each replica as its own model.fit.

The reference is ``model.fit`` with Keras' own ``EarlyStopping`` over real
epochs, fed the stack's shuffled batches (a ``PyDataset`` serving each
epoch's order from :func:`epoch_orders`) and validated on the rows
``validation_split`` would hold out (checked against Keras' own split).
"""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest
from sklearn.base import clone
from keras.src.trainers.data_adapters.array_slicing import train_validation_split

from model_builders import mlp_regressor
from nn_tuning.evaluation import make_protocol
from nn_tuning.stacked import NotStackable, Replica, epoch_orders, read_structure, train_stack
from nn_tuning.stacked.halving import RungTrainer
from nn_tuning.stacked.plan import stacked_trials
from nn_tuning.stacked.stopping import Monitoring, monitoring, obstacle, split_rows
from nn_tuning.stacked.read_model import layer_weights, weighted_layers
from nn_tuning.wrappers import KerasRegressor


def _weights(model):
    return [(d.kernel.numpy(), d.bias.numpy()) for d in weighted_layers(model)]


def _build(params):
    keras.utils.set_random_seed(7)
    return mlp_regressor(input_dim=3, **params)


class _Batches(keras.utils.PyDataset):
    """The stack's batches: step ``index`` of the epoch ``_Epochs`` says fit is in (fit
    with shuffle=False, or it would also shuffle the batches' order)."""

    def __init__(self, X, Y, orders, n, batch_size):
        super().__init__()
        self.X, self.Y, self.orders, self.n, self.bs = X, Y, orders, n, batch_size
        self.epoch = 0

    def __len__(self):
        return -(-self.n // self.bs)

    def __getitem__(self, index):
        rows = self.orders[self.epoch, :self.n][index * self.bs:(index + 1) * self.bs]
        return self.X[rows], self.Y[rows]


class _Epochs(keras.callbacks.Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch


CONFIGS = [dict(hidden_layers=(6,), learning_rate=0.05),  # learns fast, then stalls
           dict(hidden_layers=(4, 5), learning_rate=0.002),  # still improving
           dict(hidden_layers=(8,), activation="tanh", learning_rate=0.02)]


def _same(result, r, model, own, fitted):
    """Replica ``r`` of the stack ended as ``model`` did under ``model.fit`` with ``own``."""
    assert result.stopped_epochs[r] == (0 if own is None else own.stopped_epoch)
    for key in ("loss", "val_loss"):  # every epoch's logs, as Keras' History has them
        np.testing.assert_allclose(result.history[r][key], fitted.history[key], rtol=1e-5)
    for (kernel, bias), layer in zip(result.weights[r], weighted_layers(model)):
        for got, ref in ((kernel, layer.kernel.numpy()), (bias, layer.bias.numpy())):
            assert np.linalg.norm(got - ref) <= 1e-4 * np.linalg.norm(ref)


RULES = [dict(patience=2, min_delta=0.05, restore_best_weights=True),
         dict(patience=2, min_delta=1.0, start_from_epoch=3, baseline=100.0),
         dict(monitor="loss", patience=1, min_delta=3.0, restore_best_weights=True)]


@pytest.mark.parametrize("rule, configs", [(RULES[0], CONFIGS), (RULES[1], CONFIGS[1:]),
                                           (RULES[2], CONFIGS[1:])])
def test_early_stopping_matches_model_fit(advertising, rule, configs):
    X, y = advertising
    X, Y = X[:200], y[:200].reshape(-1, 1)
    rows = np.random.default_rng(0).permutation(200)[:150]
    split, epochs, bs = 0.2, 20, 40
    stop = keras.callbacks.EarlyStopping(**rule)
    params = {"validation_split": split, "callbacks": [stop]}
    assert obstacle(params) is None
    watched = monitoring(params)
    replicas = []
    for i, config in enumerate(configs):
        model = _build(config)
        replicas.append(Replica(read_structure(model), _weights(model), rows, seed=11 + i))
    result = train_stack(replicas, X, Y, epochs=epochs, batch_size=bs, monitoring=watched)
    train, valid = split_rows(rows, split)
    keras_train, keras_valid = train_validation_split((rows,), validation_split=split)
    np.testing.assert_array_equal(train, keras_train[0])
    np.testing.assert_array_equal(valid, keras_valid[0])
    orders = epoch_orders([replace(r, rows=train) for r in replicas], epochs, bs)
    stopped = []
    for r, config in enumerate(configs):
        model = _build(config)
        own = keras.callbacks.EarlyStopping(**rule)
        batches = _Batches(X, Y, orders[:, r], len(train), bs)
        fitted = model.fit(batches, epochs=epochs, validation_data=(X[valid], Y[valid]),
                  validation_batch_size=bs, callbacks=[_Epochs(batches), own], shuffle=False, verbose=0)
        _same(result, r, model, own, fitted)
        stopped.append(own.stopped_epoch)
    # The stack holds replicas that stop early and one that trains every epoch.
    assert 0 in stopped and any(0 < s < epochs - 1 for s in stopped)


def test_unshuffled_stack_is_model_fit_with_validation_split(advertising):
    """shuffle=False: the reference is model.fit(X[rows], Y[rows], validation_split=...) itself."""
    X, y = advertising
    X, Y = X[:200], y[:200].reshape(-1, 1)
    rows = np.random.default_rng(1).permutation(200)[:150]
    rule = dict(patience=2, min_delta=0.05, restore_best_weights=True)
    replicas = []
    for i, config in enumerate(CONFIGS[:2]):
        model = _build(config)
        replicas.append(Replica(read_structure(model), _weights(model), rows, seed=i,
                                shuffle=False))
    watched = monitoring({"validation_split": 0.2,
                          "callbacks": [keras.callbacks.EarlyStopping(**rule)]})
    result = train_stack(replicas, X, Y, epochs=20, batch_size=40, monitoring=watched)
    for r, config in enumerate(CONFIGS[:2]):
        model = _build(config)
        own = keras.callbacks.EarlyStopping(**rule)
        fitted = model.fit(X[rows], Y[rows], validation_split=0.2, batch_size=40, epochs=20,
                           shuffle=False, callbacks=[own], verbose=0)
        _same(result, r, model, own, fitted)
    assert 0 in result.stopped_epochs and max(result.stopped_epochs) > 0


def test_regularization_penalties_count_in_loss_and_val_loss(advertising):
    """Keras adds model.losses (here L2 kernels) to both the epoch's loss and val_loss."""
    X, y = advertising
    X, Y = X[:120], y[:120].reshape(-1, 1)

    def build():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
            6, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05)),
            keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.01))])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        return model

    model = build()
    rep = Replica(read_structure(model), layer_weights(model), np.arange(120), seed=0,
                  shuffle=False)
    rule = dict(monitor="val_loss", patience=1, min_delta=5.0)
    watched = monitoring({"validation_split": 0.25,
                          "callbacks": [keras.callbacks.EarlyStopping(**rule)]})
    result = train_stack([rep], X, Y, epochs=8, batch_size=30, monitoring=watched)
    model, own = build(), keras.callbacks.EarlyStopping(**rule)
    fitted = model.fit(X, Y, validation_split=0.25, batch_size=30, epochs=8, shuffle=False,
                       callbacks=[own], verbose=0)
    _same(result, 0, model, own, fitted)


class _Quieter(keras.callbacks.EarlyStopping):
    pass


@pytest.mark.parametrize("params, reason", [
    ({"callbacks": [keras.callbacks.TerminateOnNaN()]}, "callbacks=[TerminateOnNaN]"),
    ({"callbacks": [_Quieter()]}, "callbacks=[_Quieter]"),
    ({"callbacks": [keras.callbacks.EarlyStopping(monitor="val_mae")]},
     "EarlyStopping(monitor='val_mae')"),
    ({"callbacks": [keras.callbacks.EarlyStopping()] * 2},
     "callbacks=[EarlyStopping, EarlyStopping]"),
    ({"validation_split": 0.2, "validation_freq": 2}, "validation_freq=2"),
    ({"validation_split": 0.2, "class_weight": "balanced"}, "validation_split with class_weight"),
])
def test_what_a_stack_cannot_watch_is_refused_by_name(params, reason):
    assert reason in obstacle(params)
    assert reason in KerasRegressor(mlp_regressor, **params).stacking_obstacle()


def _protocol(X, y, epochs, **fit):
    """The protocol with these fit settings on its estimator (tune's ``fit=`` is another branch's)."""
    protocol = make_protocol(mlp_regressor, X, y, cv=2, epochs=epochs, batch_size=40, seed=0)
    return replace(protocol, estimator=clone(protocol.estimator).set_params(**fit))


def test_validation_split_and_early_stopping_stack(advertising):
    X, y = advertising
    assert KerasRegressor(mlp_regressor, callbacks=[keras.callbacks.EarlyStopping()],
                          validation_split=0.2).stacking_obstacle() is None
    # Patience 0 and an improvement no epoch makes: every fold stops after epoch 1, so
    # it trains exactly as a fit of 2 epochs does on the same rows.
    never = keras.callbacks.EarlyStopping(patience=0, min_delta=1e9)
    stopped = _protocol(X, y, 15, validation_split=0.2, callbacks=[never])
    two = _protocol(X, y, 2, validation_split=0.2)
    configs = [{"neurons": 4}, {"neurons": 6, "learning_rate": 0.01}]
    trials = [list(stacked_trials(p, X, y, configs, seed=0, fallback=None)) for p in (stopped, two)]
    for a, b in zip(*trials):
        assert a.engine == b.engine == "stacked" and a.budget is None
        np.testing.assert_allclose(a.fold_scores, b.fold_scores, rtol=1e-5)
    # Without the rule the 15 epochs train: other scores.
    longer, = stacked_trials(_protocol(X, y, 15, validation_split=0.2), X, y, configs[:1],
                             seed=0, fallback=None)
    assert abs(longer.mean_score - trials[0][0].mean_score) > 1e-3


def test_successive_halving_stacks_refuse_what_they_would_ignore(advertising):
    X, y = advertising
    trainer = RungTrainer(_protocol(X, y, 4, validation_split=0.2), X, y, seed=0, capacity=4,
                          segment=2)
    with pytest.raises(NotStackable, match="validation_split"):
        trainer.build(0, {"neurons": 4})
    assert RungTrainer(_protocol(X, y, 4), X, y, seed=0, capacity=4,
                       segment=2).build(0, {"neurons": 4}).monitoring == Monitoring()


def _callbacks(specs):
    return [getattr(keras.callbacks, spec["kind"])(**{k: v for k, v in spec.items() if k != "kind"})
            for spec in specs]


@pytest.mark.parametrize("specs", [
    [dict(kind="ReduceLROnPlateau", factor=0.5, patience=1, min_delta=0.05)],
    [dict(kind="ReduceLROnPlateau", monitor="loss", factor=0.2, patience=2, cooldown=1,
          min_lr=1e-3, min_delta=0.5),
     dict(kind="EarlyStopping", patience=4, min_delta=0.05, restore_best_weights=True)]])
def test_reduce_lr_on_plateau_matches_model_fit(advertising, specs):
    """Each replica's own ReduceLROnPlateau sets its learning rate in the stack, epoch by
    epoch, as in its own model.fit (beside an EarlyStopping, in the order given)."""
    X, y = advertising
    X, Y = X[:200], y[:200].reshape(-1, 1)
    rows = np.random.default_rng(0).permutation(200)[:150]
    split, epochs, bs = 0.2, 20, 40
    params = {"validation_split": split, "callbacks": _callbacks(specs)}
    assert obstacle(params) is None
    replicas = []
    for i, config in enumerate(CONFIGS):
        model = _build(config)
        replicas.append(Replica(read_structure(model), _weights(model), rows, seed=11 + i))
    result = train_stack(replicas, X, Y, epochs=epochs, batch_size=bs,
                         monitoring=monitoring(params))
    train, valid = split_rows(rows, split)
    orders = epoch_orders([replace(r, rows=train) for r in replicas], epochs, bs)
    reduced = []
    for r, config in enumerate(CONFIGS):
        model, own = _build(config), _callbacks(specs)
        batches = _Batches(X, Y, orders[:, r], len(train), bs)
        fitted = model.fit(batches, epochs=epochs, validation_data=(X[valid], Y[valid]),
                           validation_batch_size=bs, callbacks=[_Epochs(batches), *own],
                           shuffle=False, verbose=0)
        stopping = [cb for cb in own if isinstance(cb, keras.callbacks.EarlyStopping)]
        _same(result, r, model, stopping[0] if stopping else None, fitted)
        np.testing.assert_allclose(result.history[r]["learning_rate"],
                                   fitted.history["learning_rate"], rtol=1e-6)
        reduced.append(len(set(fitted.history["learning_rate"])) > 1)
    assert any(reduced)  # the rate changed for some replica


def test_reduce_lr_on_plateau_beside_a_schedule_trains_one_at_a_time(advertising):
    from nn_tuning.stacked.plan import build

    X, y = advertising
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    reduce = keras.callbacks.ReduceLROnPlateau()
    protocol = _protocol(X, y, 2, validation_split=0.2, callbacks=[reduce])
    with pytest.raises(NotStackable, match="ReduceLROnPlateau with a learning-rate schedule"):
        build(protocol, X, y, 0, {"neurons": 4, "optimizer": keras.optimizers.Adam(schedule)})
    assert build(protocol, X, y, 0, {"neurons": 4}).monitoring.sets_learning_rate
