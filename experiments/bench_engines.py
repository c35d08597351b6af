"""Both engines on one study: trials per second and peak memory, side by side.

Runs the study's STRATEGY with a budget of N trials as ``nn-tune run`` does
(``run_experiment``: data, every trial built, trained and scored, the refit
best scored on the test split, the report written) once per engine, each run
in its own fresh process under ``/usr/bin/time -v`` (peak RSS of the process
or its largest worker). The child imports TensorFlow, Keras and nn-tuning
(and starts ``engine="keras"``'s worker processes, Keras imported), then
starts its clock; the process's whole wall time (start-up included) is
printed beside it. Engines: ``stacked`` with 1 process (stacks train in
process), ``keras`` with ``--workers`` worker processes (default one per core,
its documented best setting here; each run says whether it reused the
pre-started workers).
``--repeats`` rounds (default 3) alternate the engines; printed: every run,
the median and range per engine, the engine the trials report, and the
ratios of the medians.

    python experiments/bench_engines.py          # advertising_wide, random, 200 trials
    python experiments/bench_engines.py --max-trials 50 --strategy bayesian
    python experiments/bench_engines.py --max-trials 4 --epochs 2 --repeats 1   # a smoke test
    python experiments/bench_engines.py --engines stacked --stacked-workers 2
        # the stacked engine's chunks in 2 local worker processes
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    engines_ran, prestart_tune_workers, run_fresh, spread, workers_note,
)

HERE = Path(__file__).resolve().parent


def child(config: str, strategy: str, max_trials: int, engine: str, workers: int,
          out: str, epochs: int | None = None) -> dict:
    """One run, in this (fresh) process: imports first, then the clock."""
    import dataclasses

    import pandas as pd
    import tensorflow  # noqa: F401 - imported before the clock on both sides

    from nn_tuning.experiment import Experiment, Overrides
    from nn_tuning.runner import run_experiment
    from nn_tuning.scaleout import ScaleOut

    exp = Experiment.from_file(config).with_overrides(Overrides(engine=engine, epochs=epochs))
    section = dataclasses.replace(exp.strategies[strategy], max_trials=max_trials)
    exp = dataclasses.replace(exp, strategies={**exp.strategies, strategy: section})
    reused = prestart_tune_workers(workers, exp.training.cv)
    start = time.perf_counter()
    run_experiment(exp, out, [strategy], progress=False, scale=ScaleOut(workers=workers))
    seconds = time.perf_counter() - start
    trials = pd.read_csv(Path(out) / strategy / "trials.csv")
    return {"seconds": seconds, "trials": len(trials),
            "complete": int((trials["state"] == "complete").sum()),
            "best": float(trials["mean_score"].max()),
            "engine": engines_ran(trials), "workers_reused": reused()}


def run(config: str, strategy: str, max_trials: int, engine: str, workers: int,
        out: Path, epochs: int | None) -> dict:
    start = time.perf_counter()
    r = run_fresh("bench_engines:child", dict(config=config, strategy=strategy,
                                              max_trials=max_trials, engine=engine,
                                              workers=workers, out=str(out), epochs=epochs),
                  prefix=["/usr/bin/time", "-v"])
    r["process_s"] = time.perf_counter() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.pop("stderr"))
    rss_kb = int(rss.group(1))
    r["peak_rss_mb"] = rss_kb / 1024
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "advertising_wide.toml"))
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--max-trials", type=int, default=200)
    parser.add_argument("--engines", nargs="+", default=["stacked", "keras"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes of engine='keras' (default: one per core)")
    parser.add_argument("--stacked-workers", type=int, default=1,
                        help="worker processes of the stacked engine (each trains whole stacks)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (fresh processes)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the config's epochs (smoke tests only)")
    args = parser.parse_args(argv)
    workers = {e: (args.workers if e == "keras" else args.stacked_workers) for e in args.engines}
    print(f"{Path(args.config).name}, {args.strategy}, {args.max_trials} trials, "
          f"{os.cpu_count()} cores; workers: {workers}; each run a fresh process, clock after "
          "imports (data, trials, refit and report included)", flush=True)
    results: dict[str, list[dict]] = {e: [] for e in args.engines}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for rnd in range(args.repeats):
            for engine in args.engines:
                r = run(args.config, args.strategy, args.max_trials, engine, workers[engine],
                        Path(tmp) / f"{engine}{rnd}", args.epochs)
                results[engine].append(r)
                print(f"round {rnd + 1} {engine:>8} ({workers[engine]} worker(s)): "
                      f"{r['seconds']:7.1f} s ({r['process_s']:.1f} s with start-up)  "
                      f"{r['trials'] / r['seconds']:6.2f} trials/s  peak RSS "
                      f"{r['peak_rss_mb']:6.0f} MB  {r['complete']}/{r['trials']} complete, "
                      f"best CV {r['best']:.4f}; engine that ran: {r['engine']}"
                      f"{workers_note(r['workers_reused'])}", flush=True)
    med = {}
    for engine, runs in results.items():
        secs = [r["seconds"] for r in runs]
        med[engine] = (statistics.median(secs),
                       statistics.median(r["peak_rss_mb"] for r in runs), runs[0]["trials"])
        print(f"{engine:>8}: {spread(secs)}, {med[engine][2] / med[engine][0]:.2f} trials/s, "
              f"peak RSS {spread([r['peak_rss_mb'] for r in runs], 'MB', '.0f')}", flush=True)
    if len(med) == 2:
        (a, (ta, ma, na)), (b, (tb, mb, nb)) = med.items()
        print(f"{a} vs {b} (medians): {(na / ta) / (nb / tb):.1f}x the trials per second, "
              f"{ma / mb:.2f}x the peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
