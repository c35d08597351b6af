"""ASHA in the stack against the peers a user would pick, each given the same seconds.

Three sides, each in its own fresh process per (data set, split), imports and
data before the clock, the same builder (``mlp_regressor``/``mlp_classifier``),
space, CV folds (KFold/StratifiedKFold, 3 folds, shuffled with the split's
seed), epochs and batch size; each refits its best configuration on all the
training rows and is scored once on the held-out 20%:

- ``asha``: ``tune(strategy="asha", max_seconds=S)`` (engine auto: stacked).
- ``optuna``: Optuna's TPE sampler with a ``MedianPruner`` driving plain Keras
  ``model.fit``, one configuration at a time (the usual Optuna recipe): each
  trial trains its folds one after the other; the first fold reports its
  validation score after every epoch (a Keras callback) and the pruner may
  stop it; the trial's value is the mean CV score.
  ``study.optimize(timeout=S)``, and a trial in flight at the deadline stops
  at its next epoch.
- ``kt-hyperband``: keras-tuner's own ``Hyperband`` (its protocol: one
  validation split, the first fold's; ``val_loss``), no new trial after S
  seconds and a trial in flight stopped at its next epoch.

Prints one line per run and a table of median test scores (RMSE for
regression, lower is better; accuracy for classification) and median trials.

    python experiments/bench_peers.py --seconds 30 --datasets advertising_wide,diabetes \\
        --splits 1

This is a benchmark, not a test: it trains for minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import run_fresh  # noqa: E402

HERE = Path(__file__).resolve().parent
EPOCHS, BATCH, FOLDS = 40, 32, 3
DATASETS = ("advertising_wide", "diabetes", "wine", "breast_cancer", "digits")


def _data(name: str, split: int):
    """(X_train, y_train, X_test, y_test, task): X scaled on the training rows."""
    import numpy as np
    import pandas as pd
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "advertising_wide":
        df = pd.read_csv(HERE.parent / "nn_tuning" / "data" / "advertising.csv")
        X, y, task = df[["TV", "Radio", "Newspaper"]].to_numpy(), df["Sales"].to_numpy(), "reg"
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        task = "reg"
    else:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        task = "clf"
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=split,
                                          stratify=y if task == "clf" else None)
    sx = StandardScaler().fit(Xtr)
    Xtr, Xte = sx.transform(Xtr).astype("float32"), sx.transform(Xte).astype("float32")
    if task == "reg":  # a standardised target, as advertising_wide.toml scales it
        mu, sd = ytr.mean(), ytr.std()
        ytr, yte = ((ytr - mu) / sd).astype("float32"), ((yte - mu) / sd).astype("float32")
    return Xtr, ytr, Xte, yte, task, np.unique(y).size


def _space():
    from nn_tuning import Choice, Float, Int, SearchSpace

    return SearchSpace(neurons=Choice([8, 16, 32, 64]), n_layers=Int(1, 3),
                       activation=Choice(["relu", "tanh"]),
                       learning_rate=Float(1e-4, 3e-2, log=True), dropout=Float(0.0, 0.3))


def _splitter(task, split):
    from sklearn.model_selection import KFold, StratifiedKFold

    cls = StratifiedKFold if task == "clf" else KFold
    return cls(FOLDS, shuffle=True, random_state=split)


def _folds(X, y, task, split):
    return list(_splitter(task, split).split(X, y))


def _model(params, X, task, n_classes):
    from model_builders import mlp_classifier, mlp_regressor

    if task == "reg":
        return mlp_regressor(input_dim=X.shape[1], **params)
    return mlp_classifier(input_dim=X.shape[1], n_classes=n_classes, **params)


def _score(model, X, y, task) -> float:
    """Greater is better: minus RMSE, or accuracy."""
    import numpy as np

    pred = model.predict(X, verbose=0, batch_size=1024)
    if task == "reg":
        return -float(np.sqrt(np.mean((pred.ravel() - y) ** 2)))
    return float(np.mean(pred.argmax(axis=1) == y))


def _refit_test(params, Xtr, ytr, Xte, yte, task, n_classes) -> float:
    import keras

    keras.utils.set_random_seed(0)
    model = _model(params, Xtr, task, n_classes)
    model.fit(Xtr, ytr, epochs=EPOCHS, batch_size=BATCH, verbose=0)
    return -_score(model, Xte, yte, task) if task == "reg" else _score(model, Xte, yte, task)


def child(side: str, dataset: str, split: int, seconds: float) -> dict:
    """One side on one split, in this fresh process."""
    import logging

    import keras
    import numpy as np
    import optuna
    import tensorflow  # noqa: F401  (before the clock, as on every side)

    import nn_tuning.tune  # noqa: F401

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Xtr, ytr, Xte, yte, task, n_classes = _data(dataset, split)
    space, folds = _space(), _folds(Xtr, ytr, task, split)
    start = time.perf_counter()
    deadline = start + seconds
    if side == "asha":
        from model_builders import mlp_classifier, mlp_regressor
        from nn_tuning import tune

        result = tune(mlp_regressor if task == "reg" else mlp_classifier, space, Xtr, ytr,
                      strategy="asha", max_seconds=seconds, cv=_splitter(task, split),
                      epochs=EPOCHS,
                      batch_size=BATCH, seed=split, refit=False,
                      scoring="neg_root_mean_squared_error" if task == "reg" else "accuracy")
        best, trials = result.best_params, len(result.trials)
    elif side == "optuna":
        from nn_tuning.optuna_space import distributions, from_optuna

        dists = distributions(space)

        class Report(keras.callbacks.Callback):
            def __init__(self, trial, Xv, yv):
                super().__init__()
                self.trial, self.Xv, self.yv = trial, Xv, yv

            def on_epoch_end(self, epoch, logs=None):
                self.trial.report(_score(self.model, self.Xv, self.yv, task), epoch)
                if self.trial.should_prune():
                    raise optuna.TrialPruned()
                if time.perf_counter() > deadline:
                    self.model.stop_training = True

        def objective(trial):
            params = from_optuna(space, {n: trial._suggest(n, d) for n, d in dists.items()})
            scores = []
            for k, (tr, va) in enumerate(folds):
                keras.utils.set_random_seed(split)
                model = _model(params, Xtr, task, n_classes)
                cbs = [Report(trial, Xtr[va], ytr[va])] if k == 0 else []
                model.fit(Xtr[tr], ytr[tr], epochs=EPOCHS, batch_size=BATCH, verbose=0,
                          callbacks=cbs)
                scores.append(_score(model, Xtr[va], ytr[va], task))
                if time.perf_counter() > deadline:
                    raise optuna.TrialPruned()  # out of time: not a finished trial
            trial.set_user_attr("params", params)
            return float(np.mean(scores))

        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=split),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
        study.optimize(objective, timeout=seconds)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = study.best_trial.user_attrs["params"] if done else \
            from_optuna(space, study.trials[0].params)
        trials = len(done)
    else:
        import keras_tuner as kt

        class TimedOracle(kt.oracles.HyperbandOracle):
            def populate_space(self, trial_id):
                if time.perf_counter() > deadline:
                    return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
                return super().populate_space(trial_id)

        class TimedHyperband(kt.Hyperband):
            """keras-tuner's Hyperband tuner (weights carried to promoted trials) on our oracle."""

            def __init__(self, oracle, **kwargs):
                kt.Tuner.__init__(self, oracle=oracle, **kwargs)

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if time.perf_counter() > deadline:
                    self.model.stop_training = True

        def build(hp):
            values = {name: entry for name, entry in space.items()}
            hp_params = {
                "neurons": hp.Choice("neurons", values["neurons"].values),
                "n_layers": hp.Int("n_layers", 1, 3),
                "activation": hp.Choice("activation", values["activation"].values),
                "learning_rate": hp.Float("learning_rate", 1e-4, 3e-2, sampling="log"),
                "dropout": hp.Float("dropout", 0.0, 0.3),
            }
            return _model(hp_params, Xtr, task, n_classes)

        tr, va = folds[0]
        with tempfile.TemporaryDirectory() as tmp:
            oracle = TimedOracle(objective="val_loss", max_epochs=EPOCHS, factor=3, seed=split + 1)
            tuner = TimedHyperband(oracle, hypermodel=build, directory=tmp,
                                 project_name="kt", overwrite=True)
            tuner.search(Xtr[tr], ytr[tr], validation_data=(Xtr[va], ytr[va]),
                         batch_size=BATCH, verbose=0, callbacks=[Stop()])
            best = tuner.get_best_hyperparameters(1)[0].values
            best = {k: v for k, v in best.items() if not k.startswith("tuner/")}
            trials = len(tuner.oracle.trials)
    search_seconds = time.perf_counter() - start
    test = _refit_test(best, Xtr, ytr, Xte, yte, task, n_classes)
    return {"test": test, "trials": trials, "seconds": search_seconds, "task": task,
            "best": best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--sides", default="asha,optuna,kt-hyperband")
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for dataset in args.datasets.split(","):
        for side in args.sides.split(","):
            tests, trials = [], []
            for split in range(args.splits):
                r = run_fresh("bench_peers:child", dict(side=side, dataset=dataset, split=split,
                                                        seconds=args.seconds))
                tests.append(r["test"])
                trials.append(r["trials"])
                metric = "test RMSE" if r["task"] == "reg" else "test accuracy"
                print(f"{dataset} {side} split {split}: {metric} {r['test']:.4f}, "
                      f"{r['trials']} trials, search {r['seconds']:.1f} s of {args.seconds:g}",
                      flush=True)
            rows.append((dataset, side, statistics.median(tests), statistics.median(trials),
                         r["task"]))
    print(f"\nmedian over {args.splits} splits, {args.seconds:g} s each "
          f"({FOLDS}-fold CV, {EPOCHS} epochs, batch {BATCH}):")
    for dataset, side, test, trials, task in rows:
        metric = "RMSE" if task == "reg" else "accuracy"
        print(f"  {dataset:<18}{side:<14}test {metric} {test:.4f}   trials {trials:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
