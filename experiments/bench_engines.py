"""Both engines on one study: trials per second and peak memory, side by side.

Runs the study's STRATEGY with a budget of N trials (as ``nn-tune run`` does:
``run_experiment``, data, refit and report included) once with the stacked
engine and once with ``engine="keras"``, each in its own process under
``/usr/bin/time -v`` (peak RSS), and prints wall time, trials per second and
peak RSS of each, and their ratios.

    python experiments/bench_engines.py                         # advertising_wide, random, 200 trials
    python experiments/bench_engines.py --max-trials 50 --strategy bayesian
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def child(config: str, strategy: str, max_trials: int, engine: str, out: str) -> None:
    """One run, in this process: the study with its strategy's budget set to ``max_trials``."""
    import dataclasses

    from nn_tuning.experiment import Experiment, Overrides
    from nn_tuning.runner import run_experiment

    exp = Experiment.from_file(config).with_overrides(Overrides(engine=engine))
    section = dataclasses.replace(exp.strategies[strategy], max_trials=max_trials)
    exp = dataclasses.replace(exp, strategies={**exp.strategies, strategy: section})
    run_experiment(exp, out, [strategy], progress=False)


def run(config: str, strategy: str, max_trials: int, engine: str, out: Path) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", config, strategy,
           str(max_trials), engine, str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{engine}: nn-tune failed:\n{done.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    trials = pd.read_csv(out / strategy / "trials.csv")
    return {"engine": engine, "wall_s": wall, "trials": len(trials),
            "complete": int((trials["state"] == "complete").sum()),
            "best": float(trials["mean_score"].max()), "peak_rss_mb": rss_kb / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "advertising_wide.toml"))
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--max-trials", type=int, default=200)
    parser.add_argument("--engines", nargs="+", default=["stacked", "keras"])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config, strategy, n, engine, out = args.child
        child(config, strategy, int(n), engine, out)
        return 0
    print(f"{Path(args.config).name}, {args.strategy}, {args.max_trials} trials "
          "(wall time includes start-up, data, refit and the report)", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        for engine in args.engines:
            r = run(args.config, args.strategy, args.max_trials, engine, Path(tmp) / engine)
            results.append(r)
            print(f"{engine:>8}: {r['wall_s']:7.1f} s  {r['trials'] / r['wall_s']:6.2f} trials/s  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  {r['complete']}/{r['trials']} complete, "
                  f"best CV {r['best']:.4f}", flush=True)
    if len(results) == 2:
        a, b = results
        print(f"{a['engine']} vs {b['engine']}: {b['wall_s'] / a['wall_s']:.1f}x the trials per "
              f"second, {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x the peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
