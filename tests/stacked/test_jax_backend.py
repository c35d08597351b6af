"""The stacked engine under ``KERAS_BACKEND=jax`` (in subprocesses: Keras fixes its backend at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("jax", reason="the JAX backend needs jax (pip install -e '.[dev]')")


def run_jax(code: str, timeout: int = 300, env: dict | None = None) -> dict:
    # The persistent compilation cache stays out of the user's cache folder unless asked.
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu", "NN_TUNING_JAX_CACHE": "off", **(env or {})}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# One JAX process serves three tests (each pays a Keras-on-JAX start-up otherwise): it first
# records who imports TensorFlow (before anything else is imported), then trains a stack
# against model.fit, then draws the shuffles compared with TensorFlow's.
_SHUFFLE_REPLICAS = """
    from nn_tuning.stacked import Replica
    from nn_tuning.stacked.structure import Hidden, Structure
    s = Structure(3, (Hidden(4, "relu", 0.0),), 1, "linear", "mean_squared_error", (),
                  "Adam", (), 1e-3)
    shuffle_reps = [Replica(s, [], np.arange(n), seed=7 * n) for n in (37, 40)]
"""


@pytest.fixture(scope="module")
def under_jax() -> dict:
    return run_jax(textwrap.dedent("""
        import json, sys, traceback

        importers = []

        class _Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "tensorflow" and "tensorflow" not in sys.modules:
                    frames = [f.filename for f in traceback.extract_stack()
                              if "importlib" not in f.filename and f.filename != "<string>"]
                    importers.append(frames[-1].split("site-packages/")[-1])

        sys.meta_path.insert(0, _Spy())
        import nn_tuning, nn_tuning.stacked.plan
        from nn_tuning.devices import configure_devices, default_device_label, describe_devices
        labels = [default_device_label(), configure_devices("auto"), describe_devices()[0]]
        before = "tensorflow" in sys.modules
        import nn_tuning.plan  # imports nn_tuning.wrappers, so scikeras

        import keras, numpy as np
        from model_builders import mlp_regressor
        from nn_tuning.stacked import Replica, epoch_orders, read_structure, train_stack
        from nn_tuning.stacked.read_model import weighted_layers

        rng = np.random.default_rng(0)
        X = rng.normal(size=(120, 3)).astype("float32")
        Y = (X @ np.array([[1.0], [-2.0], [0.5]], "float32") + 0.1).astype("float32")
        configs = [dict(hidden_layers=(6,), activation="relu"),
                   dict(hidden_layers=(4, 9), activation="softmax", learning_rate=0.01)]
        def build(c):
            keras.utils.set_random_seed(3)
            return mlp_regressor(input_dim=3, **c)
        reps = []
        for i, c in enumerate(configs):
            m = build(c)
            reps.append(Replica(read_structure(m), [(d.kernel.numpy(), d.bias.numpy())
                        for d in weighted_layers(m)], np.arange(120), seed=i))
        result = train_stack(reps, X, Y, epochs=10, batch_size=40)
        orders = epoch_orders(reps, 10, 40)
        worst = 0.0
        for r, c in enumerate(configs):
            m = build(c)
            idx = np.concatenate([orders[e, r] for e in range(10)])
            m.fit(X[idx], Y[idx], batch_size=40, epochs=1, shuffle=False, verbose=0)
            for (k, b), d in zip(result.weights[r], weighted_layers(m)):
                worst = max(worst, float(np.linalg.norm(k - d.kernel.numpy()) /
                                         np.linalg.norm(d.kernel.numpy())))

        # Convolution stacks (tests/stacked/test_conv.py on TensorFlow): one step and 10 epochs.
        from sklearn.datasets import load_digits
        from model_builders import cnn_classifier
        Xd, yd = load_digits(return_X_y=True)
        Xd, yd = (Xd[:120] / 16.0).astype("float32").reshape(-1, 8, 8, 1), yd[:120].reshape(-1, 1)
        meta = {"X_shape_": (120, 8, 8, 1), "n_features_in_": 8, "n_classes_": 10}
        cnns = [dict(filters=4, dense_units=12, learning_rate=0.01),
                dict(filters=4, dense_units=7, optimizer="sgd", learning_rate=0.05)]
        def build_cnn(c):
            keras.utils.set_random_seed(5)
            return cnn_classifier(meta=meta, n_blocks=2, **c)
        cnn_worst, cnn_step = {}, {}
        # One step on the first configuration only (each model.fit compiles its convolutions).
        for epochs, rows, cnns in ((1, np.arange(40), cnns[:1]), (10, np.arange(120), cnns)):
            reps = []
            for i, c in enumerate(cnns):
                m = build_cnn(c)
                reps.append(Replica(read_structure(m), [(d.kernel.numpy(), d.bias.numpy())
                            for d in weighted_layers(m)], rows, seed=i))
            result = train_stack(reps, Xd, yd, epochs=epochs, batch_size=40)
            orders = epoch_orders(reps, epochs, 40)
            for r, c in enumerate(cnns):
                m = build_cnn(c)
                idx = np.concatenate([orders[e, r] for e in range(epochs)])
                m.fit(Xd[idx], yd[idx], batch_size=40, epochs=1, shuffle=False, verbose=0)
                for (k, b), d in zip(result.weights[r], weighted_layers(m)):
                    for got, ref in ((k, d.kernel.numpy()), (b, d.bias.numpy())):
                        rel = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))
                        cnn_worst[epochs] = max(cnn_worst.get(epochs, 0.0), rel)
                        if epochs == 1:
                            ok = np.allclose(got, ref, rtol=1e-5, atol=1e-6)
                            cnn_step["ok"] = cnn_step.get("ok", True) and bool(ok)

        # Early stopping (tests/stacked/test_stopping.py on TensorFlow): a rule no epoch
        # satisfies stops every replica after epoch 1 and restores epoch 0's weights, which
        # are a 1-epoch stack's on the same training rows.
        from dataclasses import replace
        from nn_tuning.stacked.stopping import monitoring, split_rows
        es_reps = []
        for i, c in enumerate(configs):
            m = build(c)
            es_reps.append(Replica(read_structure(m), [(d.kernel.numpy(), d.bias.numpy())
                           for d in weighted_layers(m)], np.arange(120), seed=i))
        never = keras.callbacks.EarlyStopping(patience=0, min_delta=1e9, restore_best_weights=True)
        rule = monitoring({"validation_split": 0.25, "callbacks": [never]})
        stopped = train_stack(es_reps, X, Y, epochs=10, batch_size=40, monitoring=rule)
        first = train_stack([replace(r, rows=split_rows(r.rows, 0.25)[0]) for r in es_reps],
                            X, Y, epochs=1, batch_size=40)
        es = {"stopped": stopped.stopped_epochs, "epochs": stopped.epochs,
              "gap": max(float(np.abs(a - b).max()) for wa, wb in zip(stopped.weights, first.weights)
                         for pa, pb in zip(wa, wb) for a, b in zip(pa, pb))}
        # BatchNormalization after the activation (its moving statistics are carried in the
        # loop's state under JAX) and LayerNormalization: 6 epochs, 96 rows of 32. And a
        # bias-free convolution (on the rows reshaped; a bias there is cancelled by the
        # normalisation, its value float32 noise) with an L2 kernel, normalised by a
        # BatchNormalization, into a bias-free output layer.
        from nn_tuning.stacked.read_model import layer_weights
        def normed(kind):
            keras.utils.set_random_seed(9)
            if kind == "conv":
                layers = [keras.layers.Reshape((3, 1)),
                          keras.layers.Conv1D(4, 2, padding="same", use_bias=False,
                                              kernel_regularizer=keras.regularizers.L2(1e-2)),
                          keras.layers.BatchNormalization(momentum=0.8),
                          keras.layers.Activation("relu"), keras.layers.GlobalAveragePooling1D(),
                          keras.layers.Dense(1, use_bias=False)]
            else:
                layers = [keras.layers.Dense(6, activation="relu"),
                          keras.layers.BatchNormalization(momentum=0.8) if kind == "batch"
                          else keras.layers.LayerNormalization(), keras.layers.Dense(1)]
            m = keras.Sequential([keras.Input((3,)), *layers])
            m.compile(optimizer="adam", loss="mse")
            return m
        norm_worst = 0.0
        for kind in ("batch", "layer", "conv"):
            m = normed(kind)
            rep = Replica(read_structure(m), layer_weights(m), np.arange(96), seed=4)
            result = train_stack([rep], X, Y, epochs=6, batch_size=32)
            orders = epoch_orders([rep], 6, 32)
            m = normed(kind)
            idx = np.concatenate([orders[e, 0] for e in range(6)])
            m.fit(X[idx], Y[idx], batch_size=32, epochs=1, shuffle=False, verbose=0)
            for arrays, layer in zip(result.weights[0], weighted_layers(m)):
                for got, ref in zip(arrays, (v.numpy() for v in layer.weights)):
                    norm_worst = max(norm_worst, float(np.linalg.norm(got - ref) /
                                                       max(np.linalg.norm(ref), 1e-12)))
    """) + textwrap.dedent(_SHUFFLE_REPLICAS) + textwrap.dedent("""
        print(json.dumps({"early_stopping": es, "before_wrappers": before, "labels": labels,
                          "importers": sorted(set(importers)),
                          "backend": keras.backend.backend(), "worst": worst,
                          "cnn_worst": cnn_worst, "cnn_one_step": cnn_step["ok"],
                          "norm_worst": norm_worst,
                          "shuffles": epoch_orders(shuffle_reps, 3, 10).tolist()}))
    """))


def test_stack_matches_model_fit_under_jax(under_jax):
    assert under_jax["backend"] == "jax"
    assert under_jax["worst"] <= 1e-4


def test_convolution_stack_matches_model_fit_under_jax(under_jax):
    assert under_jax["cnn_one_step"]  # rtol 1e-5, atol 1e-6
    assert under_jax["cnn_worst"]["10"] <= 1e-4


def test_early_stopping_under_jax(under_jax):
    assert under_jax["early_stopping"]["stopped"] == [1, 1]
    assert under_jax["early_stopping"]["epochs"] == 10  # every replica ran its own fit out
    assert under_jax["early_stopping"]["gap"] <= 1e-7


def test_normalisation_convolution_and_no_bias_stacks_match_model_fit_under_jax(under_jax):
    assert under_jax["norm_worst"] <= 1e-4


def test_shuffles_are_the_same_on_both_backends(under_jax):
    import keras
    import numpy as np

    from nn_tuning.stacked import epoch_orders

    assert keras.backend.backend() == "tensorflow"  # this process's Keras
    scope = {"np": np}
    exec(textwrap.dedent(_SHUFFLE_REPLICAS), scope)
    assert epoch_orders(scope["shuffle_reps"], 3, 10).tolist() == under_jax["shuffles"]


# Makes TensorFlow unimportable in the subprocess, as where it is not installed.
_NO_TENSORFLOW = """
    import sys

    class _NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError(f"No module named {name!r}")

    sys.meta_path.insert(0, _NoTensorFlow())
"""


def test_tune_under_jax_stacked_fallback_and_refit_without_tensorflow():
    res = run_jax(textwrap.dedent(_NO_TENSORFLOW) + textwrap.dedent("""
        import json, sys
        import numpy as np
        from sklearn.datasets import load_diabetes
        from model_builders import mlp_regressor
        from nn_tuning import tune

        X, y = load_diabetes(return_X_y=True)
        X, y = X[:120].astype("float32"), ((y[:120] - y.mean()) / y.std()).astype("float32")
        # Adafactor's factored moments are not elementwise: that configuration trains on its own.
        space = {"neurons": [4, 8], "optimizer": ["adam", "adafactor"]}
        result = tune(mlp_regressor, space, X, y, strategy="grid", cv=2, epochs=3,
                      batch_size=32)
        engines = dict(zip(result.trials["optimizer"] + "-" + result.trials["neurons"].astype(str),
                           result.trials["engine"]))
        pred = result.best_estimator.predict(X[:5])
        print(json.dumps({"states": sorted(set(result.trials["state"])), "engines": engines,
                          "pred": np.asarray(pred).shape[0], "device": result.extra["device"],
                          "tensorflow": "tensorflow" in sys.modules}))
    """), timeout=600)
    assert res["tensorflow"] is False
    assert res["device"] == "cpu"  # from jax.devices() (JAX_PLATFORMS=cpu)
    assert res["states"] == ["complete"]
    assert res["engines"] == {"adam-4": "stacked", "adam-8": "stacked", "adafactor-4": "keras",
                              "adafactor-8": "keras"}
    assert res["pred"] == 5


def test_importing_the_engine_imports_neither_tensorflow_nor_scikeras():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, nn_tuning.stacked, nn_tuning.stacked.plan; "
         "print(sorted(m for m in ('tensorflow', 'scikeras', 'keras') if m in sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_under_jax_only_scikeras_imports_an_installed_tensorflow(under_jax):
    """nn_tuning itself never imports TensorFlow on JAX; scikeras 0.13 tries to, at import.

    ``scikeras/utils/random_state.py`` does ``try: import tensorflow`` (and falls
    back when it is missing, as the test above shows), so where TensorFlow is
    installed it is loaded as soon as nn_tuning's wrappers import scikeras.
    """
    assert under_jax["before_wrappers"] is False
    assert under_jax["labels"] == ["cpu", "cpu", "CPU:0"]
    assert under_jax["importers"] == ["scikeras/utils/random_state.py"]


_CACHED_STACK = """
    import json
    import jax
    import numpy as np
    from jax import monitoring
    from nn_tuning.stacked import Replica, compiled, train_stack
    from nn_tuning.stacked.structure import Hidden, Structure

    events = []
    monitoring.register_event_listener(lambda name, **kw: events.append(name))
    s = Structure(3, (Hidden(4, "relu", 0.0),), 1, "linear", "mean_squared_error", (),
                  "Adam", (), 1e-3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype("float32")
    Y = rng.normal(size=(40, 1)).astype("float32")
    w = [(rng.normal(size=(3, 4)).astype("float32"), np.zeros(4, "float32")),
         (rng.normal(size=(4, 1)).astype("float32"), np.zeros(1, "float32"))]
    result = train_stack([Replica(s, w, np.arange(40), seed=1)], X, Y, epochs=2, batch_size=8)
    print(json.dumps({"hits": events.count("/jax/compilation_cache/cache_hits"),
                      "folder": str(compiled.persistent_cache()),
                      "kernel": result.weights[0][0][0].tolist()}))
"""


def test_compiled_loops_are_kept_across_processes(tmp_path):
    """A second process loads the first one's compiled loop from the persistent cache."""
    env = {"NN_TUNING_JAX_CACHE": str(tmp_path / "jax")}
    first = run_jax(_CACHED_STACK, env=env)
    assert first["folder"] == str(tmp_path / "jax") and any((tmp_path / "jax").iterdir())
    second = run_jax(_CACHED_STACK, env=env)
    assert first["hits"] == 0 and second["hits"] >= 1
    assert second["kernel"] == first["kernel"]


def test_the_persistent_cache_can_be_turned_off(tmp_path):
    off = run_jax(_CACHED_STACK, env={"NN_TUNING_JAX_CACHE": "off",
                                      "XDG_CACHE_HOME": str(tmp_path)})
    assert off["folder"] == "None" and off["hits"] == 0
    assert not (tmp_path / "nn-tuning").exists()
