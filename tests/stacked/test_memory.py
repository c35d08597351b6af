"""The chunk planner's memory estimate against the peak a stack adds, measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# One stack alone in a fresh process (VmHWM, not ru_maxrss: Linux carries ru_maxrss across
# fork and exec, so a child of this test process read its peak): imports, data and the
# built configurations first, then the resident memory it holds, then the stack trains
# and is scored; its peak above that is what the planner's estimate is for.
CHILD = r"""
import json
import numpy as np
from sklearn.datasets import load_digits
from model_builders import cnn_classifier
from nn_tuning.evaluation import make_protocol
from nn_tuning.stacked.plan import build, estimated_bytes, run_chunk

X, y = load_digits(return_X_y=True)
X = ((X - X.mean()) / X.std()).astype("float32").reshape(-1, 8, 8, 1)
protocol = make_protocol(cnn_classifier, X, y, task="classification", cv=3, epochs=1,
                         batch_size=64, seed=0, fixed={"pool_size": 2})
configs = [{"filters": 16, "n_blocks": 1, "dense_units": 32, "learning_rate": lr}
           for lr in (1e-3, 3e-3)]
built = [build(protocol, X, y, i, c) for i, c in enumerate(configs)]
with open("/proc/self/status") as f:
    before = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
list(run_chunk(built, protocol, X, y, seed=0))
with open("/proc/self/status") as f:
    peak = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"estimate": estimated_bytes(built, protocol), "peak": (peak - before) * 1024}))
"""


def test_the_estimate_of_a_cnn_stack_is_within_2x_of_its_measured_peak():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # 6 replicas (2 configurations x 3 folds) of a 16-filter convolution on 8x8 images.
    assert got["estimate"] / 2 <= got["peak"] <= got["estimate"] * 2, got
