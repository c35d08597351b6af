"""Epochs Hyperband trains from scratch against what continuing would train, same trials.

keras-tuner's Hyperband as nn-tuning runs it trains every promoted
configuration again from scratch for its larger budget (``tuner/epochs``).
This script runs one Hyperband search on ``advertising_wide.toml``'s space
(stacked engine) and counts, over the very trials it ran:

- from scratch: the sum of every trial's budget (what was trained);
- continued: for each configuration, only its largest budget (what training
  each configuration once, carrying its weights up the rungs, would train);

then runs ``strategy="asha"`` on the same space, folds and epochs with as many
configurations, and prints the epochs it trained (every configuration trains
once, up to the rung where it stopped) and each run's best CV score.

    python experiments/bench_hyperband_continuation.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    import logging

    import tensorflow  # noqa: F401  (imported before anything is timed or trained)

    from nn_tuning import tune
    from nn_tuning.experiment import Experiment
    from nn_tuning.runner import prepare_data

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    exp = Experiment.from_file(HERE / "advertising_wide.toml")
    data = prepare_data(exp)
    X, y = data.X_train, data.y_train
    kw = dict(cv=exp.training.cv, epochs=exp.training.epochs, batch_size=exp.training.batch_size,
              seed=0, refit=False, scoring=exp.training.scoring, fixed=exp.builder_args,
              engine="stacked")
    builder = exp.builder_section.function
    hb = tune(builder, exp.space, X, y, strategy="hyperband", options={"factor": 3}, **kw)
    budgets = hb.trials["budget"].astype(int).tolist()
    keys = [json.dumps(p, sort_keys=True) for p in hb.trial_params]
    scratch = sum(budgets)
    furthest: dict[str, int] = {}
    for key, b in zip(keys, budgets):
        furthest[key] = max(furthest.get(key, 0), b)
    continued = sum(furthest.values())
    print(f"hyperband (factor 3, {exp.training.epochs} epochs): {len(budgets)} trials of "
          f"{len(furthest)} configurations; configuration-epochs trained from scratch "
          f"{scratch}, continued {continued}: from scratch trains {scratch / continued:.2f}x; "
          f"best CV {hb.best_score:.4f}")
    asha = tune(builder, exp.space, X, y, strategy="asha", max_trials=len(furthest), **kw)
    a_epochs = int(asha.trials["budget"].sum())
    print(f"asha (eta 3, same epochs, {len(asha.trials)} configurations): configuration-epochs "
          f"{a_epochs}; best CV {asha.best_score:.4f}; reached {exp.training.epochs} epochs: "
          f"{int((asha.trials['budget'] == exp.training.epochs).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
