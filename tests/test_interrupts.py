"""A Ctrl-C swallowed inside the training code still stops the search, after a commit."""

from __future__ import annotations

import os
import signal

import pytest

from model_builders import mlp_regressor
from nn_tuning import tune
from nn_tuning.store import TrialStore


def _swallowing_builder(neurons: int = 4, meta=None):
    """Builds the model, after a SIGINT that the code it calls swallows (as TensorFlow's
    tracing does now and then) when it builds the 2nd configuration."""
    if neurons == 5:
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass
    return mlp_regressor(neurons=neurons, meta=meta)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler, as in a terminal (an earlier test in a full run may have
    left this process ignoring SIGINT); put back as it was afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_swallowed_ctrl_c_stops_the_search_at_the_next_trial(advertising, tmp_path,
                                                                default_sigint):
    X, y = advertising
    configs = [{"neurons": n} for n in (4, 5, 6, 7)]
    with pytest.raises(KeyboardInterrupt):
        tune(_swallowing_builder, None, X, y, strategy="manual", configs=configs, cv=2,
             epochs=1, batch_size=40, engine="keras", directory=tmp_path / "run", refit=False)
    # The trial whose build swallowed the signal finished and was committed; nothing after it.
    store = TrialStore(tmp_path / "run" / "trials.db", readonly=True)
    try:
        kept = sorted(t.params["neurons"] for t in store.trials())
    finally:
        store.close()
    assert kept == [4, 5]
    # Python's own handler is back, and nothing is left pending.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = tune(_swallowing_builder, None, X, y, strategy="manual", configs=[{"neurons": 4}],
                  cv=2, epochs=1, batch_size=40, engine="keras", refit=False)
    assert len(result.trials) == 1
