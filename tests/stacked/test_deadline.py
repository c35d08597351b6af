"""``max_seconds`` is a promise for stacks: a stack in flight stops at its next segment of epochs.

Its configurations are stored as partial-budget trials (the epochs they
reached), and a rerun of the folder without the deadline trains them in full.
"""

from __future__ import annotations

from model_builders import mlp_regressor
from nn_tuning import Choice, Float, SearchSpace, tune
from nn_tuning.stacked.engine import segment_epochs

SPACE = SearchSpace(neurons=Choice([4, 8, 16]), activation=Choice(["relu", "tanh"]),
                    learning_rate=Float(1e-3, 5e-2, log=True))


def test_segments_divide_the_epochs():
    assert segment_epochs(80) == 10 and segment_epochs(60) == 6 and segment_epochs(7) == 1


def test_a_stack_past_the_deadline_stops_at_a_segment_and_its_trials_are_kept(advertising,
                                                                              tmp_path):
    X, y = advertising
    kw = dict(strategy="random", max_trials=40, cv=3, epochs=600, batch_size=40, seed=0,
              engine="stacked", refit=False, directory=tmp_path / "run")
    cut = tune(mlp_regressor, SPACE, X, y, max_seconds=0.5, **kw)
    trials = cut.trials
    # Building stopped at the deadline and the stack of what was built stopped part-way:
    # its configurations are stored, at the same number of epochs, a whole number of
    # segments short of 600.
    n = len(trials)
    assert 1 <= n <= 40 and trials["budget"].nunique() == 1
    reached = int(trials["budget"].iloc[0])
    assert 0 < reached < 600 and reached % segment_epochs(600) == 0
    assert (trials["state"] == "complete").all()
    # Rerun without the deadline: the configurations train in full (budget: the run's epochs).
    whole = tune(mlp_regressor, SPACE, X, y, **kw)
    assert len(whole.trials) == 40 + n
    assert whole.trials["budget"].isna().sum() == 40
    assert whole.best_params in [p for p, b in zip(whole.trial_params, whole.trials["budget"])
                                 if b != b]  # the best trained every epoch (NaN budget)
