"""The evaluator seam: every evaluator trains a batch into trials; one chooser picks one."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from model_builders import mlp_regressor
from nn_tuning import ConfigError, TrialState
from nn_tuning.evaluation import make_protocol
from nn_tuning.evaluators import (
    DaskEvaluator,
    Evaluator,
    InProcessEvaluator,
    RecycledProcessEvaluator,
    StackedEvaluator,
    WorkerProcessEvaluator,
    choose_evaluator,
)
from nn_tuning.scaleout import ScaleOut
from nn_tuning.stacked.executors import InProcessExecutor, ProcessExecutor
from nn_tuning.store import TrialStore
from nn_tuning.strategies.base import BudgetSpent, SearchContext

CONFIGS = [{"neurons": n, "activation": "relu", "learning_rate": 0.05} for n in (3, 4, 5, 6, 7)]


@pytest.fixture(scope="module")
def protocol(advertising):
    X, y = advertising
    return make_protocol(mlp_regressor, X, y, cv=2, epochs=3, batch_size=40, seed=0)


def test_the_chooser_picks_from_the_run_settings(protocol, advertising):
    X, y = advertising
    pick = lambda engine, **scale: choose_evaluator(engine, ScaleOut(**scale), protocol, X, y)  # noqa: E731
    assert type(pick("keras")) is InProcessEvaluator
    assert type(pick("keras", workers=2)) is WorkerProcessEvaluator
    for engine in ("auto", "stacked"):  # the stacked engine, falling back to the same choice
        assert type(pick(engine)) is StackedEvaluator
        assert type(pick(engine).fallback) is InProcessEvaluator
        assert type(pick(engine, workers=2).fallback) is WorkerProcessEvaluator
        # Whole stacks go where the settings say: here, or one worker process per chunk.
        assert type(pick(engine).executor) is InProcessExecutor
        assert type(pick(engine, workers=2).executor) is ProcessExecutor
    # A keras-tuner worker stacks what it asks its chief for; the rest goes to its recycled
    # child process, one configuration at a time.
    assert type(pick("auto", worker_of="127.0.0.1:1").fallback) is RecycledProcessEvaluator
    assert type(pick("keras", worker_of="127.0.0.1:1")) is RecycledProcessEvaluator
    assert type(pick("stacked", worker_of="127.0.0.1:1").fallback) is RecycledProcessEvaluator
    assert issubclass(DaskEvaluator, Evaluator)
    with pytest.raises(ConfigError, match="engine must be one of auto, keras, stacked, got 'fused'"):
        pick("fused")


def test_an_evaluator_gets_everything_the_protocol_fixes(protocol):
    # What a training engine needs besides X, y: the estimator holds the builder, its fixed
    # arguments and the training settings.
    assert protocol.estimator.model is mlp_regressor and protocol.estimator.fast
    assert (protocol.epochs, protocol.batch_size, protocol.seed, protocol.task) == \
        (3, 40, 0, "regression")
    assert len(protocol.splits) == 2 and protocol.scoring == "r2"
    assert protocol.with_epochs(5).estimator.epochs == 5 and protocol.with_epochs(5).epochs == 5
    assert protocol.with_epochs(None) is protocol


def test_in_process_yields_one_trial_per_configuration_and_stops_between_them(protocol,
                                                                              advertising):
    X, y = advertising
    evaluator = InProcessEvaluator(protocol, X, y)
    trials = list(evaluator.evaluate(CONFIGS[:2]))
    assert [t.params for t in trials] == CONFIGS[:2]
    assert all(t.state is TrialState.COMPLETE and len(t.fold_scores) == 2 for t in trials)
    it = evaluator.evaluate(CONFIGS)
    next(it)
    evaluator.stop()
    assert list(it) == []


def test_a_keras_tuner_worker_moves_trials_to_recycled_processes_with_the_same_scores(
        protocol, advertising):
    X, y = advertising
    in_process = list(InProcessEvaluator(protocol, X, y).evaluate(CONFIGS))
    with RecycledProcessEvaluator(protocol, X, y, in_process=2, per_child=2) as evaluator:
        recycled = list(evaluator.evaluate(CONFIGS))
        assert isinstance(evaluator.pool, ProcessPoolExecutor)
    assert evaluator.pool is None  # released by close()
    assert [t.state for t in recycled] == [TrialState.COMPLETE] * len(CONFIGS)
    np.testing.assert_allclose([t.mean_score for t in recycled],
                               [t.mean_score for t in in_process], rtol=1e-6)


def test_worker_processes_score_a_batch_like_this_process(protocol, advertising):
    X, y = advertising
    in_process = list(InProcessEvaluator(protocol, X, y).evaluate(CONFIGS[:4], epochs=2))
    with WorkerProcessEvaluator(protocol, X, y, workers=2) as evaluator:
        assert evaluator.batch_limit == 4
        two = list(evaluator.evaluate(CONFIGS[:4], epochs=2))
    assert [t.params for t in two] == CONFIGS[:4]
    np.testing.assert_allclose([t.mean_score for t in two],
                               [t.mean_score for t in in_process], rtol=1e-4)


class _Counting(InProcessEvaluator):
    """Counts what it is asked to train."""

    def __init__(self, *args):
        super().__init__(*args)
        self.asked = []

    def evaluate(self, batch, *, epochs=None):
        self.asked.extend(dict(p) for p in batch)
        yield from super().evaluate(batch, epochs=epochs)


def test_the_context_skips_stored_trains_duplicates_once_and_records_each(protocol,
                                                                          advertising):
    X, y = advertising
    store = TrialStore()
    evaluator = _Counting(protocol, X, y)
    ctx = SearchContext(protocol=protocol, X=X, y=y, space=None, store=store, evaluator=evaluator)
    first = ctx.evaluate([CONFIGS[0]])
    assert len(store) == 1 and first[0].number == 0
    trials = ctx.evaluate([CONFIGS[1], CONFIGS[0], CONFIGS[1], CONFIGS[2]])
    assert evaluator.asked == [CONFIGS[0], CONFIGS[1], CONFIGS[2]]  # each trained once
    assert [t.params for t in trials] == [CONFIGS[1], CONFIGS[0], CONFIGS[1], CONFIGS[2]]
    assert trials[0] is trials[2] and trials[1].number == 0
    assert len(store) == 3 and ctx.repeats == 1 and ctx.resumed == 0


def test_the_context_stops_at_the_deadline_keeping_finished_trials(protocol, advertising):
    X, y = advertising
    store = TrialStore()
    ctx = SearchContext(protocol=protocol, X=X, y=y, space=None, store=store,
                        evaluator=InProcessEvaluator(protocol, X, y), deadline=0.0)
    with pytest.raises(BudgetSpent):
        ctx.evaluate(CONFIGS)
    assert len(store) == 1  # the first trial always runs; none starts after the deadline
    with pytest.raises(BudgetSpent):
        ctx.evaluate(CONFIGS)
    assert len(store) == 1


def test_the_search_path_fits_each_fold_on_its_own_sample_weights(advertising):
    """scikit-learn's search slices fit= sample weights per fold as cross_validate does, and
    scores stay unweighted (scikit-learn >= 1.7 would weigh its scorer's too)."""
    X, y = advertising[0][:80], advertising[1][:80]
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(X))
    weighted = make_protocol(mlp_regressor, X, y, cv=2, epochs=2, batch_size=16, seed=0,
                             fit={"sample_weight": w, "shuffle": False})
    plain = make_protocol(mlp_regressor, X, y, cv=2, epochs=2, batch_size=16, seed=0,
                          fit={"shuffle": False})
    configs = CONFIGS[:2]
    with WorkerProcessEvaluator(weighted, X, y, workers=1) as evaluator:
        search = [t.fold_scores for t in evaluator.evaluate(configs)]
    one_by_one = [t.fold_scores for t in InProcessEvaluator(weighted, X, y).evaluate(configs)]
    unweighted = [t.fold_scores for t in InProcessEvaluator(plain, X, y).evaluate(configs)]
    np.testing.assert_allclose(search, one_by_one, rtol=1e-6)
    assert not np.allclose(search, unweighted, rtol=1e-4)
