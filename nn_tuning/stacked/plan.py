"""From configurations to trials through stacks: build, group, chunk, train, score.

Every configuration is built once, by the protocol's own estimator (so with
its seeding, ``meta`` and compile arguments), and read with
:func:`~nn_tuning.stacked.structure.read_structure`; configurations are built
one at a time and each stack trains as soon as its chunk is complete, so
memory holds about one stack's worth of them, not the batch. Its folds become
replicas that start from those initial weights, as every fold of the
per-configuration path does. Replicas that may share a stack (same
structure group, steps per epoch, batch size and epochs) are cut into chunks
of whole configurations, at most ``max_replicas`` replicas and
``max_bytes`` of estimated memory each: the plan depends on the run's
settings only, never on the machine. Each chunk trains as one stack; then
every (configuration, fold) is scored by the protocol's scorer on the
protocol's own estimator holding the trained weights, exactly as the
per-configuration path scores it.

The memory estimate (:func:`estimated_bytes`,
:func:`~nn_tuning.stacked.engine.stack_bytes`) is of the peak resident memory
one stack's training and scoring add: per replica (the loop's, padding
included) its weights 14 times with Adam (given, variables, gradients,
update temporaries, returned; each optimizer slot three times), one batch's
activations forward and backward (per convolution block: its input, the
patches, the outputs before and after the activation and masked, pooled),
its row orders; and the traced loop, 20 MiB (40 MiB with convolutions).
Measured on 2 CPU cores, TensorFlow, each stack alone in a fresh process
(``VmHWM`` above the RSS once imports, images and built configurations
are in; ``python experiments/bench_images.py --stack-replicas 6 24 48
--sizes 8 16 --epochs 2`` measures the first rows so), peak / estimate, MiB:
digits_images' CNN (3-fold, batch 64) with filters 32 and 2 blocks, 8x8:
R=3 77/79, R=6 124/119, R=24 268/276, R=48 480/513; 16x16: R=6 312/327,
R=24 878/902, R=48 1625/1764; filters 8, 1 block, 8x8: R=48 132/126,
16x16: R=48 406/360; filters 32, 1 block, 16x16: R=48 1344/1116 (every ratio
0.88-1.20; the estimate before this counted no loop, 6 weight copies and 2
values per convolution output: 0.15-0.81 of these peaks, small stacks lowest).
Those were measured with convolutions as patch matmuls; with native convolutions
(:mod:`.model`) the study's largest stack measured 267 MiB against 276 (8x8, 24
replicas) and 986 MiB against 960 (28x28, 9 replicas).
Advertising MLPs (5-fold, batch 40): R=5, 10 units, 22/20; R=500, 200
units, 95/141; R=100, 3 x 512 units, 2595/3099. A whole study's peak is
more than its largest stack's: ``python experiments/bench_images.py --sizes
8 --trials 48 --repeats 1`` peaked 424 MiB above start where its largest
stack (24 replicas) alone peaked 259 MiB against an estimate of 276 MiB
(the other stacks' kept loops, Keras models built, the refit).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..fast_fit import clear_engines
from ..space import config_key
from .clock import timed
from .compiled import round_up
from .engine import Replica, conv_sizes, stack_bytes, train_stack
from .stopping import Monitoring, monitoring, training_rows
from .read_model import layer_weights, read_structure
from .structure import NotStackable, Structure

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_REPLICAS", "Built", "build", "chunk_trials",
           "estimated_bytes", "fold_replica", "plan_chunks", "run_chunk", "stacked_groups",
           "stacked_trials"]

logger = logging.getLogger("nn_tuning")

# Chosen from experiments/bench_stacked_scaling.py (README, "How cost grows"): on
# 2 CPU cores a step's time grows linearly past a few hundred replicas of the
# seed's size, so larger stacks gain nothing there but delay every commit; a
# GPU gets its stacks from the same plan.
DEFAULT_MAX_REPLICAS = 512
DEFAULT_MAX_BYTES = 1 << 30
# Keras models built between two frees of Keras' global state (about 0.3 MB each).
_BUILDS_PER_CLEAR = 256


@dataclass
class Built:
    """One configuration, built and read: its estimator, structure and initial weights."""

    index: int
    params: dict[str, Any]
    estimator: Any
    structure: Structure
    weights: list[tuple[np.ndarray, np.ndarray]]
    epochs: int
    batch_size: int
    # The fit's validation_split and EarlyStopping rule (one per stack: part of its group).
    monitoring: Monitoring = Monitoring()


def replica_seed(seed: int, params: Mapping[str, Any], fold: int) -> int:
    """The replica's own random stream: from the run's seed, its configuration and fold only."""
    # config_key: a list and a tuple of the same values (JSON and the space give either) agree.
    text = json.dumps([int(seed), config_key(params), fold])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def fold_replica(b: Built, protocol: Any, y: np.ndarray, k: int, seed: int) -> Replica:
    """``b``'s replica of fold ``k``: its rows, random stream and ``model.fit`` settings.

    Its row weights are what its fit would weigh each training row by (the
    run's ``sample_weight`` of those rows times the estimator's class weights
    of their labels, :func:`nn_tuning.fit_settings.row_weights`); ``shuffle``
    is the estimator's.
    """
    from ..fit_settings import row_weights

    train = protocol.splits[k][0]
    sample_weight = protocol.sample_weight
    weights = row_weights(b.estimator.get_params(),
                          None if sample_weight is None else sample_weight[train], y[train])
    return Replica(b.structure, b.weights, train, replica_seed(seed, b.params, k),
                   None if weights is None else weights.astype("float32"),
                   _fit_arg(b.estimator, "shuffle", True) is not False)


def _fit_arg(estimator: Any, name: str, default: Any) -> Any:
    value = estimator.get_params().get(name)
    return default if value is None else value


def build(protocol: Any, X: np.ndarray, y: np.ndarray, index: int,
          params: Mapping[str, Any]) -> Built:
    """Build ``params``' model as its first fold would be; NotStackable if it cannot stack."""
    with timed("build"):
        return _build(protocol, X, y, index, params)


def _build(protocol: Any, X: np.ndarray, y: np.ndarray, index: int,
           params: Mapping[str, Any]) -> Built:
    """:func:`build`, untimed.

    Everything is asked of the wrapper's stacking seam (:mod:`nn_tuning.wrappers`):
    ``stacking_obstacle``, ``initial_model``; the Keras model itself is read
    through Keras' public API only.
    """
    est = protocol.estimator_for(params)
    if (reason := est.stacking_obstacle()) is not None:
        raise NotStackable(reason)
    train = protocol.splits[0][0]
    model = est.initial_model(X[train], y[train])
    if (reason := est.stacking_obstacle()) is not None:
        raise NotStackable(reason)
    if protocol.task == "classification":
        classes = np.unique(y)
        if len(getattr(est, "classes_", [])) != len(classes):
            raise NotStackable("a fold lacks some classes")
    structure = read_structure(model)
    weights = layer_weights(model)
    # Scoring needs the estimator's encoders, never its model (the stack's outputs
    # stand in for its predictions): the model is dropped here.
    batch_size = _fit_arg(est, "batch_size", 32)
    watch = monitoring(est.get_params())
    if watch.validation_split and protocol.sample_weight is not None:
        raise NotStackable("fit setting validation_split with sample_weight is not stacked yet")
    if watch.sets_learning_rate and dict(structure.optimizer_config).get("learning_rate_schedule"):
        raise NotStackable("ReduceLROnPlateau with a learning-rate schedule (Keras' callback "
                           "cannot set a schedule's rate)")
    for train, _ in protocol.splits:
        try:  # too few rows to split: the per-configuration path records the failed fit
            training_rows(len(train), watch.validation_split)
        except ValueError as exc:
            raise NotStackable(str(exc)) from None
    return Built(index, dict(params), est, structure, weights, int(_fit_arg(est, "epochs", 1)),
                 int(batch_size), watch)


def _group_key(b: Built, protocol: Any) -> tuple:
    split = b.monitoring.validation_split
    steps = {math.ceil(training_rows(len(train), split) / b.batch_size)
             for train, _ in protocol.splits}
    return (b.structure.group, tuple(sorted(steps)), b.batch_size, b.epochs, b.monitoring)


def plan_chunks(built: Sequence[Built], protocol: Any, *, max_replicas: int = DEFAULT_MAX_REPLICAS,
                max_bytes: int = DEFAULT_MAX_BYTES) -> list[list[Built]]:
    """Stacks of whole configurations, in the order the configurations came.

    Within each group, configurations join the open chunk in order; a chunk
    closes when the next one would take it past ``max_replicas`` replicas or
    ``max_bytes`` of estimated memory. :func:`stacked_trials` applies the
    same rule as it builds.
    """
    chunker = _Chunker(protocol, max_replicas, max_bytes)
    chunks = [chunk for b in built for chunk in chunker.add(b)] + chunker.rest()
    return sorted(chunks, key=lambda c: c[0].index)


def _steps_split(protocol: Any, batch_size: int, validation_split: float = 0.0
                 ) -> list[list[int]]:
    """Fold indices grouped by steps per epoch (replicas of one stack must agree)."""
    by_steps: dict[int, list[int]] = {}
    for k, (train, _) in enumerate(protocol.splits):
        steps = math.ceil(training_rows(len(train), validation_split) / batch_size)
        by_steps.setdefault(steps, []).append(k)
    return list(by_steps.values())


def _targets(b: Built, y: np.ndarray) -> np.ndarray:
    return b.estimator.encode_target(y)


def run_chunk(chunk: Sequence[Built], protocol: Any, X: np.ndarray, y: np.ndarray,
              seed: int, deadline: float | None = None
              ) -> Iterator[tuple[Built, list[float], float, str | None, int]]:
    """Train one chunk (one stack per steps-per-epoch group of its folds) and score it.

    Yields (configuration, fold scores, seconds, failure reason, epochs trained)
    per configuration. With the estimator's ``validation_split`` and
    ``EarlyStopping`` (:mod:`.stopping`), each fold trains and stops as its
    own fit would; a fold stopped early still counts the epochs asked (its
    fit with the callback ran to its end), so the trial's budget stays those. With a ``deadline``, the stack stops at the first
    segment of epochs past it (:func:`~nn_tuning.stacked.engine.train_stack`)
    and every fold trains that many epochs.
    A replica is scored by ``protocol.scorer`` on the configuration's own
    estimator, whose raw outputs are the stack's predictions for that fold:
    label decoding, ``predict_proba`` and the scorer are the wrapper's.
    """
    start = time.perf_counter()
    first = chunk[0]
    X_fit = np.asarray(first.estimator.feature_encoder_.transform(X), dtype="float32")
    Y = _targets(first, y)
    trained: dict[tuple[int, int], tuple[np.ndarray, bool]] = {}
    epochs = first.epochs
    for folds in _steps_split(protocol, first.batch_size, first.monitoring.validation_split):
        replicas, keys = [], []
        for b in chunk:
            for k in folds:
                replicas.append(fold_replica(b, protocol, y, k, seed))
                keys.append((b.index, k))
        # Only the first stack watches the deadline; the others train as far as it got.
        result = train_stack(replicas, X_fit, Y, epochs=epochs, batch_size=first.batch_size,
                             predict_rows=[protocol.splits[k][1] for _, k in keys],
                             deadline=deadline if epochs == first.epochs else None,
                             monitoring=first.monitoring)
        epochs = result.epochs
        for key, pred, ok in zip(keys, result.predictions, result.finite):
            trained[key] = (pred, ok)
    seconds = (time.perf_counter() - start) / len(chunk)
    for b in chunk:
        scores, reason = [], None
        for k, (_, valid) in enumerate(protocol.splits):
            pred, ok = trained[(b.index, k)]
            if not ok:
                scores.append(math.nan)
                reason = f"training diverged: non-finite weights after {epochs} epochs"
                continue
            scores.append(_score(protocol, b.estimator, pred, X[valid], y[valid]))
        yield b, scores, seconds, reason, epochs


def _score(protocol: Any, estimator: Any, raw: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """``protocol.scorer(estimator, X, y)`` with the estimator's raw outputs given."""
    with timed("score"):
        return estimator.score_outputs(protocol.scorer, raw, X, y)


def estimated_bytes(chunk: Sequence[Built], protocol: Any) -> int:
    """The planner's memory estimate of ``chunk``'s stack (what ``max_bytes`` bounds)."""
    return _stack_size(chunk, len(protocol.splits),
                       max(len(train) for train, _ in protocol.splits))[1]


def _stack_size(members: Sequence[Built], folds: int, n_rows: int,
                more: int = 0) -> tuple[int, int]:
    """(replicas, estimated bytes) of a stack of ``members``' folds and ``more`` replicas.

    The bytes are those of the loop that trains it: its replicas rounded up
    as a new loop's are (:mod:`.compiled`).
    """
    depth = max(len(m.structure.hidden) for m in members)
    width = max((h.units for m in members for h in m.structure.hidden), default=0)
    s, b = members[-1].structure, members[-1]
    n = len(members) * folds + more
    conv_weights, conv_values = conv_sizes([m.structure for m in members])
    return n, stack_bytes(round_up(n), depth, width,
                          max(m.structure.input_dim for m in members), s.output_units,
                          b.batch_size, n_rows, conv_weights=conv_weights,
                          conv_values=conv_values)


class _Chunker:
    """Configurations, one at a time, into stacks: :func:`plan_chunks`' rule, online.

    :meth:`add` returns the chunks that are complete once a configuration
    joins (a chunk is complete when the next member of its group does not
    fit, or when no configuration at all could fit); :meth:`rest` the open
    ones. The chunks are those :func:`plan_chunks` makes of the same
    configurations in the same order: they depend on the run's settings only.
    """

    def __init__(self, protocol: Any, max_replicas: int, max_bytes: int) -> None:
        self.protocol, self.max_replicas, self.max_bytes = protocol, max_replicas, max_bytes
        self.folds = len(protocol.splits)
        self.n_rows = max(len(train) for train, _ in protocol.splits)
        self.open: dict[tuple, list[Built]] = {}

    def _over(self, members: Sequence[Built]) -> bool:
        n, size = _stack_size(members, self.folds, self.n_rows)
        return n > self.max_replicas or size > self.max_bytes

    def add(self, b: Built) -> list[list[Built]]:
        key = _group_key(b, self.protocol)
        chunk = self.open.pop(key, [])
        done = []
        if chunk and self._over(chunk + [b]):
            done.append(chunk)
            chunk = []
        chunk.append(b)
        # Adding any member only adds replicas and never shrinks the widest layer,
        # so a chunk that one more replica's worth would overflow is complete now.
        n, size = _stack_size(chunk, self.folds, self.n_rows, more=self.folds)
        if n > self.max_replicas or size > self.max_bytes:
            done.append(chunk)
        else:
            self.open[key] = chunk
        return done

    def rest(self) -> list[list[Built]]:
        chunks = sorted(self.open.values(), key=lambda c: c[0].index)
        self.open = {}
        return chunks


def stacked_trials(protocol: Any, X: np.ndarray, y: np.ndarray,
                   configs: Sequence[Mapping[str, Any]], **kwargs: Any) -> Iterator[Any]:
    """:func:`stacked_groups`' trials one by one."""
    for group in stacked_groups(protocol, X, y, configs, **kwargs):
        yield from group


def stacked_groups(protocol: Any, X: np.ndarray, y: np.ndarray,
                   configs: Sequence[Mapping[str, Any]], *, seed: int,
                   fallback: Callable[[list[dict[str, Any]]], Iterator[Any]],
                   max_replicas: int = DEFAULT_MAX_REPLICAS, max_bytes: int = DEFAULT_MAX_BYTES,
                   logged: dict[str, int] | None = None,
                   stopping: Callable[[], bool] = lambda: False,
                   deadline: float | None = None,
                   executor: Any = None) -> Iterator[list[Any]]:
    """Trials of ``configs``: stackable ones through stacks, the rest through ``fallback``.

    Configurations are built one at a time and a stack trains as soon as its
    chunk is complete, so at most about one stack's worth of configurations
    per group is held (never the whole batch), and each one's Keras model is
    released once its structure and initial weights are read. Trials are
    yielded as each stack finishes. A configuration whose model cannot stack
    goes to ``fallback`` (the per-configuration evaluator) before the next
    stack that starts after it, with its reason warned of once per run
    (``logged`` counts the configurations not stacked, per reason). Once
    ``stopping()`` is true nothing more is built and no new stack starts. Once the ``deadline``
    passes nothing more is built either (what is built trains), and a stack in
    training stops at its next segment of epochs; its trials have the epochs
    they reached as their ``budget``.

    Each complete chunk goes to ``executor``
    (:mod:`nn_tuning.stacked.executors`; trained here, at once, when
    omitted), which may train several at once elsewhere; trials come back in groups, one per
    finished chunk (a fallback trial alone), as each chunk finishes.
    """
    logged = {} if logged is None else logged
    chunker = _Chunker(protocol, max_replicas, max_bytes)
    rest: list[tuple[int, dict[str, Any]]] = []
    builds = 0  # Keras models built since Keras' global state was last freed

    def train(chunk: list[Built] | None) -> Iterator[Any]:
        nonlocal rest, builds
        # The configurations that cannot stack and came before this stack go first.
        first = chunk[0].index if chunk else len(configs)
        before = [params for i, params in rest if i < first]
        rest = [(i, params) for i, params in rest if i >= first]
        if before and not stopping():
            for trial in fallback(before):
                yield [trial]
        if chunk is not None and not stopping():
            if executor is None:
                yield chunk_trials(run_chunk(chunk, protocol, X, y, seed, deadline))
            else:
                yield from executor.submit(chunk, protocol, X, y, seed, deadline)
            # Building a Keras model leaves about 0.3 MB in Keras' and TensorFlow's
            # global state even once the model is dropped (measured: +97 MB over 300
            # builds; flat with this): free it between stacks once enough builds
            # have piled up. Not after every stack: it also drops what later stacks
            # reuse (the seed grid, 3 stacks, took 13.3-14.2 s cold with a clear after
            # each and 12.0 s without, beside 9.9-12.6 s for the code before lazy
            # building, all under the same load).
            if builds >= _BUILDS_PER_CLEAR:
                clear_engines()
                builds = 0

    for i, params in enumerate(configs):
        if stopping():
            yield from _drain(executor)  # the chunks in flight finish and are kept
            return
        if deadline is not None and chunker.open and time.perf_counter() >= deadline:
            # Past the deadline: build no more; what is built trains (a segment at least).
            break
        builds += 1
        try:
            b = build(protocol, X, y, i, params)
        except NotStackable as exc:
            if str(exc) not in logged:
                logger.warning("not stacked, trained one configuration at a time: %s", exc)
            logged[str(exc)] = logged.get(str(exc), 0) + 1
            rest.append((i, dict(params)))
            continue
        except Exception:  # the builder fails: the per-configuration path records why
            rest.append((i, dict(params)))
            continue
        for chunk in chunker.add(b):
            yield from train(chunk)
    for chunk in chunker.rest() + [None]:
        if stopping():
            break
        yield from train(chunk)
    yield from _drain(executor)


def _drain(executor: Any) -> Iterator[list[Any]]:
    if executor is not None:
        yield from executor.drain()


def chunk_trials(results: Iterable[tuple[Built, list[float], float, str | None, int]],
                 worker: str = "main") -> list[Any]:
    """Trials of a chunk from :func:`run_chunk`'s results; ``worker`` trained it."""
    from ..evaluation import trial_from_scores

    out = []
    for b, scores, seconds, reason, epochs in results:
        trial = trial_from_scores(dict(b.params), scores, seconds, reason)
        if epochs < b.epochs:  # stopped by the deadline: a partial-budget trial
            trial.budget = epochs
        trial.engine = "stacked"
        trial.n_params = b.structure.n_params
        trial.worker = worker
        out.append(trial)
    return out
