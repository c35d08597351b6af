"""scikeras' own test suite, run with scikeras' wrappers and then with ours.

Given a local copy of scikeras' ``tests/`` folder (the upstream repository's
tests at commit e92a7dc466cef81b041740978cc047594fea6b4d; the suite's code
stays outside this repository), runs it twice in fresh processes: once as it
is, once with ``nn_tuning.KerasClassifier``/``KerasRegressor`` assigned onto
``scikeras.wrappers`` before the test modules import them (this file is loaded
as a pytest plugin, whose ``pytest_configure`` does the assignment). Prints
the table: tests passing with scikeras, passing with ours, and every test that
passes with scikeras but not with ours. A regression is run again
``--reruns`` times (flaky thresholds, e.g. ``test_ensemble``) and counted only
if it fails every time.

    git --git-dir=<scikeras mirror> archive e92a7dc466cef81b041740978cc047594fea6b4d tests \\
        | tar -x -C /tmp/sk
    python experiments/scikeras_suite.py /tmp/sk/tests                 # ~10 min on 2 cores
    python experiments/scikeras_suite.py /tmp/sk/tests -k partial_fit  # a subset
    python experiments/scikeras_suite.py /tmp/sk/tests --only ours test_api.py

``test_compile_kwargs.py`` (imports a Keras private that no longer exists) and
``test_scikit_learn_checks.py`` (long; our own tests run scikit-learn's
checks) are left out unless named.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_FILES = ("test_compile_kwargs.py", "test_scikit_learn_checks.py")
_ENV_FLAG = "NN_TUNING_SUBSTITUTE_SCIKERAS"


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest's hook signature
    """Put our wrappers in scikeras' place before any test module imports them."""
    if os.environ.get(_ENV_FLAG) != "1":
        return
    import scikeras.wrappers

    import nn_tuning

    scikeras.wrappers.KerasClassifier = nn_tuning.KerasClassifier
    scikeras.wrappers.KerasRegressor = nn_tuning.KerasRegressor


def run_suite(tests: Path, ours: bool, files: list[str], k: str | None,
              timeout: float) -> tuple[dict[str, str], float]:
    """Outcome ('passed', 'failed', 'skipped', 'error') of every test id, and seconds taken."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT),
                                           os.environ.get("PYTHONPATH", "")]))
    env[_ENV_FLAG] = "1" if ours else "0"
    targets = [str(tests / f) for f in files] if files else [str(tests)]
    ignore = [] if files else [f"--ignore={tests / f}" for f in SKIPPED_FILES]
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-p", "scikeras_suite", "-q",
               "-p", "no:cacheprovider",
               f"--rootdir={tests.parent}", "-o", "addopts=", f"--junitxml={xml}",
               *ignore, *targets]
        if k:
            cmd += ["-k", k]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tests.parent, env=env, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.perf_counter() - start
        if not xml.exists():
            sys.exit(f"pytest produced no results (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                     f"\n{proc.stderr[-3000:]}")
        return _outcomes(xml), seconds


def _outcomes(xml: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(xml).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            found[name] = "failed"
        elif "error" in kinds:
            found[name] = "error"
        elif "skipped" in kinds:
            found[name] = "skipped"
        else:
            found[name] = "passed"
    return found


def _pytest_id(name: str) -> str:
    """junit's ``tests.test_api.TestX::test_y[p]`` as a ``-k``-free node id part: the function."""
    return name.split("::", 1)[1].split("[", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="a local copy of scikeras' tests/ folder")
    parser.add_argument("files", nargs="*",
                        help="test files to run (default: all but the two left out)")
    parser.add_argument("-k", help="pytest -k expression")
    parser.add_argument("--only", choices=("scikeras", "ours"), help="run one side only")
    parser.add_argument("--reruns", type=int, default=2,
                        help="reruns of each regression before it counts (default 2: three tries)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per suite run")
    parser.add_argument("--json", type=Path, help="also write every test's outcome per side here")
    args = parser.parse_intermixed_args()
    tests = args.tests.resolve()
    if not (tests / "conftest.py").is_file():
        sys.exit(f"tests: {tests} holds no conftest.py; give the path of scikeras' tests/ folder")

    results = {}
    for side in ("scikeras", "ours"):
        if args.only and side != args.only:
            continue
        results[side], seconds = run_suite(tests, side == "ours", args.files, args.k, args.timeout)
        counts = {o: sum(v == o for v in results[side].values())
                  for o in ("passed", "failed", "error", "skipped")}
        print(f"{side:9s}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['error']} errors, {counts['skipped']} skipped ({seconds:.0f} s)",
              flush=True)
        if args.only:
            for name, outcome in sorted(results[side].items()):
                if outcome in ("failed", "error"):
                    print(f"  {outcome}: {name}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.only:
        return

    sk, ours = results["scikeras"], results["ours"]
    passing = {n for n, o in sk.items() if o == "passed"}
    regressions = sorted(n for n in passing if ours.get(n) != "passed")
    # A flaky test counts only if it fails on every rerun.
    for attempt in range(args.reruns):
        if not regressions:
            break
        funcs = sorted({_pytest_id(n) for n in regressions})
        again, _ = run_suite(tests, True, args.files, " or ".join(funcs), args.timeout)
        regressions = [n for n in regressions if again.get(n) != "passed"]
        print(f"rerun {attempt + 1}: {len(regressions)} still failing", flush=True)
    gains = sorted(n for n, o in ours.items() if o == "passed" and sk.get(n) != "passed")

    print()
    print("| | tests |")
    print("|---|---|")
    print(f"| passing with scikeras | {len(passing)} |")
    print(f"| passing with ours | {sum(o == 'passed' for o in ours.values())} |")
    print(f"| of scikeras' passing tests, failing with ours (after {args.reruns} reruns) "
          f"| {len(regressions)} |")
    print(f"| passing with ours only | {len(gains)} |")
    for name in regressions:
        print(f"  regression: {name}")
    for name in gains:
        print(f"  ours only:  {name}")


if __name__ == "__main__":
    main()
