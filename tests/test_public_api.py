import types

import model_builders
import nn_tuning


def public_names(module):
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
            and name != "annotations"}


def test_all_equals_the_public_names():
    nn_tuning.tune, nn_tuning.KerasRegressor, nn_tuning.KerasClassifier  # the lazy names
    for module in (nn_tuning, model_builders):
        assert sorted(module.__all__) == sorted(public_names(module)), module.__name__


def test_tune_is_the_function_even_after_its_module_is_imported():
    import nn_tuning.runner  # noqa: F401  (imports the submodule nn_tuning.tune)
    from nn_tuning import tune

    assert callable(tune) and tune.__module__ == "nn_tuning.tune"


def test_every_strategy_is_registered():
    assert set(nn_tuning.STRATEGIES) == {"manual", "grid", "random", "bayesian", "hyperband",
                                        "asha"}
