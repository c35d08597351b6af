"""The comparison report and the TensorBoard HParams logs, from stored trial records."""

from __future__ import annotations

import json
import math
import re

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
    table = text[text.index("| strategy"):text.index("## Best configurations")]
    rows = [line for line in table.splitlines() if line.startswith("| random")
            or line.startswith("| bayesian")]
    assert len(rows) == 2 and "| finished | 6 | 1 |" in rows[0]
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


# --- run folders written through the real trial store (tests/run_folders.py) -------------

_PLOTS = ("best_so_far.png", "score_by_hyperparameter.png", "importance.png",
          "parallel_coordinates.png", "score_vs_size.png")


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


@pytest.fixture
def store_run(tmp_path):
    from run_folders import make_run

    return make_run(tmp_path / "run", {"manual": 3, "random": 40, "hyperband": 12})


def test_report_of_a_finished_run_has_every_plot(store_run):
    text = build_report(store_run).read_text()
    for name in _PLOTS:
        data = (store_run / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"]({name})" in text
    assert "Partial results" not in text
    assert (store_run / "report.html").is_file()


def test_importance_finds_the_hyperparameter_that_matters(store_run):
    from nn_tuning.report._importance import STUDY, importances

    found = importances(load_run(store_run))
    assert set(found) == {"manual", "random", "hyperband", STUDY}
    random = found["random"]
    assert random["reliable"] and random["note"] == ""
    assert max(random["importances"], key=random["importances"].get) == "learning_rate"
    assert sum(random["importances"].values()) == pytest.approx(1.0)
    study = found[STUDY]
    assert max(study["importances"], key=study["importances"].get) == "learning_rate"
    # 10 complete Hyperband trials over 5 hyperparameters (its epochs budget included).
    hyperband = found["hyperband"]
    assert not hyperband["reliable"] and "epochs" in hyperband["params"]
    assert hyperband["note"].startswith("unreliable: 11 complete trials")
    assert found["manual"]["note"].startswith("unreliable") or \
        found["manual"]["note"].startswith("not computed")
    text = _section(build_report(store_run).read_text(), "Hyperparameter importance")
    assert "| learning_rate |" in text and "whole study" in text
    assert "**hyperband**: unreliable" in text


def test_smallest_good_network_in_the_report(store_run):
    from nn_tuning.result import one_standard_error

    runs = load_run(store_run)
    text = _section(build_report(store_run).read_text(), "Smallest good network")
    random = runs["random"]
    expected = one_standard_error(random["trials"])
    assert random["simplest"]["n_params"] == expected["n_params"]
    row = next(line for line in text.splitlines() if line.startswith("| random"))
    assert f"| {expected['n_params']:,} |" in row
    # Hyperband's partial-budget (2-epoch) trials are left out.
    hb = runs["hyperband"]
    assert hb["simplest"]["params"]["epochs"] == 6
    assert "**Whole study:**" in text


def test_report_of_a_killed_run_from_the_store_alone(tmp_path):
    from run_folders import make_run

    run = make_run(tmp_path / "run", {"random": 30, "bayesian": 8}, unfinished=("bayesian",))
    (run / "random" / "trials.csv").unlink()  # the store is enough
    runs = load_run(run)
    assert runs["bayesian"]["partial"] and not runs["random"]["partial"]
    partial = runs["bayesian"]["summary"]
    assert partial["trials_run"] == 8 and partial["trials_failed"] == 1
    assert runs["bayesian"]["elapsed"] is not None  # wall-clock time from the sessions
    text = build_report(run).read_text()
    assert "> **Partial results.** Still running or stopped before the end: bayesian " \
           "(8 trials so far)" in text
    assert "| bayesian | **partial** | 8 | 1 |" in text
    for name in _PLOTS:
        assert (run / name).is_file(), name
    html = (run / "report.html").read_text()
    assert "Partial results" in html


def test_report_of_a_run_with_no_summaries_at_all(tmp_path):
    from run_folders import make_run

    run = make_run(tmp_path / "run", {"grid": 6}, unfinished=("grid",))
    text = build_report(run).read_text()
    assert "| grid | **partial** | 6 | 1 |" in text


def test_old_run_folders_say_sizes_are_unknown(tmp_path):
    from run_folders import make_run

    run = make_run(tmp_path / "run", {"random": 10}, known_sizes=False)
    for path in run.glob("*/trials.db"):
        path.unlink()  # as an older version left it: trials.csv only, no counts
    text = build_report(run).read_text()
    assert "| random | – | – | – | unknown | – |" in text
    assert "counts are unknown for random" in text
    assert not (run / "score_vs_size.png").exists()
    assert "summed trial time" in text


def test_report_html_is_self_contained(store_run):
    import base64
    import re

    build_report(store_run)
    html = (store_run / "report.html").read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(sources) == len(_PLOTS)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in html and "http://" not in html and "https://" not in html


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (Debian: "
                    "apt-get install chromium; .ci/run installs it)")
def test_report_html_renders_in_headless_chromium(store_run, tmp_path):
    import subprocess

    from PIL import Image

    build_report(store_run)
    alone = tmp_path / "alone"  # the page alone, away from its PNGs: nothing else to load
    alone.mkdir()
    probe = ("<script>window.addEventListener('load', () => {document.body.setAttribute("
             "'data-images', JSON.stringify(Array.from(document.images, i => "
             "[i.complete, i.naturalWidth, i.naturalHeight])));});</script>")
    page = (store_run / "report.html").read_text().replace("</body>", probe + "</body>")
    (alone / "report.html").write_text(page)
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--virtual-time-budget=10000"]
    url = (alone / "report.html").as_uri()
    dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=180)
    found = re.search(r'data-images="([^"]*)"', dom.stdout)
    assert found, f"no DOM from Chromium: {dom.stderr[-2000:]}"
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(images) == len(_PLOTS)
    assert all(done and w > 300 and h > 200 for done, w, h in images), images
    hidden = alone / "hidden.html"  # the same page with its images hidden
    hidden.write_text(page.replace("</head>", "<style>img {visibility: hidden}</style></head>"))
    shots = []
    for i, target in enumerate((url, hidden.as_uri())):
        shot = tmp_path / f"shot{i}.png"
        subprocess.run([*flags, f"--user-data-dir={tmp_path / f'profile{i + 2}'}",
                        f"--screenshot={shot}", "--window-size=1280,9000", target],
                       capture_output=True, timeout=180)
        shots.append(np.asarray(Image.open(shot).convert("L"), dtype=int))
    page_px, blank_px = shots
    assert page_px.shape[0] >= 9000 * 0.9
    ink = page_px < 200  # text, axes, lines, bars and dots
    drawn = ink & ~(blank_px < 200)  # ... that only the images put there
    assert drawn.mean() > 0.005, f"the plots add only {drawn.mean():.3%} of the page's ink"
    rows = np.flatnonzero(drawn.sum(axis=1) > 10)
    assert len(rows) > 1000 and rows.max() - rows.min() > 2500, (len(rows), rows.min(), rows.max())


def test_report_facade():
    import types

    import nn_tuning.report as report

    public = {n for n, v in vars(report).items() if not n.startswith("_")
              and not isinstance(v, types.ModuleType) and n != "annotations"}
    assert sorted(report.__all__) == sorted(public)


_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from run_folders import _trials
import numpy as np
from nn_tuning.store import TrialStore
store = TrialStore(sys.argv[1], fingerprint="live")
for trial in _trials("random", 25, np.random.default_rng(0), True):
    store.add(trial)
print("ready", flush=True)
time.sleep(120)
"""


def test_report_of_a_run_going_on_in_another_process_then_killed(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    run = tmp_path / "run"
    (run / "random").mkdir(parents=True)
    (run / "experiment.json").write_text(json.dumps(
        {"name": "live", "training": {"scoring": "r2", "epochs": 6, "cv": 3}}))
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(run / "random" / "trials.db"),
         str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        text = build_report(run).read_text()  # the writer still holds the store open
        assert "| random | **partial** | 25 | 1 |" in text
        assert (run / "best_so_far.png").is_file() and (run / "report.html").is_file()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    (run / "report.md").unlink()
    text = build_report(run).read_text()  # killed: whatever SQLite left behind is read
    assert "| random | **partial** | 25 | 1 |" in text
    assert load_run(run)["random"]["elapsed"] is not None


def test_a_strategy_killed_before_its_first_trial(tmp_path):
    from run_folders import make_run

    from nn_tuning.store import TrialStore

    run = make_run(tmp_path / "run", {"random": 6})
    (run / "bayesian").mkdir()
    TrialStore(run / "bayesian" / "trials.db", fingerprint="fp").close()
    text = build_report(run).read_text()
    assert "| bayesian | **partial** | 0 | 0 |" in text
    assert "- **bayesian** (budget {}): no complete trial yet" in text
    assert "| bayesian | – | – | – | no complete trial yet | – |" in text
    assert "counts are unknown" not in text
