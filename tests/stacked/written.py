"""Models people write, for the stacked engine's tests: regularizers, Lion, Ftrl, schedules.

One stack of :data:`CONFIGS` (each a different regularizer, optimizer or schedule,
some sharing an optimizer variant at other strengths or initial rates) against
each configuration's own ``model.fit`` on the same batches. Imported by
tests/stacked/test_written_models.py in its own process (TensorFlow) and in a
``KERAS_BACKEND=jax`` subprocess.
"""

from __future__ import annotations

import keras
import numpy as np

from nn_tuning.stacked import Replica, epoch_orders, read_structure, train_stack
from nn_tuning.stacked.read_model import weighted_layers

ROWS, BATCH, EPOCHS = 64, 16, 15

L1, L2, L1L2 = keras.regularizers.L1, keras.regularizers.L2, keras.regularizers.L1L2
opt, sched = keras.optimizers, keras.optimizers.schedules

# (hidden widths, activation, then makers of: kernel, bias and output kernel regularizers,
# optimizer): each build makes fresh objects. Stack-mates differ in regularizer strengths
# (none at all for some), schedules and optimizers; the first and the last share an
# optimizer variant (Adam, ExponentialDecay(10, 0.5)) at other initial rates and strengths.
CONFIGS = [
    ((5,), "tanh", lambda: L2(0.01), None, lambda: L2(0.05),
     lambda: opt.Adam(sched.ExponentialDecay(0.02, 10, 0.5))),
    ((4, 6), "relu", lambda: L1(0.003), lambda: L1L2(0.01, 0.02), None,
     lambda: opt.SGD(sched.InverseTimeDecay(0.05, 5, 0.3, staircase=True), momentum=0.9)),
    ((6,), "tanh", None, None, None,
     lambda: opt.Adam(sched.PolynomialDecay(0.03, 30, 0.001, power=2.0))),
    ((5,), "tanh", lambda: L2(0.03), None, None,
     lambda: opt.Adam(sched.CosineDecay(0.02, 40, alpha=0.1))),
    ((3, 5), "sigmoid", None, lambda: L2(0.02), None,
     lambda: opt.RMSprop(sched.CosineDecayRestarts(0.01, 8, t_mul=2.0, m_mul=0.8))),
    ((5,), "tanh", lambda: L1L2(0.001, 0.01), None, None, lambda: opt.Lion(0.001)),
    ((4,), "tanh", None, None, lambda: L1(0.01),
     lambda: opt.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01)),
    ((4,), "elu", None, lambda: L1(0.001), None,
     lambda: opt.Adam(sched.PiecewiseConstantDecay([12, 30], [0.02, 0.01, 0.002]))),
    ((5,), "tanh", lambda: L2(0.002), None, None,
     lambda: opt.Adam(sched.ExponentialDecay(0.005, 10, 0.5))),
]


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 3)).astype("float32")
    Y = X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.3 * np.sin(3 * X[:, :1])
    return X, Y.astype("float32")


def build(config: tuple) -> keras.Model:
    """The configuration's model, compiled, its initial weights drawn from one seed."""
    hidden, activation, kernel, bias, out_kernel, optimizer = config
    keras.utils.set_random_seed(3)
    layers = [keras.Input((3,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation=activation,
                                         kernel_regularizer=kernel and kernel(),
                                         bias_regularizer=bias and bias()))
    layers.append(keras.layers.Dense(1, kernel_regularizer=out_kernel and out_kernel()))
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer(), loss="mse")
    return model


def _weights(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(w) for d in weighted_layers(model) for w in (d.kernel.numpy(), d.bias.numpy())]


def compare(configs: list[tuple] = CONFIGS) -> dict:
    """One stack of ``configs`` against each one's ``model.fit`` on the same batches.

    Returns, per configuration, ``one_step``: the largest excess of the stack's
    weights after one step over ``model.fit``'s within ``rtol=1e-5, atol=1e-6``
    (<= 0 where allclose), and ``rel``: the largest relative error (norm of the
    difference over the norm, per weight) after :data:`EPOCHS` epochs.
    """
    X, Y = data()
    models = [build(c) for c in configs]
    replicas = [Replica(read_structure(m), [(d.kernel.numpy(), d.bias.numpy())
                                            for d in weighted_layers(m)], np.arange(ROWS), seed=i)
                for i, m in enumerate(models)]
    orders = epoch_orders(replicas, EPOCHS, BATCH)
    trained = train_stack(replicas, X, Y, epochs=EPOCHS, batch_size=BATCH)
    # One step: each replica on the first batch its EPOCHS-epoch run takes (one batch of rows).
    first = [Replica(r.structure, r.weights, orders[0, i, :BATCH], seed=i)
             for i, r in enumerate(replicas)]
    stepped = train_stack(first, X, Y, epochs=1, batch_size=BATCH)
    one_step, rel = [], []
    for r, model in enumerate(models):
        idx = np.concatenate([orders[e, r] for e in range(EPOCHS)])
        # One fit on the first batch, then the rest: one compiled train step for both.
        model.fit(X[idx[:BATCH]], Y[idx[:BATCH]], batch_size=BATCH, shuffle=False, verbose=0)
        ref = _weights(model)
        got = [w for pair in stepped.weights[r] for w in pair]
        one_step.append(max(float(np.max(np.abs(g - w) - (1e-6 + 1e-5 * np.abs(w))))
                            for g, w in zip(got, ref)))
        model.fit(X[idx[BATCH:]], Y[idx[BATCH:]], batch_size=BATCH, shuffle=False, verbose=0)
        got = [w for pair in trained.weights[r] for w in pair]
        rel.append(max(float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-12))
                       for g, w in zip(got, _weights(model))))
    return {"one_step": one_step, "rel": rel, "backend": keras.backend.backend()}
