"""Peak memory and wall time of a large random search on the stacked engine.

A random search of ``--trials`` configurations (default 2,000) over
``advertising_wide.toml``'s space, on the Advertising data (standardised
features and target, 5-fold CV, batch size 40), through ``tune(...,
engine="stacked")``. Each run is its own fresh process, started with
``PYTHONPATH`` set to the code under test, so two versions of nn-tuning can
be measured side by side; the child's imports happen before its clock starts.
Printed per run: peak resident memory (Linux' ``VmHWM`` of the
child) and wall time of ``tune()``, the trials, and the engines that ran them.

    python experiments/bench_stacked_memory.py                                # this checkout
    python experiments/bench_stacked_memory.py --code /work/main --code .     # old vs new
    python experiments/bench_stacked_memory.py --trials 2000 --epochs 2 --repeats 1

Fewer epochs than the study's 80 keep a 2,000-trial run short on a shared
2-core machine; memory does not depend on epochs (the weights and one batch's
activations are what a stack holds), wall time does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time, tomllib
import pandas as pd
from sklearn.preprocessing import StandardScaler
from model_builders import mlp_regressor
from nn_tuning import SearchSpace, tune

args = json.loads(sys.argv[1])
df = pd.read_csv(args["csv"])
X = StandardScaler().fit_transform(df[["TV", "Radio", "Newspaper"]].to_numpy()).astype("float32")
y = df["Sales"].to_numpy(dtype="float32")
y = ((y - y.mean()) / y.std()).astype("float32")
space = SearchSpace.from_dict(args["space"])
start = time.perf_counter()
result = tune(mlp_regressor, space, X, y, strategy="random", max_trials=args["trials"], cv=5,
              epochs=args["epochs"], batch_size=40, seed=0, refit=False, engine="stacked",
              max_seconds=args["max_seconds"])
wall = time.perf_counter() - start
with open("/proc/self/status") as f:  # VmHWM: ru_maxrss would be the parent's peak if larger
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
print(json.dumps({"wall_s": wall, "peak_rss_mib": peak, "trials": len(result.trials),
                  "engines": sorted(set(result.trials["engine"]))}))
"""


def run_once(code: Path, trials: int, epochs: int, max_seconds: float | None,
             space: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = {"csv": str(code / "nn_tuning" / "data" / "advertising.csv"), "trials": trials,
            "epochs": epochs, "max_seconds": max_seconds, "space": space}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=code, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"run on {code} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", type=Path,
                        help="a checkout of nn-tuning to measure (repeatable; default: this one)")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per checkout")
    parser.add_argument("--max-seconds", type=float, default=None)
    opts = parser.parse_args()
    space = tomllib.loads((HERE / "advertising_wide.toml").read_text())["space"]
    for code in opts.code or [HERE.parent]:
        code = code.resolve()
        runs = [run_once(code, opts.trials, opts.epochs, opts.max_seconds, space)
                for _ in range(opts.repeats)]
        rss = [r["peak_rss_mib"] for r in runs]
        wall = [r["wall_s"] for r in runs]
        print(f"{code}: {runs[0]['trials']} trials, engines {runs[0]['engines']}, "
              f"{opts.epochs} epochs: peak RSS median {statistics.median(rss):.0f} MiB "
              f"(runs {', '.join(f'{v:.0f}' for v in rss)}), wall median "
              f"{statistics.median(wall):.1f} s (runs {', '.join(f'{v:.1f}' for v in wall)})",
              flush=True)


if __name__ == "__main__":
    main()
