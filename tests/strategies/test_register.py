"""A strategy from outside nn-tuning: one module, one public call, every entry point.

The toy strategy below is registered with :func:`nn_tuning.register_strategy`
and runs through ``tune()``, a TOML config, ``nn-tune run``, the report and
the conformance checks without any other file knowing its name: that is the
whole of "adding a strategy" (README, Architecture).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sklearn.model_selection import ParameterGrid

from nn_tuning import ConfigError, register_strategy
from nn_tuning.checks import check_int
from nn_tuning.cli import main
from nn_tuning.experiment import Experiment, Overrides
from nn_tuning.report import build_report, load_run
from nn_tuning.strategies import STRATEGIES, unregister_strategy
from nn_tuning.strategies.base import SearchContext, Strategy
from strategy_checks import on_advertising, on_iris


@dataclass(frozen=True)
class ToyOptions:
    """Options of the toy strategy.

    Parameters
    ----------
    stride : int, default=1
        Take every ``stride``-th grid point.
    """

    stride: int = 1

    def __post_init__(self) -> None:
        check_int("stride", self.stride)


class ToySearch(Strategy):
    """Every ``stride``-th point of the grid, from the last, ``max_trials`` of them."""

    name = "toy"
    Options = ToyOptions
    needs_max_trials = True

    def run(self, ctx: SearchContext) -> None:
        points = list(ParameterGrid(ctx.space.to_sklearn_grid()))[::-ctx.options.stride]
        batch = [{ctx.space.from_param_key(k): v for k, v in p.items()} for p in points]
        ctx.evaluate(batch[:ctx.max_trials])


@pytest.fixture(autouse=True)
def toy():
    register_strategy("toy", ToySearch)  # the one call
    yield
    unregister_strategy("toy")


TOML = """
name = "toy-study"
[data]
dataset = "advertising"
[builder]
name = "mlp_regressor"
[space]
neurons = [4, 8]
activation = ["relu", "linear"]
[training]
cv = 2
epochs = 2
batch_size = 40
[strategies.random]
max_trials = 2
[strategies.toy]
max_trials = 2
stride = 2
"""


def test_the_registry_knows_it_after_one_call():
    assert list(STRATEGIES)[-1] == "toy" and STRATEGIES["toy"] is ToySearch
    register_strategy("toy", ToySearch)  # again: nothing changes
    with pytest.raises(ConfigError, match="strategy 'toy' is already registered"):
        register_strategy("toy", "nn_tuning.strategies.manual:ManualSearch")
    with pytest.raises(ConfigError, match="the class ToySearch is named 'toy'; set name = 'toy2'"):
        register_strategy("toy2", ToySearch)
    with pytest.raises(ConfigError, match="strategy name must be lower case"):
        register_strategy("Toy Search", ToySearch)


def test_tune_runs_it_through_the_conformance_checks(advertising, iris):
    on_advertising("toy", *advertising)
    on_iris("toy", *iris)


def test_a_config_parses_its_table_with_its_options():
    exp = Experiment.from_text(TOML, source="toy.toml")
    assert exp.strategies["toy"].options == {"stride": 2}
    assert exp.with_overrides(Overrides(max_trials=1)).strategies["toy"].max_trials == 1
    with pytest.raises(ConfigError, match=r"toy\.toml: unknown key 'strategies\.toy\.step'; "
                                          r"allowed: max_trials, max_seconds, stride"):
        Experiment.from_text(TOML.replace("stride = 2", "step = 2"), source="toy.toml")
    with pytest.raises(ConfigError, match=r"toy\.toml: strategies\.toy\.stride must be an "
                                          r"integer >= 1, got 0"):
        Experiment.from_text(TOML.replace("stride = 2", "stride = 0"), source="toy.toml")
    with pytest.raises(ConfigError, match=r"strategies\.toy\.max_trials is required"):
        Experiment.from_text(TOML.replace("max_trials = 2\nstride", "stride"), source="toy.toml")


def test_nn_tune_run_and_the_report(tmp_path, capsys):
    config = tmp_path / "toy.toml"
    config.write_text(TOML)
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    assert "toy" in capsys.readouterr().out
    summary = json.loads((out / "toy" / "summary.json").read_text())
    assert summary["trials_run"] == 2 and summary["budget"]["planned_trials"] == 2
    assert list(load_run(out)) == ["random", "toy"]  # the registry's order
    assert "| toy" in build_report(out).read_text()
