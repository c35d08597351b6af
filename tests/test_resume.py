"""Kill a run anywhere, rerun it, lose nothing (issue 5)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ADVERTISING

ROOT = Path(__file__).resolve().parents[1]
# The run that is killed: its own process (this checkout's nn_tuning, whatever copy is
# installed), running the same search as the rerun and the uninterrupted run below.
SCRIPT = "import sys; from tests.test_resume import search; search(*sys.argv[1:])"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def search(strategy, run_dir, log, engine):
    """Six configurations, each build logged to ``log``: what was trained, and by whom."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    from model_builders import mlp_regressor
    from nn_tuning import Choice, SearchSpace, tune

    def logged_builder(neurons=4, learning_rate=0.01, meta=None):
        with open(log, "a") as f:
            f.write(f"{neurons},{learning_rate}\n")
        return mlp_regressor(neurons=neurons, learning_rate=learning_rate, meta=meta)

    df = pd.read_csv(ADVERTISING)
    X = StandardScaler().fit_transform(df[["TV", "Radio", "Newspaper"]].to_numpy())
    y = df["Sales"].to_numpy()
    space = SearchSpace(neurons=Choice([3, 4, 5, 6]), learning_rate=Choice([0.01, 0.05]))
    configs = [{"neurons": n, "learning_rate": lr} for n in (3, 4, 5) for lr in (0.01, 0.05)]
    return tune(logged_builder, space, X, y, strategy=strategy, cv=2, epochs=20,
                batch_size=40, max_trials=6, seed=0, directory=run_dir, refit=False,
                configs=configs, engine=engine)


def stored_trials(db):
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT params, budget FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("strategy, engine", [
    # Manual and grid hand over a fixed list of configurations as random does: random stands
    # for the three (each one a killed process and two runs, 12-17 s of the suite).
    *((s, "keras") for s in ("random", "bayesian", "hyperband")),
    # Bayesian search commits stack by stack (a proposal each). Grid, random and manual
    # hand these 6 configurations over as one stack, committed all at once at the end:
    # nothing to kill in between.
    ("bayesian", "stacked"),
])
def test_sigkill_then_rerun_resumes_without_retraining(strategy, engine, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "builds.log"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, strategy, str(run_dir), str(log),
                             engine], env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(stored_trials(run_dir / "trials.db")) < 2:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [(json.loads(p), b) for p, b in stored_trials(run_dir / "trials.db")]
    assert len(before) >= 2

    # The rerun and the uninterrupted run are tune() calls here: this process has imported
    # TensorFlow already (a process of their own each cost its start-up, about as much as
    # training). Only the files the killed run left behind pass between the two runs.
    log.write_text("")
    resumed = search(strategy, run_dir, log, engine)
    after = [(json.loads(p), b) for p, b in stored_trials(run_dir / "trials.db")]
    keys = [(json.dumps(p, sort_keys=True), b) for p, b in after]
    assert len(keys) == len(set(keys)), "a configuration was stored twice"
    assert after[: len(before)] == before
    assert resumed.resumed_trials >= len(before)
    # the stored configurations were not trained again (Hyperband trains a stored
    # configuration again at a higher budget: another trial, so the log cannot tell)
    built = {tuple(line.split(",")) for line in log.read_text().split()}
    for params, budget in before:
        if strategy != "hyperband":
            assert (str(params["neurons"]), str(params["learning_rate"])) not in built

    fresh = search(strategy, tmp_path / "fresh", tmp_path / "fresh.log", engine)
    assert len(fresh.trials) == len(resumed.trials)
    assert fresh.best_params == resumed.best_params
    assert fresh.best_score == pytest.approx(resumed.best_score, rel=1e-6)
