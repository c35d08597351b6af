"""The stacked engine's contract: every replica trains as its own Keras model would.

(a) one stacked optimizer step is Keras' own ``optimizer.apply`` per replica;
(b) from the builder's initial weights, on the same batches, the weights match
``model.fit`` after one step and after 40 epochs (one stack holding every
activation, 1-3 hidden layers of unequal widths and several learning rates),
and so do the CV scores;
(c) a replica's result does not depend on its stack-mates.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning.stacked import (
    SUPPORTED_ACTIVATIONS,
    SUPPORTED_OPTIMIZERS,
    NotStackable,
    Replica,
    epoch_orders,
    read_structure,
    train_stack,
)
from nn_tuning.stacked.layout import layout, stack_consts, stacked_params
from nn_tuning.stacked.loops import _optimizers
from nn_tuning.stacked.model import StackedModel
from nn_tuning.stacked.read_model import layer_weights, weighted_layers
from nn_tuning.stacked.structure import Hidden, Structure

# Measured: 0 ulp for SGD, Adam, AdamW, Adamax, Nadam and Lion, 2 for RMSprop,
# Adagrad and Adadelta, 3 for Ftrl (a square root, power or division fused differently
# in a graph).
ULP_BOUND = 4


def _weights(model):
    return layer_weights(model)


def _ulps(got, ref):
    return np.max(np.abs(got - ref) / np.spacing(np.maximum(np.abs(ref), 1e-30).astype("float32")))


@pytest.mark.parametrize("name", SUPPORTED_OPTIMIZERS)
def test_stacked_optimizer_step_is_keras_own_per_replica(name):
    rng = np.random.default_rng(0)
    R = 4
    lrs = np.array([1e-3, 1e-2, 0.1, 0.03], "float32")
    kwargs = {"momentum": 0.9, "nesterov": True} if name == "SGD" else {}
    model = mlp_regressor(input_dim=3, neurons=5, optimizer=getattr(keras.optimizers, name)(**kwargs))
    structure = read_structure(model)
    W = rng.normal(size=(R, 3, 5)).astype("float32")
    b = rng.normal(size=(R, 1, 5)).astype("float32")
    steps = [[rng.normal(size=W.shape).astype("float32"), rng.normal(size=b.shape).astype("float32")]
             for _ in range(3)]
    holder = {"lr": keras.ops.convert_to_tensor(lrs.reshape(R, 1, 1))}
    vw, vb = keras.Variable(W), keras.Variable(b)
    holder["lr"] = [holder["lr"]]
    (stacked,) = _optimizers([structure.variant], holder, [[vw, vb]])
    # Replicas of different ages: replica r has already taken r steps (its own
    # step count), as a replica continued after a rung shares a stack with new ones.
    ages = np.arange(R)

    def u_product(age):  # Nadam's running product over the steps already taken
        return float(np.prod([0.9 * (1.0 - 0.5 * 0.96 ** t) for t in range(1, age + 1)]))

    stacked.iterations.assign(ages.reshape(R, 1, 1).astype(
        keras.backend.standardize_dtype(stacked.iterations.dtype)))
    if name == "Nadam":
        stacked._u_product.assign(np.array([u_product(a) for a in ages], "float32")
                                  .reshape(R, 1, 1))
    for grads in steps:
        stacked.apply(grads, [vw, vb])
    for r in range(R):
        own = getattr(keras.optimizers, name)(learning_rate=float(lrs[r]), **kwargs)
        w1, b1 = keras.Variable(W[r]), keras.Variable(b[r, 0])
        own.build([w1, b1])
        own.iterations.assign(int(ages[r]))
        if name == "Nadam":
            own._u_product.assign(u_product(int(ages[r])))
        for gw, gb in steps:
            own.apply([gw[r], gb[r, 0]], [w1, b1])
        assert _ulps(vw.numpy()[r], w1.numpy()) <= ULP_BOUND
        assert _ulps(vb.numpy()[r, 0], b1.numpy()) <= ULP_BOUND


def _regression_models(optimizer):
    """Replicas covering every activation, 1-3 layers, several widths and learning rates."""
    out = []
    for i, act in enumerate(SUPPORTED_ACTIVATIONS):
        layers = (i % 3) + 1
        lr = [None, 0.003, 0.02][i % 3]
        out.append(dict(hidden_layers=tuple(4 + 3 * ((i + j) % 4) for j in range(layers)),
                        activation=act, optimizer=optimizer, learning_rate=lr))
    return out


def _contract_models(optimizer):
    """One stack's worth: every activation, 1-3 layers of unequal widths, three learning rates.

    Plus ``Dense -> Dropout(0) -> Activation`` chains (the activation after the
    dropout) for activations where the order would matter with a rate > 0.
    Learning rates stay where these small nets train stably: at SGD's 0.02 a
    3-layer tanh net amplifies float32 rounding (1e-7 after 20 epochs, 5e-3
    after 40, measured) as it would between two runs of model.fit itself.
    """
    out = []
    for i, act in enumerate(SUPPORTED_ACTIVATIONS):
        layers = (i % 3) + 1
        out.append(dict(hidden_layers=tuple(3 + 2 * ((i + j) % 5) for j in range(layers)),
                        activation=act, optimizer=optimizer,
                        learning_rate=[None, 0.006, 0.003][(i + 1) % 3]))
    for i, act in enumerate(("tanh", "sigmoid", "gelu")):
        out.append(dict(hidden_layers=(5, 8)[:i % 2 + 1], activation=act, optimizer=optimizer,
                        learning_rate=0.004, dropout_first=True))
    return out


def _chain_regressor(input_dim, hidden_layers, activation, optimizer, learning_rate=None,
                     dropout_first=False):
    """``mlp_regressor``, or the same net written Dense -> Dropout(0) -> Activation."""
    if not dropout_first:
        return mlp_regressor(input_dim=input_dim, hidden_layers=hidden_layers,
                             activation=activation, optimizer=optimizer,
                             learning_rate=learning_rate)
    layers = [keras.Input((input_dim,))]
    for units in hidden_layers:
        layers += [keras.layers.Dense(units), keras.layers.Dropout(0.0),
                   keras.layers.Activation(activation)]
    model = keras.Sequential(layers + [keras.layers.Dense(1)])
    kwargs = {} if learning_rate is None else {"learning_rate": learning_rate}
    model.compile(optimizer=getattr(keras.optimizers, optimizer)(**kwargs), loss="mse")
    return model


def _build(builder, params, **meta):
    keras.utils.set_random_seed(7)
    return builder(**meta, **params)


def _fit_like_keras(model, X, Y, rows_per_epoch, batch_size):
    """model.fit on exactly the engine's batches (epochs concatenated: n % batch_size == 0)."""
    idx = np.concatenate(rows_per_epoch)
    model.fit(X[idx], Y[idx], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)


# RMSprop's first step is lr * g / sqrt(0.1 g^2 + 1e-7): for gradients near
# sqrt(1e-7) it amplifies the float32 rounding of the gradient itself (a batched
# matmul sums in another order) about lr / sqrt(1e-7) = 3 times: measured
# 3.5e-6 on one weight in 130. Every other optimizer meets atol=1e-6.
_ONE_STEP_ATOL = {"RMSprop": 1e-5}


def _compare(builder, configs, X, Y, folds, epochs, batch_size, meta, score, atol=1e-6,
             run_eagerly=False):
    """Train one stack and, per replica, its own Keras model with ``model.fit``.

    ``run_eagerly`` runs the reference's own ``train_step`` eagerly (the same
    ``fit`` on the same batches, without tracing a graph per model): for a
    handful of steps that is much cheaper than a trace.
    """
    replicas, refs = [], []
    for i, params in enumerate(configs):
        model = _build(builder, params, **meta)
        for k, (train, _) in enumerate(folds):
            replicas.append(Replica(read_structure(model), _weights(model), train, seed=100 * i + k))
            refs.append((params, k))
    result = train_stack(replicas, X, Y, epochs=epochs, batch_size=batch_size)
    orders = epoch_orders(replicas, epochs, batch_size)
    worst_rel, worst_score = 0.0, 0.0
    for r, (params, k) in enumerate(refs):
        model = _build(builder, params, **meta)
        model.run_eagerly = run_eagerly
        n = len(replicas[r].rows)
        _fit_like_keras(model, X, Y, [orders[e, r, :n] for e in range(epochs)], batch_size)
        layers = weighted_layers(model)
        for j, (arrays, layer) in enumerate(zip(result.weights[r], layers)):
            for a, (got, ref) in enumerate(zip(arrays, (v.numpy() for v in layer.weights))):
                if (a == 1 and _cancelled(layers, j)) or (a == 2 and _cancelled(layers, j - 1)):
                    continue  # the cancelled bias, and the moving mean that sums it
                if epochs == 1:
                    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=atol)
                worst_rel = max(worst_rel, np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))
        valid = folds[k][1]
        theirs = score(model, X[valid], Y[valid])
        for arrays, layer in zip(result.weights[r], weighted_layers(model)):  # ours, same net
            for variable, value in zip(layer.weights, arrays):
                variable.assign(value)
        worst_score = max(worst_score, abs(score(model, X[valid], Y[valid]) - theirs))
    return worst_rel, worst_score


def _cancelled(layers, j):
    """Whether layer ``j`` is a linear Dense or Conv layer whose bias a BatchNormalization cancels.

    Its gradient is exactly 0 in arithmetic, so its value is float32 rounding
    noise (Adam scales that noise up to ~lr * noise / epsilon): two runs of
    model.fit itself agree on it only when bit for bit the same. The
    BatchNormalization's moving mean sums it too (measured: 5e-4 relative
    after 12 epochs); the scores, which read that moving mean, are still compared.
    """
    return (j >= 0 and j + 1 < len(layers) and type(layers[j + 1]) is keras.layers.BatchNormalization
            and type(layers[j]) in (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)
            and layers[j].activation is keras.activations.linear)


def _predict(model, X):
    # What model.predict computes (predict_step is model(x, training=False)), in one batch
    # and without tracing a predict function per model.
    return keras.ops.convert_to_numpy(model(X, training=False))


def _r2(model, X, Y):
    return r2_score(Y, _predict(model, X))


def _accuracy(model, X, Y):
    p = _predict(model, X)
    labels = (p[:, 0] > 0.5).astype(int) if p.shape[1] == 1 else p.argmax(axis=1)
    return accuracy_score(Y.ravel(), labels)


@pytest.fixture(scope="module")
def adv(advertising):
    X, y = advertising
    X, y = X[:200], y[:200].reshape(-1, 1)
    folds = list(KFold(5, shuffle=True, random_state=0).split(X))[:2]  # 160 rows: 4 batches of 40
    return X, y, folds


@pytest.mark.parametrize("optimizer", SUPPORTED_OPTIMIZERS)
def test_one_step_matches_model_fit(adv, optimizer):
    """Adam's stack holds every activation; another optimizer's step is checked on 1-3 layers
    at three learning rates (activations do not enter an optimizer's update)."""
    X, Y, folds = adv
    folds = [(train[:40], valid) for train, valid in folds[:1]]  # one batch: one step
    configs = _regression_models(optimizer)
    _compare(mlp_regressor, configs if optimizer == "Adam" else configs[:3], X, Y, folds, 1, 40,
             {"input_dim": 3}, _r2, atol=_ONE_STEP_ATOL.get(optimizer, 1e-6), run_eagerly=True)


# Every other optimizer trains 40 epochs in one stack of every optimizer (below): a stack
# per optimizer again cost 95 s of the suite.
@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
def test_40_epochs_match_model_fit(adv, optimizer):
    """One stack: every activation, 1-3 unequal layers, per-replica learning rates, 40 epochs."""
    X, Y, folds = adv
    configs = _contract_models(optimizer)
    assert {c["activation"] for c in configs} == set(SUPPORTED_ACTIVATIONS)
    assert {len(c["hidden_layers"]) for c in configs} == {1, 2, 3}
    assert len({c["learning_rate"] for c in configs}) >= 3
    rel, score = _compare(_chain_regressor, configs, X, Y, folds[:1], 40, 40, {"input_dim": 3},
                          _r2)
    assert rel <= 1e-4
    assert score <= 1e-4


def test_classification_matches_model_fit(iris):
    X, y = iris
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(X))[:150]
    X, y = X[rows], y[rows].reshape(-1, 1)
    folds = [(np.arange(0, 120), np.arange(120, 150)), (np.arange(30, 150), np.arange(0, 30))]
    configs = [dict(hidden_layers=(8,), activation="relu"),
               dict(hidden_layers=(6, 10), activation="softmax", optimizer="rmsprop")]
    for params in configs:  # one optimizer type per stack
        rel, score = _compare(mlp_classifier, [params], X, y, folds, 40, 30,
                              {"input_dim": 4, "n_classes": 3}, _accuracy)
        assert rel <= 1e-4 and score <= 1e-4


def test_binary_classification_matches_model_fit():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200]).astype("float32")
    y = y[:200].reshape(-1, 1).astype("float32")
    folds = [(np.arange(0, 160), np.arange(160, 200)), (np.arange(40, 200), np.arange(0, 40))]
    configs = [dict(hidden_layers=(5,), activation="tanh"), dict(hidden_layers=(9, 3), activation="gelu")]
    rel, score = _compare(mlp_classifier, configs, X, y, folds, 30, 40,
                          {"input_dim": 30, "n_classes": 2}, _accuracy)
    assert rel <= 1e-4 and score <= 1e-4


def test_replica_does_not_depend_on_stack_mates(adv):
    X, Y, folds = adv
    configs = _regression_models("Adam")
    models = [_build(mlp_regressor, c, input_dim=3) for c in configs]
    replicas = [Replica(read_structure(m), _weights(m), folds[0][0], seed=i)
                for i, m in enumerate(models)]
    together = train_stack(replicas, X, Y, epochs=20, batch_size=40)
    for r in (0, 5, len(replicas) - 1):
        alone = train_stack([replicas[r]], X, Y, epochs=20, batch_size=40)
        pair = train_stack([replicas[r], replicas[(r + 3) % len(replicas)]], X, Y, epochs=20,
                           batch_size=40)
        for (k1, b1), (k2, b2), (k3, b3) in zip(together.weights[r], alone.weights[0],
                                                pair.weights[0]):
            np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(k3, k2, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)


def test_as_many_replicas_as_rows_in_a_batch_train_as_one(adv):
    """Keras' TensorFlow ops.add once added the (R, 1, 1) output biases along the batch axis."""
    X, Y, folds = adv
    models = [_build(mlp_regressor, dict(neurons=4), input_dim=3) for _ in range(8)]
    replicas = [Replica(read_structure(m), _weights(m), folds[0][0][:64], seed=i)
                for i, m in enumerate(models)]
    together = train_stack(replicas, X, Y, epochs=1, batch_size=8).weights[3]
    alone = train_stack(replicas[3:4], X, Y, epochs=1, batch_size=8).weights[0]
    for (k1, b1), (k2, b2) in zip(together, alone):
        np.testing.assert_allclose(k1, k2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-5, atol=1e-6)


def test_unequal_fold_sizes_train_each_replica_on_its_own_rows(adv):
    X, Y, _ = adv
    model = _build(mlp_regressor, dict(neurons=6), input_dim=3)
    short = Replica(read_structure(model), _weights(model), np.arange(0, 157), seed=1)
    full = Replica(read_structure(model), _weights(model), np.arange(0, 160), seed=2)
    orders = epoch_orders([short, full], 3, 40)
    assert sorted(orders[0, 0, :157]) == list(range(157))
    assert len(set(map(tuple, orders[:, 1, :160]))) == 3  # a new shuffle every epoch
    result = train_stack([short, full], X, Y, epochs=3, batch_size=40)
    keras_model = _build(mlp_regressor, dict(neurons=6), input_dim=3)
    for e in range(3):  # the last batch of 37 rows is its own, smaller batch
        idx = orders[e, 0, :157]
        keras_model.fit(X[idx], Y[idx], batch_size=40, epochs=1, shuffle=False, verbose=0)
    for (kernel, _), layer in zip(result.weights[0], weighted_layers(keras_model)):
        np.testing.assert_allclose(kernel, layer.kernel.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, reason", [
    (lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation=lambda x: x),
                               keras.layers.Dense(1)]), "activation"),
    (lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="glu"),
                               keras.layers.Dense(1)]), "activation"),
    (lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                               keras.layers.GaussianNoise(0.1), keras.layers.Dense(1)]),
     "GaussianNoise"),
    (lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                               keras.layers.BatchNormalization(synchronized=True),
                               keras.layers.Dense(1)]), "synchronized"),
    (lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                               keras.layers.Dropout(0.1), keras.layers.BatchNormalization(),
                               keras.layers.Dense(1)]), "follows a Dropout"),
])
def test_unsupported_layers_are_refused_with_a_reason(make, reason):
    model = make()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(NotStackable, match=reason):
        read_structure(model)


class _ScaledDense(keras.layers.Dense):
    def call(self, inputs):
        return 2.0 * super().call(inputs)


def test_a_subclass_of_dense_is_refused():
    model = keras.Sequential([keras.Input((3,)), _ScaledDense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(NotStackable, match="_ScaledDense, a subclass of Dense"):
        read_structure(model)


def _chain(*hidden):
    model = keras.Sequential([keras.Input((3,)), *hidden, keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_dropout_before_the_activation_is_read_in_that_order():
    layers = keras.layers
    first = read_structure(_chain(layers.Dense(4), layers.Dropout(0.3), layers.Activation("tanh")))
    after = read_structure(_chain(layers.Dense(4), layers.Activation("tanh"), layers.Dropout(0.3)))
    own = read_structure(_chain(layers.Dense(4, activation="tanh"), layers.Dropout(0.3)))
    assert first.hidden[0] == Hidden(4, "tanh", 0.3, dropout_first=True)
    assert after.hidden[0] == own.hidden[0] == Hidden(4, "tanh", 0.3, dropout_first=False)


def test_dropout_first_drops_the_pre_activations():
    """With the same dropout bits, f(drop(z)) for dropout-first replicas, drop(f(z)) otherwise."""
    rng = np.random.default_rng(0)
    reps = []
    for first in (True, False):
        s = Structure(3, (Hidden(5, "tanh", 0.5, first),), 1, "linear", "mean_squared_error", (),
                      "Adam", (), 1e-3)
        reps.append(Replica(s, [(rng.normal(size=(3, 5)).astype("float32"),
                                 rng.normal(size=5).astype("float32")),
                                (np.ones((5, 1), "float32"), np.zeros(1, "float32"))],
                            np.arange(4), seed=0))
    lay = layout(reps)
    consts = stack_consts(reps, lay, np.zeros((1, 3), "float32"), np.zeros((1, 1)), 4)
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    bits = rng.integers(0, 2 ** 32, size=(2, 4, 5), dtype="uint32")
    out = keras.ops.convert_to_numpy(StackedModel(lay, reps[0].structure, 4).forward(
        stacked_params(reps, lay), consts, x, lambda layer, width: bits))
    keep = ((bits >> 8).astype("float32") * 2.0 ** -24 >= 0.5) / 0.5
    for r, first in enumerate((True, False)):
        z = x[r] @ reps[r].weights[0][0] + reps[r].weights[0][1]
        hidden = np.tanh(z * keep[r]) if first else np.tanh(z) * keep[r]
        np.testing.assert_allclose(out[r, :, 0], hidden.sum(axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer, reason", [
    (lambda: keras.optimizers.Adam(global_clipnorm=1.0), "global_clipnorm"),
    (lambda: keras.optimizers.Adam(clipnorm=1.0), "clipnorm"),
    (lambda: keras.optimizers.Adafactor(), "Adafactor"),
    (lambda: keras.optimizers.Lamb(), "Lamb"),
])
def test_unsupported_optimizers_are_refused_with_a_reason(optimizer, reason):
    model = mlp_regressor(input_dim=3, neurons=4, optimizer=optimizer())
    with pytest.raises(NotStackable, match=reason):
        read_structure(model)


def test_structure_of_the_builders():
    s = read_structure(mlp_regressor(input_dim=3, hidden_layers=(5, 7), activation="swish",
                                     dropout=0.25))
    assert [(h.units, h.activation, h.dropout) for h in s.hidden] == [(5, "silu", 0.25),
                                                                     (7, "silu", 0.25)]
    assert s.n_params == (3 + 1) * 5 + (5 + 1) * 7 + (7 + 1) * 1
    c = read_structure(mlp_classifier(input_dim=4, n_classes=3, neurons=6))
    assert (c.output_units, c.output_activation, c.loss) == (3, "softmax",
                                                              "sparse_categorical_crossentropy")
    assert list(itertools.chain(SUPPORTED_ACTIVATIONS)).count("relu") == 1


def test_one_stack_of_every_optimizer_matches_model_fit(adv):
    """Replicas of every supported optimizer share one stack and one loop; each steps with its
    own optimizer, as its own model.fit does."""
    from nn_tuning.stacked import compiled

    X, Y, folds = adv
    configs = [dict(hidden_layers=((5,), (4, 6))[i % 2], activation=("relu", "tanh")[i % 2],
                    optimizer=name, learning_rate=0.01) for i, name in enumerate(SUPPORTED_OPTIMIZERS)]
    before = compiled.traces()
    rel, score = _compare(_chain_regressor, configs, X, Y, folds[:1], 40, 40, {"input_dim": 3}, _r2)
    assert compiled.traces() - before == 1
    assert rel <= 1e-4
    assert score <= 1e-4
