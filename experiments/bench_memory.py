"""Resident memory over many sequential trials of the fast trial path.

Every trial is a new configuration (a new width, so a new traced engine),
scored with 2-fold CV (5 epochs: memory grows with what is traced, not with
epochs) through ``nn_tuning.evaluation.evaluate``: the path
Bayesian search and Hyperband take for each trial. RSS is printed every 50
trials; growth is measured from trial 10 (after TensorFlow's one-off start-up
allocations) to the last trial.

    python experiments/bench_memory.py                    # 300 trials, the library default
    python experiments/bench_memory.py --clear-every 0    # never clear Keras' session
    python experiments/bench_memory.py --via-tune         # the same trials through tune()
    python experiments/bench_memory.py --via-tune grid    # a sequential grid search
    python experiments/bench_memory.py --keep-gradients   # what fast_fit's gradient cleanup
                                                          # prevents: every graph stays

``--via-tune`` runs the same configurations as ``tune(strategy="manual")`` in
the calling process (store, progress and all), ``--via-tune grid`` a grid of
as many widths x 3 activations; both pass ``engine=`` (``--engine``, default
``keras``: the per-configuration path the README's figures measure; ``stacked``
measures the stacked engine's memory instead), print the engine the trials
report, and print the calling process's RSS and the whole process tree's
every 50 trials. Without ``--via-tune`` the trials go through ``evaluate``,
which is always the per-configuration (``keras``) path.

    python experiments/bench_memory.py --via-tune --engine stacked
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import ANN_Model, BATCH_SIZE, seed_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs per fit; memory growth comes from tracing, not epochs")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--via-tune", nargs="?", const="manual", choices=["manual", "grid"],
                        help="run the trials through tune(strategy='manual') (the default) "
                             "or a sequential tune(strategy='grid')")
    parser.add_argument("--engine", default="keras", choices=["keras", "stacked", "auto"],
                        help="tune(engine=...) for --via-tune (default keras)")
    parser.add_argument("--clear-every", type=int, default=None,
                        help="override fast_fit's clearing period (0: never clear)")
    parser.add_argument("--keep-gradients", action="store_true",
                        help="leave traced custom gradients registered (the TensorFlow leak)")
    args = parser.parse_args()

    import psutil
    from sklearn.model_selection import KFold

    from nn_tuning import fast_fit
    from nn_tuning.evaluation import evaluate, make_protocol
    from nn_tuning.result import TrialState

    if args.keep_gradients:  # an experiment knob, not API
        fast_fit.forget_traced_gradients = contextlib.nullcontext
    if args.clear_every is not None:
        fast_fit._CLEAR_EVERY = args.clear_every  # an experiment knob, not API
    X, y, _ = seed_data()
    protocol = make_protocol(ANN_Model, X, y, cv=KFold(args.folds, shuffle=True, random_state=0),
                             epochs=args.epochs, batch_size=BATCH_SIZE, seed=0)
    proc = psutil.Process()
    activations, optimizers = ["relu", "linear", "softmax"], ["SGD", "Adam", "Adamax"]
    mb = lambda: proc.memory_info().rss / 2**20  # noqa: E731
    if args.via_tune:
        via_tune(args, protocol, X, y, proc, activations, optimizers)
        return
    print(f"engine keras (evaluate: the per-configuration path); "
          f"{args.trials} trials, {args.folds}-fold CV, {args.epochs} epochs, clear every "
          f"{fast_fit._CLEAR_EVERY or 'never'} new configurations"
          f"{', custom gradients kept' if args.keep_gradients else ''}", flush=True)
    start, rss10, failed = time.perf_counter(), None, 0
    for i in range(1, args.trials + 1):
        params = {"neurons": 4 + i, "activation": activations[i % 3],
                  "optimizer": optimizers[(i // 3) % 3]}
        failed += evaluate(protocol, X, y, params).state is not TrialState.COMPLETE
        if i == 10:
            rss10 = mb()
        if i % 50 == 0 or i == 10:
            print(f"trial {i:4d}: RSS {mb():7.1f} MB  ({time.perf_counter() - start:6.1f} s)",
                  flush=True)
    print(f"RSS growth, trial 10 -> {args.trials}: {mb() - rss10:+.1f} MB  "
          f"(failed trials: {failed}, engine cache: {fast_fit.engine_cache_info()})", flush=True)


def via_tune(args, protocol, X, y, proc, activations, optimizers) -> None:
    from _common import engines_ran

    from nn_tuning import tune

    print(f"tune(strategy={args.via_tune!r}, engine={args.engine!r}): {args.trials} trials, "
          f"{args.folds}-fold CV, {args.epochs} epochs", flush=True)

    def tree_mb() -> float:
        procs = [proc, *proc.children(recursive=True)]
        total = 0.0
        for p in procs:
            try:
                total += p.memory_info().rss
            except Exception:  # a worker being replaced
                pass
        return total / 2**20

    configs = [{"neurons": 4 + i, "activation": activations[i % 3],
                "optimizer": optimizers[(i // 3) % 3]} for i in range(1, args.trials + 1)]
    marks: dict[int, tuple[float, float]] = {}
    done = [0]
    start = time.perf_counter()

    import nn_tuning.strategies.base as base

    record = base.SearchContext.record

    def counting_record(self, trial):  # a measuring hook of this script only
        out = record(self, trial)
        done[0] += 1
        if done[0] == 10 or done[0] % 50 == 0:
            marks[done[0]] = (proc.memory_info().rss / 2**20, tree_mb())
            print(f"trial {done[0]:4d}: caller RSS {marks[done[0]][0]:7.1f} MB, process tree "
                  f"{marks[done[0]][1]:7.1f} MB ({time.perf_counter() - start:6.1f} s)", flush=True)
        return out

    base.SearchContext.record = counting_record
    common = dict(cv=args.folds, epochs=args.epochs, batch_size=BATCH_SIZE, seed=0, refit=False,
                  engine=args.engine)
    if args.via_tune == "grid":  # the same kind of trials as a grid: widths x activations
        grid = {"neurons": [4 + i for i in range(1, -(-args.trials // 3) + 1)],
                "activation": activations}
        result = tune(ANN_Model, grid, X, y, strategy="grid", **common)
    else:
        result = tune(ANN_Model, None, X, y, strategy="manual", configs=configs, **common)
    print(f"engine that ran: {engines_ran(result.trials)}", flush=True)
    if 10 not in marks:
        print("fewer than 10 trials: no growth figure", flush=True)
        return
    last = max(marks)
    print(f"caller RSS growth, trial 10 -> {last}: {marks[last][0] - marks[10][0]:+.1f} MB; "
          f"process tree: {marks[last][1] - marks[10][1]:+.1f} MB; failed trials: "
          f"{result.n_failed}", flush=True)


if __name__ == "__main__":
    main()
