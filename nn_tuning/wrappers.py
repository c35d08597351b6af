"""scikeras wrappers that scikit-learn >= 1.6 recognises, with the fast trial path.

scikeras 0.13 only defines the old ``_more_tags``. scikit-learn >= 1.6 reads
``__sklearn_tags__`` instead, so for plain scikeras ``is_classifier(...)`` is
False and ``GridSearchCV(cv=5)`` silently uses ``KFold`` instead of
``StratifiedKFold``. These subclasses declare their tags, seed model building
and shuffling from ``random_state``, and train through
:mod:`nn_tuning.fast_fit` (``fast=True``, the default): same epochs, batch
size and per-epoch shuffling as ``model.fit``, without its per-epoch overhead.

>>> from model_builders import mlp_regressor
>>> reg = KerasRegressor(mlp_regressor, model__neurons=8, epochs=5, random_state=0, verbose=0)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import keras
import numpy as np
from scikeras._utils import route_params
from scikeras.wrappers import KerasClassifier as _SKClassifier
from scikeras.wrappers import KerasRegressor as _SKRegressor
from sklearn.exceptions import NotFittedError
from sklearn.utils import ClassifierTags, RegressorTags

from . import fast_fit
from .exceptions import TrialFailedError

__all__ = ["KerasClassifier", "KerasRegressor"]

_META_KEYS = ("n_features_in_", "n_outputs_expected_", "n_classes_", "classes_", "target_type_")
# Rows per eager forward pass when predicting; results do not depend on it.
_PREDICT_CHUNK = 8192


class _FastWrapperMixin:
    """What both wrappers add to scikeras: seeding, the fast path, a divergence check."""

    def _build_keras_model(self) -> keras.Model:
        # Keras 3 draws initial weights from its own global seed generator, which
        # scikeras' seeding does not reset; this does.
        if isinstance(self._random_state, (int, np.integer)):
            keras.utils.set_random_seed(int(self._random_state))
        return super()._build_keras_model()

    def _engine_key(self) -> tuple:
        """Identifies one configuration, so its traced engine can be reused."""
        fn = self._check_model_param()
        build_params = route_params(
            self.get_params(), destination="model",
            pass_filter=getattr(self, "_user_params", set()), strict=True,
        )
        meta = {k: getattr(self, k, None) for k in _META_KEYS}
        return (
            getattr(fn, "__module__", None), getattr(fn, "__qualname__", None), id(fn),
            repr(sorted(build_params.items())), repr(sorted(meta.items())),
            repr((self.optimizer, self.loss, self.metrics)), self.__class__.__name__,
        )

    def _fast_path_ok(self, sample_weight: Any, kwargs: dict) -> bool:
        params = self.get_params()
        return (
            getattr(self, "fast", True)
            and sample_weight is None
            and not self._fit_callbacks
            and not kwargs
            and not params.get("validation_split")
            and params.get("class_weight") is None
            and not self.run_eagerly
        )

    def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs):
        if not self._fast_path_ok(sample_weight, kwargs):
            with fast_fit.forget_traced_gradients():  # else every model.fit leaks its graph
                super()._fit_keras_model(
                    X, y, sample_weight=sample_weight, warm_start=warm_start,
                    epochs=epochs, initial_epoch=initial_epoch, **kwargs,
                )
            self._check_diverged(epochs)
            return
        fit_args = route_params(self.get_params(), destination="fit", pass_filter=self._fit_kwargs)
        batch_size = fit_args.get("batch_size") or 32
        if batch_size == -1:
            batch_size = len(X)
        seed = int(self._random_state) if isinstance(self._random_state, (int, np.integer)) else None
        loss = fast_fit.fit_all_epochs(
            self.model_, X, y, epochs=epochs, batch_size=batch_size,
            shuffle=fit_args.get("shuffle", True), seed=seed,
            # Input shapes and dtypes are part of the traced function's signature.
            key=(self._engine_key(), np.shape(X)[1:], np.shape(y)[1:], str(np.asarray(X).dtype),
                 str(np.asarray(y).dtype)),
            build=super()._build_keras_model,
        )
        if not warm_start or not hasattr(self, "history_") or initial_epoch == 0:
            self.history_ = defaultdict(list)
        # One value per run: the mean training loss over all its epochs.
        self.history_["loss"].append(loss)
        self._check_diverged(epochs)

    def _check_diverged(self, epochs: int) -> None:
        losses = self.history_.get("loss") or []
        if losses and not math.isfinite(losses[-1]):
            raise TrialFailedError(
                f"training diverged: the loss is {losses[-1]} after {epochs} epochs"
            )

    def _predict_raw(self, X, **kwargs):
        if not self.initialized_:
            raise NotFittedError("Estimator needs to be fit before `predict` can be called")
        if not getattr(self, "fast", True) or kwargs or self._predict_callbacks:
            return super()._predict_raw(X, **kwargs)
        X, _ = self._validate_data(X=X, y=None)
        X = self.feature_encoder_.transform(X)
        # Eager forward passes: no predict function to trace for every fold's model.
        parts = [
            keras.ops.convert_to_numpy(self.model_(X[i:i + _PREDICT_CHUNK], training=False))
            for i in range(0, len(X), _PREDICT_CHUNK)
        ]
        return np.concatenate(parts) if parts else np.empty((0,))


class KerasRegressor(_FastWrapperMixin, _SKRegressor):
    """scikeras' ``KerasRegressor``, recognised as a regressor by scikit-learn >= 1.6.

    Parameters
    ----------
    model : callable
        A function returning a compiled ``keras.Model`` (``model__*`` arguments
        are routed to it, with scikeras' ``meta``).
    fast : bool, default=True
        Train through :mod:`nn_tuning.fast_fit`. ``history_["loss"]`` then
        holds one value per ``fit``: the mean loss over its epochs.
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
    model : callable
        A function returning a compiled ``keras.Model``.
    fast : bool, default=True
        Train through :mod:`nn_tuning.fast_fit`.
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
