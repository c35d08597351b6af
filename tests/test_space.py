import json

import pytest
from scipy import stats

import keras_tuner as kt
from nn_tuning import Choice, Fixed, Float, Int, SearchSpace, SearchSpaceError


def seed_space():
    return SearchSpace(
        neurons=Choice([5, 10, 25]),
        learning_rate=Float(1e-4, 1e-1, log=True),
        n_layers=Int(1, 3),
        activation=Fixed("relu"),
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Int(3, 1), r"Int needs low <= high, got \(low=3, high=1\)"),
        (lambda: Int(1, 3, step=0), "Int step must be >= 1, got 0"),
        (lambda: Int(1.5, 3), "Int low must be an integer, got 1.5"),
        (lambda: Int(0, 3, log=True), "log=True needs low >= 1"),
        (lambda: Float(1.0, 0.1), r"Float needs low <= high, got \(low=1.0, high=0.1\)"),
        (lambda: Float(0.0, 1.0, log=True), "log=True needs low > 0, got low=0.0"),
        (lambda: Float(0, float("nan")), "Float high must be a finite number, got nan"),
        (lambda: Choice([]), r"Choice needs at least one value, got \[\]"),
        (lambda: Choice("relu"), "Choice needs a list of values, got 'relu'"),
        (lambda: Choice([1, 1]), "Choice values must be distinct"),
        (lambda: Choice([object()]), "Choice value must be a number"),
        (lambda: SearchSpace(), "the search space is empty"),
        (lambda: SearchSpace({"bad name": [1]}), "names must be identifiers, got 'bad name'"),
        (lambda: SearchSpace.from_dict({"x": {"type": "gaussian"}}), "unknown type 'gaussian'"),
        (lambda: SearchSpace.from_dict({"x": {"low": 1}}), "needs a 'type'"),
        (lambda: SearchSpace.from_dict({"x": {"type": "int", "low": 1}}), "search space entry 'x'"),
    ],
)
def test_invalid_entries_are_refused_at_construction(make, match):
    with pytest.raises(SearchSpaceError, match=match):
        make()


def test_errors_are_value_errors_too():
    with pytest.raises(ValueError):
        Int(2, 1)


def test_entries_are_immutable_and_compare_by_value():
    assert Choice([1, 2]) == Choice((1, 2))
    assert Float(0.1, 1.0, log=True) != Float(0.1, 1.0)
    with pytest.raises(AttributeError):
        Int(1, 2).low = 5


def test_json_round_trip_keeps_the_space():
    space = SearchSpace(seed_space(), hidden=Choice([(8, 8), (16,)]), dropout=Fixed(None))
    text = space.to_json()
    assert json.loads(text)["learning_rate"] == {
        "type": "float", "low": 1e-4, "high": 1e-1, "log": True, "step": None}
    again = SearchSpace.from_json(text)
    assert again == space
    assert again["hidden"].values == ((8, 8), (16,))


def test_plain_values_are_coerced():
    space = SearchSpace({"neurons": [5, 10], "activation": "relu"})
    assert space["neurons"] == Choice([5, 10])
    assert space["activation"] == Fixed("relu")


def test_sklearn_grid_translation_and_size():
    space = SearchSpace(neurons=Choice([5, 10]), n_layers=Int(1, 3), epochs=Choice([10, 20]))
    grid = space.to_sklearn_grid()
    assert grid == {"model__neurons": [5, 10], "model__n_layers": [1, 2, 3], "epochs": [10, 20]}
    assert space.grid_size == 12


def test_continuous_float_in_a_grid_says_to_give_grid_points():
    with pytest.raises(SearchSpaceError, match="'learning_rate' is a continuous Float.*give Float a step"):
        seed_space().to_sklearn_grid()
    assert seed_space().grid_size is None
    assert Float(0.0, 1.0, step=0.5).grid_values("x") == [0.0, 0.5, 1.0]


def test_scipy_distributions_translation():
    dists = seed_space().to_sklearn_distributions()
    assert dists["model__neurons"] == [5, 10, 25]
    lr = dists["model__learning_rate"]
    assert isinstance(lr.dist, type(stats.loguniform))
    draws = lr.rvs(size=2000, random_state=0)
    assert draws.min() >= 1e-4 and draws.max() <= 1e-1
    # log-uniform: about a third of the draws in each decade
    assert 0.25 < ((draws > 1e-3) & (draws < 1e-2)).mean() < 0.42
    n_layers = dists["model__n_layers"].rvs(size=300, random_state=0)
    assert set(n_layers) == {1, 2, 3}
    log_int = Int(1, 1000, log=True).distribution("x").rvs(size=500, random_state=0)
    assert log_int.min() >= 1 and log_int.max() <= 1000 and (log_int < 32).mean() > 0.4


def test_keras_tuner_translation_and_decoding():
    space = SearchSpace(seed_space(), hidden=Choice([(8, 8), (16,)]), flag=Choice([True, False]))
    hp = kt.HyperParameters()
    space.declare(hp)
    names = {p.name: p for p in hp.space}
    assert isinstance(names["neurons"], kt.engine.hyperparameters.Choice)
    assert names["learning_rate"].sampling == "log"
    assert (names["n_layers"].min_value, names["n_layers"].max_value) == (1, 3)
    assert isinstance(names["activation"], kt.engine.hyperparameters.Fixed)
    values = dict(hp.values, **{"tuner/epochs": 3})
    decoded = space.decode(values)
    assert "tuner/epochs" not in decoded
    assert decoded["hidden"] == (8, 8) and decoded["activation"] == "relu"
