import keras
import numpy as np
import pytest
import scikeras.wrappers
from sklearn.base import is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, check_cv, cross_validate
from sklearn.utils.estimator_checks import estimator_checks_generator

from model_builders import mlp_classifier, mlp_regressor
from nn_tuning import KerasClassifier, KerasRegressor, TrialFailedError

# Checks that plain scikeras 0.13 fails too, by its design: dynamic ``model__*``
# parameters, mixin order, ``_more_tags``, no sparse support, stochastic training.
SCIKERAS_FAILURES = {
    "check_estimator_tags_renamed": "scikeras defines the old _more_tags beside our __sklearn_tags__",
    "check_no_attributes_set_in_init": "scikeras stores model__* routed parameters as attributes",
    "check_n_features_in_after_fitting": "scikeras' predict does not check n_features_in_",
    "check_mixin_order": "scikeras puts BaseWrapper before the sklearn mixins",
    "check_sample_weight_equivalence_on_dense_data": "stochastic training",
    "check_estimator_sparse_array": "scikeras converts sparse input without a clear error",
    "check_estimator_sparse_tag": "scikeras converts sparse input",
    "check_methods_sample_order_invariance": "float32 network outputs differ in the last bits",
    "check_regressor_multioutput": "scikeras xfails it (float32 outputs)",
    "check_requires_y_none": "scikeras' target encoder does not handle y=None",
    "check_fit2d_1sample": "scikeras' error message for one sample",
}


CLASSIFIER_FAILURES = {
    "check_supervised_y_2d": "scikeras' label encoder takes a column vector without a DataConversionWarning",
}


def _expected(estimator):
    if is_classifier(estimator):
        return {**SCIKERAS_FAILURES, **CLASSIFIER_FAILURES}
    return SCIKERAS_FAILURES


def _case_id(obj):
    """A test id without memory addresses, so every pytest-xdist worker collects the same tests.

    (scikit-learn's own ``parametrize_with_checks`` ids hold the estimator's
    repr, which shows the builder function's address.)
    """
    if hasattr(obj, "get_params"):
        return f"{type(obj).__name__}({obj.model.__name__})"
    func = getattr(obj, "func", obj)
    kw = getattr(obj, "keywords", None) or {}
    return func.__name__ + (f"({','.join(f'{k}={v}' for k, v in kw.items())})" if kw else "")


# scikit-learn's parametrize_with_checks, with ids that are the same in every process.
_CASES = [case for est in (
    KerasRegressor(mlp_regressor, model__neurons=8, epochs=2, verbose=0, random_state=0),
    KerasClassifier(mlp_classifier, model__neurons=8, epochs=2, verbose=0, random_state=0),
) for case in estimator_checks_generator(est, legacy=True, mark="xfail",
                                         expected_failed_checks=_expected(est))]


@pytest.mark.slow
@pytest.mark.parametrize("estimator, check", _CASES, ids=_case_id)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_scikit_learn_recognises_the_wrappers():
    clf = KerasClassifier(mlp_classifier)
    reg = KerasRegressor(mlp_regressor)
    assert is_classifier(clf) and not is_regressor(clf)
    assert is_regressor(reg) and not is_classifier(reg)
    y = np.arange(30) % 3
    assert isinstance(check_cv(5, y, classifier=is_classifier(clf)), StratifiedKFold)
    # the trap this fixes: plain scikeras is not seen as a classifier
    plain = scikeras.wrappers.KerasClassifier(mlp_classifier)
    assert not is_classifier(plain)
    assert type(check_cv(5, y, classifier=is_classifier(plain))) is KFold


def test_grid_search_cv_stratifies_classifier_folds(iris):
    X, y = iris
    order = np.argsort(y, kind="stable")  # sorted labels: unstratified folds miss whole classes
    X, y = X[order], y[order]
    search = GridSearchCV(
        KerasClassifier(mlp_classifier, epochs=15, batch_size=16, verbose=0, random_state=0,
                        model__learning_rate=0.05),
        {"model__neurons": [8]}, cv=3, scoring="accuracy",
    ).fit(X, y)
    # with KFold every test fold would hold a class never seen in training: accuracy 0
    assert search.cv_results_["mean_test_score"][0] > 0.6
    for k in range(3):
        assert search.cv_results_[f"split{k}_test_score"][0] > 0.4


def test_fast_and_plain_training_learn_alike(advertising):
    X, y = advertising
    kwargs = dict(model__neurons=16, model__learning_rate=0.05, epochs=30, batch_size=20,
                  verbose=0, random_state=0)
    fast = cross_validate(KerasRegressor(mlp_regressor, **kwargs), X, y, cv=3, scoring="r2")
    plain = cross_validate(KerasRegressor(mlp_regressor, fast=False, **kwargs), X, y, cv=3,
                           scoring="r2")
    assert fast["test_score"].mean() > 0.8
    assert abs(fast["test_score"].mean() - plain["test_score"].mean()) < 0.05


def test_same_seed_same_scores(advertising):
    X, y = advertising
    est = KerasRegressor(mlp_regressor, model__neurons=8, epochs=5, batch_size=20, verbose=0,
                         random_state=7)
    a = cross_validate(est, X, y, cv=3)["test_score"]
    b = cross_validate(est, X, y, cv=3)["test_score"]
    np.testing.assert_array_equal(a, b)


def test_each_fit_owns_its_model(advertising):
    X, y = advertising
    kwargs = dict(model__neurons=8, epochs=5, batch_size=20, verbose=0, random_state=0)
    first = KerasRegressor(mlp_regressor, **kwargs).fit(X[:100], y[:100])
    before = first.predict(X[:5])
    KerasRegressor(mlp_regressor, **kwargs).fit(X[100:], y[100:])  # reuses the traced engine
    np.testing.assert_array_equal(first.predict(X[:5]), before)


def test_diverging_training_raises_trial_failed(advertising):
    X, y = advertising
    est = KerasRegressor(mlp_regressor, model__optimizer="sgd", model__learning_rate=1e6,
                         model__neurons=32, epochs=5, batch_size=20, verbose=0, random_state=0)
    with pytest.raises(TrialFailedError, match="training diverged: the loss is (nan|inf)"):
        est.fit(X, y * 1e6)


def _uncompiled(meta):
    """scikeras' documented usage: the wrapper's loss/optimizer/metrics compile the model."""
    return keras.Sequential([
        keras.Input((meta["n_features_in_"],)),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(meta["n_classes_"], activation="softmax"),
    ])


@pytest.mark.parametrize("fast", [True, False])
def test_uncompiled_builder_is_compiled_from_the_wrappers_params(iris, fast):
    X, y = iris
    clf = KerasClassifier(_uncompiled, loss="sparse_categorical_crossentropy", optimizer="adam",
                          optimizer__learning_rate=0.05, metrics=["accuracy", "mae"],
                          epochs=4, batch_size=16, verbose=0, random_state=0, fast=fast)
    clf.fit(X, y)
    assert set(clf.history_) == {"loss", "accuracy", "mean_absolute_error"}
    assert all(len(v) == 4 for v in clf.history_.values())
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]
    assert clf.score(X, y) > 0.7


def test_fast_and_plain_histories_have_the_same_names_and_lengths(iris):
    X, y = iris
    kwargs = dict(model__neurons=8, epochs=3, batch_size=16, verbose=0, random_state=0)
    fast = KerasClassifier(mlp_classifier, **kwargs).fit(X, y).history_
    plain = KerasClassifier(mlp_classifier, fast=False, **kwargs).fit(X, y).history_
    assert {k: len(v) for k, v in fast.items()} == {k: len(v) for k, v in plain.items()}
    assert all(isinstance(v, float) for values in fast.values() for v in values)


def test_partial_fit_trains_one_epoch_per_call(advertising):
    X, y = advertising
    reg = KerasRegressor(mlp_regressor, model__neurons=8, batch_size=20, verbose=0, random_state=0)
    for epoch in (1, 2, 3):
        reg.partial_fit(X, y)
        assert reg.current_epoch == epoch == len(reg.history_["loss"])
    model = reg.model_
    reg.partial_fit(X, y)
    assert reg.model_ is model and reg.model_.optimizer.iterations.numpy() == 4 * 10


class _CountEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


def test_what_the_fast_path_cannot_honour_takes_model_fit(advertising):
    X, y = advertising
    kwargs = dict(model__neurons=8, epochs=3, batch_size=20, verbose=0, random_state=0)
    split = KerasRegressor(mlp_regressor, validation_split=0.2, **kwargs).fit(X, y)
    assert len(split.history_["val_loss"]) == 3
    counter = _CountEpochs()
    KerasRegressor(mlp_regressor, callbacks=[counter], **kwargs).fit(X, y)
    assert counter.epochs == 3
    prebuilt = mlp_regressor(neurons=4, meta={"n_features_in_": 3})
    reg = KerasRegressor(prebuilt, epochs=3, batch_size=20, verbose=0, random_state=0).fit(X, y)
    assert reg.model_ is prebuilt and len(reg.history_["loss"]) == 3


def test_the_engine_builder_sees_the_meta_the_models_builder_saw(advertising):
    X, y = advertising
    seen = []

    def build(meta):
        seen.append(sorted(meta))
        return mlp_regressor(neurons=4, meta=meta)

    KerasRegressor(build, epochs=1, verbose=0, random_state=0).fit(X, y)
    assert len(seen) == 2 and seen[0] == seen[1]  # the model, then its engine
    assert "model_" not in seen[1]


def test_the_stacking_seam_scores_given_outputs_as_predict_would(iris):
    from sklearn.metrics import check_scoring

    X, y = iris
    est = KerasClassifier(mlp_classifier, model__neurons=4, epochs=1, random_state=0, verbose=0)
    assert est.stacking_obstacle() is None
    model = est.initial_model(X, y)
    assert isinstance(model, keras.Model) and not est.initialized_  # the caller owns the model
    assert est.encode_target(y).shape == (len(y), 1)  # class indices, one column
    scorer = check_scoring(est, "accuracy")
    outputs = keras.ops.convert_to_numpy(model(X, training=False))
    expected = float(np.mean(np.argmax(outputs, axis=1) == y))
    assert est.score_outputs(scorer, outputs, X, y) == pytest.approx(expected)
    assert "_given_outputs" not in vars(est) and "_predict_raw" not in vars(est)
    assert KerasClassifier(mlp_classifier, validation_split=0.2).stacking_obstacle() is None


def test_stacking_obstacles_name_the_fit_setting():
    stop = keras.callbacks.EarlyStopping(monitor="loss")
    assert KerasClassifier(mlp_classifier, callbacks=[stop]).stacking_obstacle() is None
    assert KerasClassifier(mlp_classifier, callbacks=[keras.callbacks.TerminateOnNaN()]
                           ).stacking_obstacle() \
        == "fit setting callbacks=[TerminateOnNaN] is not stacked yet"
    assert KerasRegressor(mlp_regressor, shuffle="batch").stacking_obstacle() \
        == "fit setting shuffle='batch' is not stacked yet"
    # These stack: the engine weighs rows and keeps their order as model.fit does.
    assert KerasClassifier(mlp_classifier, class_weight="balanced",
                           shuffle=False).stacking_obstacle() is None
