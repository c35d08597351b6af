"""The comparison report and the TensorBoard HParams logs, from stored trial records."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing import event_accumulator as ea

from nn_tuning import ConfigError, SearchSpace
from nn_tuning.report import build_report, load_run
from nn_tuning.tensorboard_logs import param_columns, write_hparams

SPACE = SearchSpace.from_dict({
    "neurons": [8, 16],
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "activation": ["relu", "tanh"],
    "hidden_layers": [[4, 4], [8]],
})


def _trials(n: int, seed: int, failed: tuple[int, ...] = ()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ok = i not in failed
        score = float(-rng.uniform(0.5, 2)) if ok else math.nan
        rows.append({
            "trial": i, "neurons": int(rng.choice([8, 16])), "n_layers": int(rng.integers(1, 4)),
            "learning_rate": float(10 ** rng.uniform(-4, -1)),
            "activation": str(rng.choice(["relu", "tanh"])),
            "hidden_layers": json.dumps([4, 4] if i % 2 else [8]),
            "mean_score": score, "std_score": 0.1 if ok else math.nan,
            "fold0_score": score, "fit_seconds": 0.5 + i,
            "state": "complete" if ok else "failed",
            "reason": None if ok else "ValueError: boom", "worker": "main", "device": "cpu",
        })
    return pd.DataFrame(rows)


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as nn-tune leaves it (summaries and trials only: no models needed)."""
    for name, n, failed in (("random", 6, (2,)), ("bayesian", 5, ())):
        folder = tmp_path / name
        folder.mkdir()
        trials = _trials(n, seed=len(name), failed=failed)
        trials.to_csv(folder / "trials.csv", index=False)
        best = trials.loc[trials["mean_score"].idxmax()]
        (folder / "summary.json").write_text(json.dumps({
            "strategy": name, "scoring": "neg_root_mean_squared_error", "trials_run": n,
            "trials_failed": len(failed), "best_cv_score": float(best["mean_score"]),
            "best_params": {"neurons": int(best["neurons"])}, "wall_seconds": 12.5,
            "cv_folds": 5, "epochs": 80, "batch_size": 40, "seed": 0,
            "budget": {"max_trials": n}, "target_scaled": True,
            "test_metrics": {"rmse": 0.55, "r2": 0.98, "adjusted_r2": 0.979, "mae": 0.4},
        }))
    (tmp_path / "experiment.json").write_text(json.dumps(
        {"name": "demo", "source": "demo.toml", "builder": {"name": "mlp_regressor"},
         "training": {"epochs": 80, "batch_size": 40, "seed": 0, "cv": 5}}))
    (tmp_path / "data.json").write_text(json.dumps(
        {"source": "advertising", "target": "Sales", "train_rows": 160, "test_rows": 40}))
    return tmp_path


def test_report_tables_every_strategy(run_dir):
    path = build_report(run_dir)
    text = path.read_text()
    assert path == run_dir / "report.md"
    assert text.startswith("# nn-tune report: demo")
    header = next(line for line in text.splitlines() if line.startswith("| strategy"))
    for col in ("trials run", "best CV score", "test RMSE", "test R²", "test adj. R²", "wall s"):
        assert col in header
    rows = [line for line in text.splitlines() if line.startswith("| random")
            or line.startswith("| bayesian")]
    assert len(rows) == 2 and "| 6 | 1 |" in rows[0]
    assert text.index("| random") < text.index("| bayesian")  # strategy order, not alphabetical
    assert "standardised" in text and "160 training / 40 test rows" in text


def test_report_plots_are_pngs(run_dir):
    build_report(run_dir)
    for name in ("best_so_far.png", "score_by_hyperparameter.png"):
        data = (run_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_report_of_a_classification_run(run_dir):
    summary = json.loads((run_dir / "random" / "summary.json").read_text())
    summary["test_metrics"] = {"accuracy": 0.9, "f1_macro": 0.88}
    (run_dir / "random" / "summary.json").write_text(json.dumps(summary))
    text = build_report(run_dir).read_text()
    assert "test accuracy" in text and "test macro F1" in text


def test_report_errors(tmp_path):
    with pytest.raises(ConfigError, match="run folder not found"):
        build_report(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no strategy results"):
        load_run(tmp_path)


def test_param_columns():
    assert param_columns(_trials(2, 0)) == ["neurons", "n_layers", "learning_rate", "activation",
                                            "hidden_layers"]
    assert param_columns(pd.DataFrame({"x": [1]})) == []


def test_hparams_logs_read_back_with_tensorboard(tmp_path):
    trials = _trials(4, seed=1, failed=(3,))
    logdir = tmp_path / "tb"
    (logdir / "stale").mkdir(parents=True)
    assert write_hparams(trials, SPACE, "neg_root_mean_squared_error", logdir) == 4
    assert sorted(p.name for p in logdir.iterdir() if p.is_dir()) == [
        "trial-0000", "trial-0001", "trial-0002", "trial-0003"]
    root = ea.EventAccumulator(str(logdir))
    root.Reload()
    assert "_hparams_/experiment" in root.PluginTagToContent("hparams")
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = root.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    names = {h.name for h in experiment.hparam_infos}
    assert names == set(param_columns(trials))
    assert {m.name.tag for m in experiment.metric_infos} >= {"cv_score"}
    for i in range(4):
        acc = ea.EventAccumulator(str(logdir / f"trial-{i:04d}"), size_guidance={ea.TENSORS: 0})
        acc.Reload()
        start = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        info = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info
        assert info.hparams["activation"].string_value == trials.loc[i, "activation"]
        assert info.hparams["neurons"].number_value == trials.loc[i, "neurons"]
        tags = acc.Tags()["tensors"]
        if i == 3:
            assert "cv_score" not in tags  # a failed trial has no score
        else:
            import tensorflow as tf

            value = float(tf.make_ndarray(acc.Tensors("cv_score")[0].tensor_proto))
            assert value == pytest.approx(trials.loc[i, "mean_score"], rel=1e-6)


def test_hparams_without_a_space(tmp_path):
    assert write_hparams(_trials(2, seed=2), None, "r2", tmp_path / "tb") == 2
