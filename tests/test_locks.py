"""One process per run folder: refused with the holder's pid and host; a killed holder's lock
is taken over; two real `nn-tune run` processes started together store nothing twice."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nn_tuning import StoreError
from nn_tuning.locks import RunLock, lock_path

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from nn_tuning.locks import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(600)")


def _env():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="2")


def test_a_folder_held_by_a_live_process_is_refused_and_taken_over_after_sigkill(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                              text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=rf"run folder '.*run' is in use by process "
                                             rf"{holder.pid} on {socket.gethostname()}; wait"):
            RunLock(folder).acquire()
        assert not folder.exists()  # refused before anything was written in it
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    with RunLock(folder) as lock:  # the dead holder's lock file is still there: taken over
        assert str(os.getpid()) in lock.path.read_text()
    assert not lock_path(folder).exists()


TINY = """
name = "locked"
[data]
dataset = "advertising"
features = ["TV", "Radio", "Newspaper"]
target = "Sales"
test_size = 0.2
[builder]
name = "mlp_regressor"
[builder.args]
n_layers = 1
[space]
neurons = [2, 3, 4, 5]
[training]
cv = 2
epochs = 40
batch_size = 40
engine = "keras"
[strategies.grid]
"""


def test_two_runs_started_together_one_is_refused_and_nothing_is_stored_twice(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("nn-tune")), "run", str(config), "--out", str(out),
           "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env()) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    refused = [err for code, _, err in results if code == 2]
    assert codes == [0, 2], results
    pids = {str(p.pid) for p in procs}
    line = refused[0].strip()
    assert len(line.splitlines()) == 1
    assert line.startswith(f"nn-tune: error: run folder '{out}' is in use by process ")
    assert line.split("process ")[1].split(" ")[0] in pids
    db = sqlite3.connect(out / "grid" / "trials.db")
    keys = [k for (k,) in db.execute("SELECT config_key FROM trials")]
    db.close()
    assert len(keys) == len(set(keys)) == 4
