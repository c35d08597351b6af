"""scikeras wrappers that scikit-learn >= 1.6 recognises, with the fast trial path.

scikeras 0.13 only defines the old ``_more_tags``. scikit-learn >= 1.6 reads
``__sklearn_tags__`` instead, so for plain scikeras ``is_classifier(...)`` is
False and ``GridSearchCV(cv=5)`` silently uses ``KFold`` instead of
``StratifiedKFold``. These subclasses declare their tags, seed model building
and shuffling from ``random_state``, and train through
:mod:`nn_tuning.fast_fit` (``fast=True``, the default): same epochs, batch
size and per-epoch shuffling as ``model.fit``, without its per-epoch overhead.

They are also the stacked engine's one seam to what it trains
(:mod:`nn_tuning.stacked.plan`): :meth:`~KerasRegressor.stacking_obstacle`
(why a stack cannot train a configuration as its fit would),
:meth:`~KerasRegressor.initial_model` (the compiled model a fit would start
from), :meth:`~KerasRegressor.encode_target` (the target as the model trains
on it) and :meth:`~KerasRegressor.score_outputs` (the scorer, given the
model's raw outputs instead of running it). scikeras stays behind these.

>>> from model_builders import mlp_regressor
>>> reg = KerasRegressor(mlp_regressor, model__neurons=8, epochs=5, random_state=0, verbose=0)
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections import defaultdict
from typing import Any

import keras
import numpy as np
from scikeras._utils import route_params
from scikeras.utils import metric_name
from scikeras.wrappers import KerasClassifier as _SKClassifier
from scikeras.wrappers import KerasRegressor as _SKRegressor
from sklearn.exceptions import NotFittedError
from sklearn.utils import ClassifierTags, RegressorTags

from . import fast_fit
from .exceptions import TrialFailedError
from .seeding import scoped_seed

__all__ = ["KerasClassifier", "KerasRegressor"]

_META_KEYS = ("n_features_in_", "n_outputs_expected_", "n_classes_", "classes_", "target_type_")
# Rows per eager forward pass when predicting; results do not depend on it.
_PREDICT_CHUNK = 8192


# Parameters that do not change a configuration's traced training step.
_NOT_IN_ENGINE_KEY = frozenset({
    "batch_size", "callbacks", "class_weight", "epochs", "fast", "initial_epoch", "random_state",
    "run_eagerly", "shuffle", "validation_batch_size", "validation_freq", "validation_split",
    "validation_steps", "verbose", "warm_start",
})
# fit parameters the fast path honours; any other one set means model.fit.
_FAST_FIT_ARGS = frozenset({"batch_size", "shuffle", "verbose", "validation_batch_size",
                            "validation_freq"})


def _is_plain_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "biuf" and a.ndim >= 1


def _overridden(model: keras.Model, name: str) -> bool:
    """Whether ``model.<name>`` is not Keras' own (patched on the instance, or overridden)."""
    return name in vars(model) or getattr(type(model), name) is not getattr(keras.Model, name)


class _FastWrapperMixin:
    """What both wrappers add to scikeras: scoped seeding, the fast path, a divergence check."""

    def _seed(self) -> int | None:
        state = getattr(self, "_random_state", None)
        return int(state) if isinstance(state, (int, np.integer)) else None

    def _build_keras_model(self) -> keras.Model:
        with scoped_seed(self._seed()):
            return self._build_in_scope()

    def _build_in_scope(self) -> keras.Model:
        """scikeras' build, seeded by the caller's :func:`scoped_seed` instead of scikeras' own.

        scoped_seed also seeds Keras' global seed generator, which scikeras'
        seeding leaves alone, and puts everything back. scikeras' scope would
        also reset TensorFlow's seed twice, and each reset clears TensorFlow's
        kernel cache, which costs every later eager op and the next traced
        run (about 60 ms of a 200 ms fit); Keras' initializers and layers draw
        from Python's ``random`` and stateless ops, which scoped_seed seeds.
        """
        state = getattr(self, "_random_state", None)
        self._random_state = None if self._seed() is not None else state
        try:
            return super()._build_keras_model()
        finally:
            self._random_state = state

    def _build_engine_model(self) -> keras.Model:
        """A new model of this configuration, compiled as ``model_`` was: the fast path's engine."""
        # The builder sees the meta parameters model_'s builder saw (model_ was not set yet).
        model = self.__dict__.pop("model_")
        try:
            engine = self._build_in_scope()  # inside the fit's scoped_seed
        finally:
            self.model_ = model
        if not engine.compiled:
            engine.compile(**self._get_compile_kwargs())
        return engine

    def _engine_key(self, X: np.ndarray, y: np.ndarray) -> tuple:
        """Identifies one configuration and input signature, so its traced engine can be reused."""
        fn = self._check_model_param()
        fn = getattr(fn, "__func__", fn)  # a bound _keras_build_fn: its function, not the method
        params = {k: v for k, v in self.get_params().items()
                  if k.split("__", 1)[-1] not in _NOT_IN_ENGINE_KEY}
        meta = {k: getattr(self, k, None) for k in _META_KEYS}
        # The function itself (not its id) is in the key: a cached key keeps it
        # alive, so a new builder can never be mistaken for a dead one.
        return (fn, type(self), repr(sorted(params.items())), repr(sorted(meta.items())),
                X.shape[1:], y.shape[1:], str(X.dtype), str(y.dtype))

    def _fast_path_ok(self, X: Any, y: Any, sample_weight: Any, kwargs: dict) -> bool:
        if not getattr(self, "fast", True) or kwargs:
            return False
        if keras.backend.backend() != "tensorflow":  # fast_fit runs TensorFlow's train_step
            return False
        if sample_weight is not None and not (
                _is_plain_array(sample_weight) and sample_weight.shape == (len(X),)):
            return False
        if self._fit_callbacks or self.run_eagerly:
            return False
        fit_args = route_params(self.get_params(), destination="fit", pass_filter=self._fit_kwargs)
        for name, value in fit_args.items():
            if name in _FAST_FIT_ARGS or name in ("epochs", "initial_epoch"):
                continue
            unset = value is None or (isinstance(value, (int, float)) and value == 0)
            if unset or name.startswith("callbacks"):
                continue
            return False  # validation_split, class_weight, validation_steps...
        if not isinstance(fit_args.get("shuffle", True), bool):
            return False
        model = self.model_
        loss = getattr(model, "loss", None)
        return (
            _is_plain_array(X) and _is_plain_array(y) and 0 < len(X) == len(y)
            and (isinstance(loss, str) or callable(loss))  # one output, one loss
            and getattr(model, "optimizer", None) is not None
            and not _overridden(model, "fit")
        )

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
        history = None
        with scoped_seed(self._seed()):
            if self._fast_path_ok(X, y, sample_weight, kwargs):
                history = self._fast_fit_keras_model(X, y, sample_weight, epochs)
            if history is None:
                with fast_fit.forget_traced_gradients():  # else every model.fit leaks its graph
                    super()._fit_keras_model(
                        X, y, sample_weight=sample_weight, warm_start=warm_start,
                        epochs=epochs, initial_epoch=initial_epoch, **kwargs,
                    )
        if history is not None:
            if not warm_start or not hasattr(self, "history_") or initial_epoch == 0:
                self.history_ = defaultdict(list)
            for key, values in history.items():
                if not (key == "loss" or key.startswith("val_")):
                    with contextlib.suppress(ValueError):  # a custom metric keeps its name
                        key = metric_name(key)
                self.history_[key] += values
        self._check_diverged(epochs)

    def _fast_fit_keras_model(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None,
                              epochs: int) -> dict | None:
        """Train on the fast path; the per-epoch history, or None if only model.fit can."""
        fit_args = route_params(self.get_params(), destination="fit", pass_filter=self._fit_kwargs)
        batch_size = fit_args.get("batch_size") or 32
        if batch_size == -1:
            batch_size = len(X)
        # model.fit trains on floats of Keras' floatx.
        floatx = keras.backend.floatx()
        X, y = (a.astype(floatx) if a.dtype.kind == "f" and a.dtype != floatx else a
                for a in (X, y))
        if sample_weight is not None:
            sample_weight = sample_weight.astype(floatx)
        try:
            return fast_fit.fit_all_epochs(
                self.model_, X, y, epochs=epochs, batch_size=int(batch_size),
                shuffle=fit_args.get("shuffle", True), seed=self._seed(),
                key=(self._engine_key(X, y), sample_weight is None), build=self._build_engine_model,
                sample_weight=sample_weight,
            )
        except fast_fit.NotFastError:
            return None

    def _check_diverged(self, epochs: int) -> None:
        losses = getattr(self, "history_", {}).get("loss") or []
        if losses and not math.isfinite(losses[-1]):
            raise TrialFailedError(
                f"training diverged: the loss is {losses[-1]} after {epochs} epochs"
            )

    # What the stacked engine asks of a wrapper (module docstring) --------------------
    def stacking_obstacle(self) -> str | None:
        """Why a stack cannot train this estimator's model as its fit would, or None.

        Before :meth:`initial_model` only the fit settings are known; after
        it, the feature encoding too (a stack feeds the features as given).
        Class weights, sample weights, ``shuffle=False``, ``validation_split``
        and Keras' EarlyStopping on ``loss`` or ``val_loss`` stack
        (:mod:`nn_tuning.stacked.stopping`); each other fit setting has its
        own reason.
        """
        from .stacked.stopping import obstacle

        params = self.get_params()
        if (reason := obstacle(params)) is not None:
            return reason
        if not isinstance(params.get("shuffle", True), bool):
            return f"fit setting shuffle={params['shuffle']!r} is not stacked yet"
        encoder = getattr(self, "feature_encoder_", None)
        if encoder is not None and getattr(encoder, "func", "custom") is not None:
            return "the estimator transforms its features"
        return None

    def initial_model(self, X: np.ndarray, y: np.ndarray) -> keras.Model:
        """The compiled model a fit on ``(X, y)`` would start from, built and seeded as fit does.

        The estimator keeps what scoring needs (its target encoding, its
        classes) but not the model: the caller owns it, and
        :meth:`score_outputs` stands in for predicting with it.
        """
        self.initialize(X, y)
        model = self.model_
        del self.model_
        return model

    def encode_target(self, y: np.ndarray) -> np.ndarray:
        """``y`` as the model trains on it (the fitted target encoding), one row per sample."""
        Y = np.asarray(self.target_encoder_.transform(y))
        return Y.reshape(len(Y), -1) if Y.ndim == 1 else Y

    def score_outputs(self, scorer: Any, outputs: np.ndarray, X: Any, y: Any) -> float:
        """``scorer(self, X, y)`` with ``outputs`` as the model's raw outputs for ``X``.

        Label decoding, ``predict_proba`` and the scorer are this estimator's
        own, exactly as when it predicts; only the forward pass is replaced.
        """
        self._given_outputs = outputs
        try:
            return float(scorer(self, X, y))
        finally:
            del self._given_outputs

    def _predict_raw(self, X, **kwargs):
        given = getattr(self, "_given_outputs", None)
        if given is not None:  # score_outputs: the outputs are known
            return given
        if not self.initialized_:
            raise NotFittedError("Estimator needs to be fit before `predict` can be called")
        if (not getattr(self, "fast", True) or kwargs or self._predict_callbacks
                or _overridden(self.model_, "predict") or self.run_eagerly):
            return super()._predict_raw(X, **kwargs)
        X_valid, _ = self._validate_data(X=X, y=None)
        X_valid = self.feature_encoder_.transform(X_valid)
        if not _is_plain_array(X_valid):
            return super()._predict_raw(X, **kwargs)
        # Eager forward passes: no predict function to trace for every fold's model.
        parts = []
        for i in range(0, len(X_valid), _PREDICT_CHUNK):
            out = self.model_(X_valid[i:i + _PREDICT_CHUNK], training=False)
            if not keras.ops.is_tensor(out):  # several outputs: model.predict's lists
                return super()._predict_raw(X, **kwargs)
            parts.append(keras.ops.convert_to_numpy(out))
        return np.concatenate(parts) if parts else super()._predict_raw(X, **kwargs)


class KerasRegressor(_FastWrapperMixin, _SKRegressor):
    """scikeras' ``KerasRegressor``, recognised as a regressor by scikit-learn >= 1.6.

    Parameters
    ----------
    model : callable or keras.Model
        A function returning a ``keras.Model`` (``model__*`` arguments are
        routed to it, with scikeras' ``meta``), compiled, or compiled here
        from ``loss``, ``optimizer`` and ``metrics``, as in scikeras.
    fast : bool, default=True
        Train through :mod:`nn_tuning.fast_fit` where it honours everything
        asked (else scikeras' own ``model.fit`` path trains that fit).
        ``history_`` holds what ``model.fit`` reports either way.
    **kwargs
        Every scikeras parameter (``epochs``, ``batch_size``, ``random_state``...).
    """

    def __init__(self, model: Any = None, *, fast: bool = True, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.fast = fast

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags(poor_score=True)
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        return tags


class KerasClassifier(_FastWrapperMixin, _SKClassifier):
    """scikeras' ``KerasClassifier``, recognised as a classifier by scikit-learn >= 1.6.

    ``is_classifier`` is True, so ``cross_validate`` and ``GridSearchCV`` with
    an integer ``cv`` use ``StratifiedKFold``.

    Parameters
    ----------
    model : callable or keras.Model
        As for :class:`KerasRegressor`.
    fast : bool, default=True
        Train through :mod:`nn_tuning.fast_fit` where it honours everything
        asked (else scikeras' own ``model.fit`` path trains that fit).
    **kwargs
        Every scikeras parameter.
    """

    def __init__(self, model: Any = None, *, fast: bool = True, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.fast = fast

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags(poor_score=True, multi_label=False)
        tags.regressor_tags = None
        tags.target_tags.required = True
        return tags


def _declare_signature(cls: type, base: type) -> None:
    """``inspect.signature(cls.__init__)``: scikeras' own parameters, and ``fast``.

    scikeras reads its ``__init__``'s defaults (the loss check that refuses a
    builder compiled with another loss than ``loss=``); ours takes them as
    ``**kwargs``, so it declares scikeras' signature as its own.
    """
    params = list(inspect.signature(base.__init__).parameters.values())
    fast = inspect.Parameter("fast", inspect.Parameter.KEYWORD_ONLY, default=True, annotation=bool)
    cls.__init__.__signature__ = inspect.Signature(params[:-1] + [fast, params[-1]])


_declare_signature(KerasRegressor, _SKRegressor)
_declare_signature(KerasClassifier, _SKClassifier)
