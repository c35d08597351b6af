"""``nn-tune compare`` end to end, cold, as a user runs it from a shell, with its time split.

Each run is the command itself in a fresh process (``nn-tune compare --out
DIR --quiet``: the Advertising study, every strategy of its config, the
refits, the test scores and the report), timed from outside from the
process's start to its exit. The split comes from what the run wrote: each
strategy's ``summary.json`` (its wall time, and for stacked runs its
building, tracing, training, scoring and refit seconds); *start-up* is a
fresh ``python -c "import nn_tuning.cli, tensorflow"`` timed the same way
(median of the repeats), and *the rest* (data, test scores, the report,
exit) is what is left. Engine: the config's (``engine = "auto"``: stacked).

    python experiments/bench_compare.py               # 3 fresh runs
    python experiments/bench_compare.py --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = ("build", "trace", "train", "score", "refit")


def _timed(cmd: list[str]) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return seconds


def _nn_tune() -> list[str]:
    exe = shutil.which("nn-tune", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "nn_tuning.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    startups = [_timed([sys.executable, "-c", "import nn_tuning.cli, tensorflow"])
                for _ in range(args.repeats)]
    startup = statistics.median(startups)
    print(f"start-up (python, nn_tuning.cli, tensorflow imported): {startup:.1f} s "
          f"(median of {args.repeats})", flush=True)
    totals = []
    for i in range(args.repeats):
        out = Path(tempfile.mkdtemp(prefix="nn-tune-compare-")) / "run"
        total = _timed([*_nn_tune(), "compare", "--out", str(out), "--quiet"])
        totals.append(total)
        lines, walls = [], 0.0
        for summary in sorted(out.glob("*/summary.json")):
            s = json.loads(summary.read_text())
            walls += s["wall_seconds"]
            split = s.get("seconds") or {}
            parts = " ".join(f"{k} {split[k]:.1f}" for k in PARTS if k in split)
            lines.append(f"    {s['strategy']:<10} {s['wall_seconds']:6.1f} s  {s['trials_run']:3d} "
                         f"trials  loops traced {s.get('traces', '?')}  ({parts})")
        print(f"run {i + 1}: {total:.1f} s end to end; strategies {walls:.1f} s, start-up "
              f"~{startup:.1f} s, the rest (data, test scores, report, exit) "
              f"{total - walls - startup:.1f} s", flush=True)
        print("\n".join(lines), flush=True)
        shutil.rmtree(out.parent, ignore_errors=True)
    print(f"nn-tune compare, cold end to end: median {statistics.median(totals):.1f} s "
          f"({min(totals):.1f}-{max(totals):.1f}, n={len(totals)}), {os.cpu_count()} cores",
          flush=True)


if __name__ == "__main__":
    main()
