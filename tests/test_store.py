"""The trial store: sizes, sessions and wall-clock time, read-only reading, old stores."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time

import pytest

from nn_tuning import StoreError, Trial, TrialState
from nn_tuning.store import TrialStore, active_seconds

# The schema before trainable-parameter counts and sessions were recorded.
_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    number INTEGER PRIMARY KEY, config_key TEXT NOT NULL, params TEXT NOT NULL,
    state TEXT NOT NULL, fold_scores TEXT NOT NULL, fit_seconds REAL NOT NULL, reason TEXT,
    worker TEXT NOT NULL, device TEXT NOT NULL, finished_at REAL NOT NULL);
"""


def _old_store(path):
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('fingerprint', 'fp')")
    db.execute("INSERT INTO trials (config_key, params, state, fold_scores, fit_seconds, reason,"
               " worker, device, finished_at) VALUES (?, ?, 'complete', '[0.5, 0.7]', 1.0, NULL,"
               " 'main', 'cpu', 1000.0)", (json.dumps({"neurons": 4}), json.dumps({"neurons": 4})))
    db.commit()
    db.close()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trainable_parameter_count_round_trips(tmp_path):
    store = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    store.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.5, 0.6], 1.0, n_params=21))
    store.add(Trial({"neurons": 8}, TrialState.FAILED, reason="boom"))
    store.close()
    trials = TrialStore(tmp_path / "trials.db", readonly=True).trials()
    assert [t.n_params for t in trials] == [21, None]


def test_each_opening_is_a_session_and_close_ends_it(tmp_path):
    path = tmp_path / "trials.db"
    for _ in range(2):
        store = TrialStore(path, fingerprint="fp")
        store.add(Trial({"n": len(store)}, TrialState.COMPLETE, [1.0], 0.1))
        store.close()
    killed = TrialStore(path, fingerprint="fp")  # a run killed: never closed
    killed.add(Trial({"n": 9}, TrialState.COMPLETE, [1.0], 0.1))
    reader = TrialStore(path, readonly=True)
    sessions = reader.sessions()
    assert len(sessions) == 3
    assert all(end is not None and end >= start for start, end in sessions[:2])
    assert sessions[2][1] is None
    elapsed = reader.elapsed_seconds()
    assert len(elapsed) == 3 and elapsed == sorted(elapsed)
    killed.close()


def test_time_stopped_between_sessions_is_not_counted():
    # Run 1 from t=100 to 110 (trials at 104 and 109), stopped for 1000 s,
    # resumed at 1110, killed after its trial at 1113 (no end recorded).
    sessions = [(100.0, 110.0), (1110.0, None)]
    assert active_seconds(sessions, [104.0, 109.0, 1113.0]) == [4.0, 9.0, 13.0]
    # keras-tuner workers open the store beside their chief: overlaps count once.
    overlapping = [(100.0, 120.0), (102.0, 119.0), (103.0, 121.0)]
    assert active_seconds(overlapping, [110.0, 121.0]) == [10.0, 21.0]
    assert active_seconds([], [1.0]) is None
    # Trials from before sessions were recorded (an upgraded old store): unknown.
    assert active_seconds([(500.0, None)], [100.0, 600.0]) is None


def test_sessions_measure_real_time(tmp_path):
    path = tmp_path / "trials.db"
    store = TrialStore(path, fingerprint="fp")
    time.sleep(0.2)
    store.add(Trial({"n": 1}, TrialState.COMPLETE, [1.0], 0.1))
    store.close()
    time.sleep(1.5)  # stopped: not counted
    store = TrialStore(path, fingerprint="fp")
    time.sleep(0.2)
    store.add(Trial({"n": 2}, TrialState.COMPLETE, [1.0], 0.1))
    store.close()
    first, second = TrialStore(path, readonly=True).elapsed_seconds()
    assert 0.2 <= first < 0.8
    assert 0.4 <= second < 1.5  # >= 1.9 if the 1.5 s stop were counted


def test_old_store_reads_with_unknown_sizes_and_readonly_leaves_it_alone(tmp_path):
    path = tmp_path / "trials.db"
    _old_store(path)
    before = _digest(path)
    reader = TrialStore(path, readonly=True)
    (trial,) = reader.trials()
    assert trial.params == {"neurons": 4} and trial.n_params is None
    assert reader.sessions() == [] and reader.elapsed_seconds() is None
    reader.close()
    assert _digest(path) == before
    # Resumed by this version: upgraded in place, new trials keep their size.
    store = TrialStore(path, fingerprint="fp")
    store.add(Trial({"neurons": 8}, TrialState.COMPLETE, [0.4, 0.5], 1.0, n_params=41))
    assert [t.n_params for t in store.trials()] == [None, 41]
    assert store.elapsed_seconds() is None  # the old trial's time is unknown
    store.close()


def test_readonly_needs_an_existing_store(tmp_path):
    with pytest.raises(StoreError, match="no trial store at"):
        TrialStore(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_trials_csv_grows_by_appending_in_linear_time(tmp_path):
    """5,000 trials through the commit path (store + trials.csv): the last 500 cost what the
    first 500 did (rewriting the whole table after each trial made it quadratic)."""
    import statistics

    from nn_tuning.strategies.base import SearchContext
    from nn_tuning.watcher import TrialWatcher

    store = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    ctx = SearchContext(protocol=None, X=None, y=None, space=None, store=store, evaluator=None)
    ctx.on_trial = TrialWatcher(store, tmp_path, None, "grid", progress=False)
    times = []
    for i in range(5000):
        trial = Trial({"neurons": i, "act": "relu"}, TrialState.COMPLETE, [0.5, 0.6], 0.1,
                      n_params=i)
        t0 = time.perf_counter()
        ctx.record(trial)
        times.append(time.perf_counter() - t0)
    store.close()
    # Medians of blocks of 100 (robust to a busy machine's spikes), then the median block.
    def typical(window):
        return statistics.median(statistics.median(window[i:i + 100])
                                 for i in range(0, len(window), 100))
    first, last = typical(times[:500]), typical(times[-500:])
    assert last < 2 * first, f"first 500: {first * 1e3:.3f} ms/trial, last 500: {last * 1e3:.3f}"
    import pandas as pd

    table = pd.read_csv(tmp_path / "trials.csv")
    assert list(table["trial"]) == list(range(5000))
    assert list(table["neurons"]) == list(range(5000))


def test_trials_csv_rewrites_when_a_trial_brings_new_columns(tmp_path):
    from nn_tuning.watcher import TrialWatcher

    store = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    store.add(Trial({"neurons": 1}, TrialState.FAILED, reason="boom"))  # resumed: no fold columns
    watcher = TrialWatcher(store, tmp_path, None, "grid", progress=False)
    for t in (Trial({"neurons": 2}, TrialState.COMPLETE, [0.5, 0.6], 0.1),
              Trial({"neurons": 3}, TrialState.FAILED, reason="boom")):
        watcher(store.add(t))
    store.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.1, 0.2], 0.1))  # another process
    watcher(store.add(Trial({"neurons": 5}, TrialState.COMPLETE, [0.3, 0.4], 0.1)))
    store.close()
    import pandas as pd

    table = pd.read_csv(tmp_path / "trials.csv")
    assert list(table["neurons"]) == [1, 2, 3, 4, 5]
    assert list(table["fold1_score"].fillna(-1)) == [-1, 0.6, -1, 0.2, 0.4]


def test_a_configuration_is_stored_once_and_the_second_commit_gets_the_stored_trial(tmp_path):
    first = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    second = TrialStore(tmp_path / "trials.db", fingerprint="fp")  # another process's connection
    kept = first.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.5, 0.6], 1.0, worker="a"))
    again = second.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.1, 0.2], 1.0, worker="b"))
    assert (again.number, again.fold_scores, again.worker) == (kept.number, [0.5, 0.6], "a")
    second.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.1], 1.0, budget=3))  # another budget
    assert len(first) == 2
    with pytest.raises(sqlite3.IntegrityError):  # the key itself refuses a second row
        first._db.execute("INSERT INTO trials (config_key, params, state, fold_scores, "
                          "fit_seconds, worker, device, finished_at) SELECT config_key, params, "
                          "state, fold_scores, fit_seconds, worker, device, finished_at "
                          "FROM trials WHERE number = 1")
    first.close()
    second.close()


def test_an_old_store_holding_a_configuration_twice_still_loads(tmp_path):
    path = tmp_path / "trials.db"
    _old_store(path)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO trials (config_key, params, state, fold_scores, fit_seconds, reason,"
               " worker, device, finished_at) SELECT config_key, params, state, fold_scores,"
               " fit_seconds, reason, 'other', device, 1001.0 FROM trials")
    db.commit()
    db.close()
    store = TrialStore(path, fingerprint="fp")
    assert [t.worker for t in store.trials()] == ["main", "other"]
    assert store.add(Trial({"neurons": 4}, TrialState.COMPLETE, [0.0], 1.0)).worker == "main"
    assert len(store) == 2
    store.close()


def test_a_stacks_trials_are_committed_together_numbered_in_order(tmp_path):
    path = tmp_path / "trials.db"
    other = TrialStore(path, fingerprint="fp")  # another process's connection
    other.add(Trial({"neurons": 2}, TrialState.COMPLETE, [0.1, 0.2], 1.0, worker="other"))
    store = TrialStore(path, fingerprint="fp")
    chunk = [Trial({"neurons": n}, TrialState.COMPLETE, [0.5, 0.6], 0.1, worker="pid-7",
                   engine="stacked") for n in (1, 2, 3, 1)]
    out = store.add_many(chunk)
    # Stored before by the other connection: that trial is kept; a repeat in the call: once.
    assert [t.worker for t in out] == ["pid-7", "other", "pid-7", "pid-7"]
    assert [t.number for t in out] == [1, 0, 2, 1]
    assert [(t.params["neurons"], t.number) for t in TrialStore(path, readonly=True).trials()] \
        == [(2, 0), (1, 1), (3, 2)]
    store.close()
    other.close()


def test_a_chunk_that_cannot_be_written_leaves_the_store_as_it_was(tmp_path):
    store = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    good = Trial({"neurons": 1}, TrialState.COMPLETE, [0.5], 0.1)
    bad = Trial({"neurons": 2}, TrialState.COMPLETE, [0.5], object())  # not a number
    with pytest.raises(sqlite3.Error):
        store.add_many([good, bad])
    assert len(store) == 0
    assert store.add_many([]) == []
    store.close()


def test_trials_csv_gets_a_commits_trials_in_one_write(tmp_path):
    from nn_tuning.strategies.base import SearchContext
    from nn_tuning.watcher import TrialWatcher

    store = TrialStore(tmp_path / "trials.db", fingerprint="fp")
    ctx = SearchContext(protocol=None, X=None, y=None, space=None, store=store, evaluator=None)
    ctx.on_trial = TrialWatcher(store, tmp_path, None, "grid", progress=False)
    ctx.record(Trial({"neurons": 0}, TrialState.COMPLETE, [0.5, 0.6], 0.1))
    store.add(Trial({"neurons": 9}, TrialState.COMPLETE, [0.1, 0.2], 0.1))  # another process
    ctx.record_many([Trial({"neurons": n}, TrialState.COMPLETE, [0.5, 0.6], 0.1)
                     for n in (1, 2, 3)])
    store.close()
    import pandas as pd

    table = pd.read_csv(tmp_path / "trials.csv")
    assert list(table["neurons"]) == [0, 9, 1, 2, 3]
    assert list(table["trial"]) == [0, 1, 2, 3, 4]
