"""nn-tune's scale-out and robustness options: workers, chief/worker, stability, budgets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pandas as pd
import pytest

from nn_tuning import cli
from nn_tuning.distributed import free_port

from tests.test_cli import TINY, _write

BAYES = TINY.replace('neurons = [4]', 'neurons = [4, 8, 16]').replace(
    "[strategies.bayesian]\nmax_trials = 2", "[strategies.bayesian]\nmax_trials = 4")


@pytest.mark.parametrize("engine", ["auto", "keras"])
def test_stability_reports_mean_and_spread_of_the_top_configs(tmp_path, engine):
    config = _write(tmp_path / "tiny.toml", TINY)
    out = tmp_path / "run"
    assert cli.main(["run", str(config), "--strategy", "grid", "--out", str(out), "--quiet",
                     "--stability", "2", "--engine", engine]) == 0
    table = pd.read_csv(out / "grid" / "stability.csv")
    assert len(table) == 2
    # Re-scored on the engine the search trained with (auto stacks these MLPs).
    searched = set(pd.read_csv(out / "grid" / "trials.csv")["engine"])
    assert searched == {"stacked" if engine == "auto" else "keras"}
    assert set(table["engine"]) == searched
    assert {"seed_mean", "seed_std", "seed_scores", "stable"} <= set(table.columns)
    summary = json.loads((out / "grid" / "summary.json").read_text())
    assert summary["stability"]["top_k"] == 2
    assert summary["stability"]["winner_stable"] is bool(table["stable"][0])
    assert summary["stability"]["winner_seed_mean"] == pytest.approx(table["seed_mean"][0])


@pytest.mark.parametrize("engine", ["keras", "stacked"])
def test_max_seconds_stops_starting_new_trials(tmp_path, engine):
    # The first trial always runs and outlasts 1 ms: exactly one trial. Stacked, building
    # stops at the deadline too, and the stack of what was built stops after its first
    # segment of epochs (1 of 2): the trial is kept with the epochs it reached.
    text = TINY.replace("[strategies.random]\nmax_trials = 2",
                        "[strategies.random]\nmax_trials = 2\nmax_seconds = 0.001")
    config = _write(tmp_path / "tiny.toml", text)
    out = tmp_path / "run"
    assert cli.main(["run", str(config), "--strategy", "random", "--out", str(out),
                     "--engine", engine, "--quiet"]) == 0
    trials = pd.read_csv(out / "random" / "trials.csv")
    assert len(trials) == 1
    assert set(trials["engine"]) == {engine}
    if engine == "stacked":
        assert list(trials["budget"]) == [1]


@pytest.mark.slow
def test_chief_and_an_external_worker_through_the_cli(tmp_path):
    config = _write(tmp_path / "bayes.toml", BAYES)
    out = tmp_path / "run"
    address = f"127.0.0.1:{free_port()}"
    # The chief's overrides are part of the run: the worker is started with the same ones
    # (before `worker` took them, it belonged to another run and was refused).
    overrides = ["--epochs", "3", "--seed", "5", "--cv", "2", "--max-trials", "3",
                 "--engine", "keras"]
    chief = subprocess.Popen(
        [sys.executable, "-m", "nn_tuning.cli", "run", str(config), "--strategy", "bayesian",
         "--out", str(out), "--chief", address, "--quiet", *overrides],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "bayesian" / "trials.db").exists():
        assert chief.poll() is None, chief.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    worker = subprocess.run(
        [sys.executable, "-m", "nn_tuning.cli", "worker", str(config), "--chief", address,
         "--strategy", "bayesian", "--out", str(out), "--quiet", *overrides],
        capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-2000:]
    stdout, stderr = chief.communicate(timeout=120)
    assert chief.returncode == 0, stderr[-2000:]
    trials = pd.read_csv(out / "bayesian" / "trials.csv")
    # keras-tuner may propose a configuration twice (the store scores it once) and
    # stops early when it finds no new one in this 6-point space
    assert 1 <= len(trials) <= 3 and set(trials["state"]) == {"complete"}
    assert all(w != "main" for w in trials["worker"])
    assert set(trials["engine"]) == {"keras"}
    assert (out / "bayesian" / "best_model.keras").exists()
    assert (out / "report.md").exists()


def test_worker_takes_every_override_run_takes():
    def options(command):
        sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
        return {o for a in sub.choices[command]._actions for o in a.option_strings}

    overrides = {"--max-trials", "--epochs", "--seed", "--cv", "--device", "--engine"}
    assert overrides <= options("run") & options("worker")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--workers", "0"], "expected an integer >= 1, got '0'"),
        (["--gpus", "a,b"], "expected GPU indices such as 0,1, got 'a,b'"),
        (["--chief", "nowhere", "--strategy", "bayesian"], "--chief must be HOST:PORT"),
        (["--dask-scheduler", "nowhere", "--strategy", "grid"],
         "--dask-scheduler must be 'local' or an address"),
        (["--engine", "fused", "--strategy", "grid"], "invalid choice: 'fused'"),
        (["--stability", "-1"], "expected an integer >= 1, got '-1'"),
    ],
)
def test_bad_scale_options_exit_2(tmp_path, capsys, args, match):
    config = _write(tmp_path / "tiny.toml", TINY)
    code = cli.main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(match, err), err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_worker_needs_a_keras_tuner_strategy(tmp_path, capsys):
    config = _write(tmp_path / "tiny.toml", TINY)
    code = cli.main(["worker", str(config), "--chief", "127.0.0.1:1", "--strategy", "grid",
                     "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "nn-tune worker runs keras-tuner strategies" in capsys.readouterr().err


def test_a_compare_says_where_it_trains_once_per_strategy_and_nothing_inside_the_bar(
        tmp_path, capfd):
    # Bayesian search on a 2-point space proposes scored configurations again.
    config = _write(tmp_path / "tiny.toml", TINY.replace(
        "[strategies.bayesian]\nmax_trials = 2", "[strategies.bayesian]\nmax_trials = 4"))
    out = tmp_path / "run"
    assert cli.main(["compare", str(config), "--strategies", "manual,bayesian", "--out",
                     str(out)]) == 0
    err = capfd.readouterr().err
    device_lines = [line for line in err.splitlines() if "training on" in line]
    assert [line.split(":")[1].strip() for line in device_lines] == ["manual", "bayesian"], err
    assert "was proposed again" not in err and "is already stored" not in err
    repeats = [line for line in err.splitlines() if "proposed already scored" in line]
    assert len(repeats) <= 1  # a count in the strategy's end line, once
