"""``nn-tune``: the command line. Argument parsing and exit codes only.

Exit codes: 0 success, 1 ``doctor`` found a problem, 2 bad input (config,
data, arguments; a one-line ``nn-tune: error: ...`` on stderr), 130
interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


def _add_override_options(p: argparse.ArgumentParser) -> None:
    """The config overrides, shared by ``run``/``compare`` and ``worker`` (a worker must be
    started with the chief's, or it belongs to another run and is refused)."""
    p.add_argument("--max-trials", type=_positive, metavar="N",
                   help="cap every strategy at N trials (grid: a sub-grid of <= N points)")
    p.add_argument("--epochs", type=_positive, metavar="N", help="training epochs of every fit")
    p.add_argument("--seed", type=_non_negative, metavar="N",
                   help="seed of the test split, CV folds, samplers and weights")
    p.add_argument("--cv", type=_int_at_least(2), metavar="K", help="number of CV folds (>= 2)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="train on the CPU, the GPUs, or whatever TensorFlow picks (auto)")
    from .scaleout import ENGINES  # a leaf: no TensorFlow

    p.add_argument("--engine", choices=ENGINES,
                   help="train each configuration as its own Keras model (keras), many as one "
                        "stacked model (stacked), or let nn-tune pick (auto)")


def _overrides(args: argparse.Namespace) -> object:
    from .experiment import Overrides

    return Overrides(max_trials=args.max_trials, epochs=args.epochs, seed=args.seed, cv=args.cv,
                     device=args.device, engine=args.engine)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR",
                   help="run folder (default: runs/<experiment name>); one process at a time")
    _add_override_options(p)
    _add_scale_options(p)
    p.add_argument("--stability", type=_positive, metavar="K",
                   help="re-run the top K configs of each strategy with 3 more seeds and "
                        "report each one's mean and spread (stability.csv)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar, warnings only")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in the run folder instead of resuming it")
    p.add_argument("--refit", choices=("best", "simplest"),
                   help="which configuration becomes best_model.keras: the best CV score "
                        "(default) or the smallest network within one standard error of it")


def _gpu_list(text: str) -> list[int]:
    try:
        gpus = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        gpus = []
    if not gpus or any(g < 0 for g in gpus):
        raise argparse.ArgumentTypeError(f"expected GPU indices such as 0,1, got {text!r}")
    return gpus


def _add_scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="bayesian/hyperband: N keras-tuner worker processes, each training one "
                        "configuration at a time; manual/grid/random: N processes, each "
                        "training whole stacks under the default engine (configurations one "
                        "by one with --engine keras, and those that cannot stack)")
    p.add_argument("--gpus", type=_gpu_list, metavar="LIST", help="GPUs to use, e.g. 0,1")
    p.add_argument("--trials-per-gpu", type=_positive, metavar="M",
                   help="pack M small trials onto each GPU (keras-tuner workers)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train with Keras' mixed_float16 policy")
    p.add_argument("--dask-scheduler", metavar="ADDR",
                   help="manual/grid/random on Dask, one task per stack: 'local' or "
                        "tcp://HOST:8786")
    p.add_argument("--chief", metavar="HOST:PORT",
                   help="bayesian/hyperband: serve keras-tuner's oracle here for "
                        "`nn-tune worker` processes")


def _scale(args: argparse.Namespace, workers: int) -> object:
    """How to run (never what is computed), from the flags; ``workers``: the config's."""
    from .scaleout import ScaleOut

    return ScaleOut(workers=getattr(args, "workers", None) or workers,
                    gpus=getattr(args, "gpus", None),
                    trials_per_gpu=getattr(args, "trials_per_gpu", None),
                    mixed_precision=bool(getattr(args, "mixed_precision", False)),
                    dask_scheduler=getattr(args, "dask_scheduler", None),
                    chief=getattr(args, "chief", None))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other nn-tune error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"nn-tune: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``nn-tune`` argument parser."""
    from .strategies import STRATEGIES  # the registry's names (no strategy is imported)

    parser = _Parser(
        prog="nn-tune", description="Tune Keras model hyperparameters from experiment configs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="run one experiment config",
                         description="Run the strategies of one experiment config.")
    run.add_argument("config", metavar="CONFIG", help="experiment TOML file")
    run.add_argument("--strategy", metavar="NAME",
                     help="run only this strategy (default: every one in the config)")
    _add_run_options(run)
    cmp = sub.add_parser(
        "compare", help="compare strategies on the same data, folds and budget",
        description="Run several strategies on the same data, CV folds and budget and write "
                    "the comparison report. Without CONFIG: the Advertising study.")
    cmp.add_argument("config", metavar="CONFIG", nargs="?",
                     help="experiment TOML file (default: the embedded Advertising study)")
    cmp.add_argument("--strategies", metavar="LIST",
                     help=f"comma-separated, of {','.join(STRATEGIES)} (default: the config's)")
    _add_run_options(cmp)
    wrk = sub.add_parser(
        "worker", help="serve as a keras-tuner worker of a chief",
        description="Ask the keras-tuner chief at HOST:PORT (started with `nn-tune run CONFIG "
                    "--strategy bayesian --chief HOST:PORT`) for trials, score them and commit "
                    "them to the run folder's store. Give it the chief's overrides (--epochs, "
                    "--seed, --cv, --max-trials, --engine): they are part of the run.")
    wrk.add_argument("config", metavar="CONFIG", help="the chief's experiment TOML file")
    wrk.add_argument("--chief", metavar="HOST:PORT", required=True, help="the chief's address")
    wrk.add_argument("--strategy", metavar="NAME", default="bayesian",
                     help="a strategy with keras-tuner's chief/worker mode (default: bayesian)")
    wrk.add_argument("--out", metavar="DIR", help="the chief's run folder (shared)")
    _add_override_options(wrk)  # the chief's overrides: the same run
    wrk.add_argument("--gpus", type=_gpu_list, metavar="LIST")
    wrk.add_argument("--quiet", action="store_true")
    rep = sub.add_parser("report", help="rebuild the report of a run (finished, going or killed)")
    rep.add_argument("run_dir", metavar="DIR", help="the run folder")
    _add_export_parser(sub)
    sub.add_parser("doctor", help="check the environment")
    return parser


@contextlib.contextmanager
def _silenced_fd(fd: int = 2) -> Iterator[None]:
    """Send what C++ code writes to file descriptor ``fd`` to the null device for the block."""
    sys.stderr.flush()
    saved, null = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


def _start_tensorflow_quietly() -> None:
    """Import TensorFlow and list its devices without its C++ start-up lines.

    TensorFlow 2.21 prints some (absl, oneDNN, CUDA stubs, ``cuInit`` on a
    machine without a GPU) to the process's stderr even with
    ``TF_CPP_MIN_LOG_LEVEL=3``; only the command line may silence a file
    descriptor (a library must not).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _silenced_fd(2):
        import tensorflow as tf

        tf.config.list_physical_devices()


def _run(args: argparse.Namespace) -> int:
    from .experiment import Experiment
    from .runner import run_experiment

    if args.config is None:
        exp = Experiment.default()
    else:
        exp = Experiment.from_file(args.config)
    exp = exp.with_overrides(_overrides(args))
    if args.command == "run":
        names = [args.strategy] if args.strategy else None
    else:
        names = [s.strip() for s in args.strategies.split(",") if s.strip()] \
            if args.strategies else None
    out = Path(args.out) if args.out else Path("runs") / exp.name
    args.run_folder = out
    report = run_experiment(exp, out, names, overwrite=args.overwrite,
                            progress=not args.quiet,
                            scale=_scale(args, exp.training.workers),
                            stability=args.stability, refit=args.refit or True)
    print(_summary_table(report.parent))
    print(f"report: {report}")
    return 0


def _summary_table(run_dir: Path) -> str:
    from .report import load_run

    lines = []
    for name, r in load_run(run_dir).items():
        s = r["summary"]
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in s.get("test_metrics", {}).items())
        lines.append(f"{name:<10} trials {s.get('trials_run', '?'):>3}  best CV "
                     f"{s.get('best_cv_score', float('nan')):.4g}  test {metrics}  "
                     f"{s.get('wall_seconds', 0):.1f} s")
    return "\n".join(lines)


def _worker(args: argparse.Namespace) -> int:
    from .experiment import Experiment
    from .runner import run_worker

    exp = Experiment.from_file(args.config).with_overrides(_overrides(args))
    out = Path(args.out) if args.out else Path("runs") / exp.name
    args.run_folder = out
    scale = _scale(argparse.Namespace(gpus=args.gpus), workers=1)
    n = run_worker(exp, out, args.strategy, args.chief, scale)
    print(f"worker done: {n} trials in {out / args.strategy / 'trials.db'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import build_report

    print(f"report: {build_report(args.run_dir)}")
    return 0


def _add_export_parser(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser(
        "export", help="export a run's trials to an Optuna storage",
        description="Write each strategy's trials of run folder DIR as an Optuna study named "
                    "<run>-<strategy>, for `optuna-dashboard URL`.")
    exp.add_argument("run_dir", metavar="DIR", help="the run folder (finished or not)")
    exp.add_argument("--optuna", metavar="URL", required=True,
                     help="Optuna storage URL, e.g. sqlite:///study.db")
    exp.add_argument("--overwrite", action="store_true",
                     help="replace studies of the same names in the storage")


def _export(args: argparse.Namespace) -> int:
    from .export import export_optuna

    for name in export_optuna(args.run_dir, args.optuna, overwrite=args.overwrite):
        print(f"optuna study: {name}")
    print(f"browse: optuna-dashboard {args.optuna}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    checks = run_checks()
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'} {c.name:<20} {c.detail}")
    problems = [c for c in checks if not c.ok]
    for c in problems:
        print(f"fix: {c.name}: {c.fix}", file=sys.stderr)
    return 1 if problems else 0


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value):  # noqa: D102
        pass


def _configure_logging(quiet: bool) -> None:
    """nn-tuning's messages on stderr; TensorFlow's retracing chatter off."""
    logger = logging.getLogger("nn_tuning")
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not any(getattr(h, "_nn_tune", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("nn-tune: %(message)s"))
        handler._nn_tune = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# Library errors name tune()'s arguments; the user of nn-tune typed flags.
_ARGUMENT_FLAGS = {
    "dask_scheduler": "--dask-scheduler", "trials_per_gpu": "--trials-per-gpu",
    "mixed_precision": "--mixed-precision", "worker_of": "--chief", "chief": "--chief",
    "workers": "--workers", "gpus": "--gpus", "engine": "--engine", "max_trials": "--max-trials",
    "device": "--device",
}
_ARGUMENT = re.compile(r"(?<![\w.'-])(" + "|".join(_ARGUMENT_FLAGS) + r")(?= must| and |=| ')")


def as_flags(message: str) -> str:
    """A library error in the words of the command line (``overwrite=True`` -> ``--overwrite``).

    >>> as_flags("dask_scheduler must be 'local', got 'x'")
    "--dask-scheduler must be 'local', got 'x'"
    """
    for words, flag in (("overwrite=True", "--overwrite"), ("out_dir", "--out"),
                        ("device 'cpu' or 'auto'", "--device cpu or auto")):
        message = message.replace(words, flag)
    return _ARGUMENT.sub(lambda m: _ARGUMENT_FLAGS[m.group(1)], message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nn-tune``; returns the exit code."""
    from .exceptions import NNTuningError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line message
        return int(exc.code or 0)
    _configure_logging(getattr(args, "quiet", False))
    handler = {"run": _run, "compare": _run, "worker": _worker, "report": _report,
               "doctor": _doctor, "export": _export}[args.command]
    try:
        if args.command in ("run", "compare", "worker", "doctor"):
            _start_tensorflow_quietly()
        return handler(args)
    except NNTuningError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        print(f"nn-tune: error: {as_flags(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        folder = getattr(args, "run_folder", None)
        kept = f" in {folder}" if folder is not None else ""
        print(f"nn-tune: interrupted; every finished trial is kept{kept}: rerun the same "
              "command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
