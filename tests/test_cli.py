"""The ``nn-tune`` command line: run, compare, report, doctor and bad input.

Real TensorFlow with tiny budgets (2 folds, 2 epochs, a few trials).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pandas as pd
import pytest

from nn_tuning import cli

STRATEGIES = ("manual", "grid", "random", "bayesian", "hyperband")

TINY = """
name = "tiny"
description = "A tiny Advertising study for the tests."
[data]
dataset = "advertising"
features = ["TV", "Radio", "Newspaper"]
target = "Sales"
test_size = 0.2
scale_target = true
[builder]
name = "mlp_regressor"
args = { n_layers = 1 }
[space]
activation = ["relu", "linear"]
neurons = [4]
optimizer = ["Adam"]
[training]
cv = 2
scoring = "neg_root_mean_squared_error"
epochs = 2
batch_size = 40
seed = 0
[strategies.manual]
configs = [{ activation = "relu", neurons = 4, optimizer = "Adam" }]
[strategies.grid]
[strategies.random]
max_trials = 2
[strategies.bayesian]
max_trials = 2
num_initial_points = 1
[strategies.hyperband]
max_trials = 2
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One ``nn-tune compare`` of all five strategies, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("compare")
    config = _write(root / "tiny.toml", TINY)
    out = root / "run"
    code = cli.main(["compare", str(config), "--out", str(out), "--quiet",
                     "--strategies", ",".join(STRATEGIES)])
    assert code == 0
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_writes_every_file(compared):
    for name in STRATEGIES:
        folder = compared / name
        for file in ("trials.csv", "best_params.json", "best_model.keras", "summary.json"):
            assert (folder / file).is_file(), f"{name}/{file}"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["strategy"] == name
        assert summary["trials_run"] == len(pd.read_csv(folder / "trials.csv"))
        # manual: its one config; grid: its 2 points; the others: at most their budget of 2
        if name in ("manual", "grid"):
            assert summary["trials_run"] == {"manual": 1, "grid": 2}[name]
        assert 1 <= summary["trials_run"] <= 2
        assert set(summary["test_metrics"]) >= {"rmse", "r2", "adjusted_r2"}
        assert summary["test_metrics"]["rmse"] > 0 and summary["wall_seconds"] > 0
        assert "budget" in summary and summary["target_scaled"] is True
        assert len(pd.read_csv(folder / "trials.csv")) == summary["trials_run"]
    for file in ("report.md", "best_so_far.png", "score_by_hyperparameter.png", "config.toml",
                 "experiment.json", "versions.json", "data.json"):
        assert (compared / file).is_file(), file
    assert (compared / "config.toml").read_text() == TINY
    versions = json.loads((compared / "versions.json").read_text())
    assert versions["tensorflow"] and versions["keras"] and versions["scikit-learn"]
    report = (compared / "report.md").read_text()
    for name in STRATEGIES:
        assert f"| {name} |" in report
    assert "test RMSE" in report and "test adj. R²" in report and "standardised" in report


def test_same_folds_and_budget_for_every_strategy(compared):
    summaries = [json.loads((compared / s / "summary.json").read_text()) for s in STRATEGIES]
    assert {(s["cv_folds"], s["seed"], s["epochs"], s["batch_size"]) for s in summaries} \
        == {(2, 0, 2, 40)}


def test_best_model_loads_in_safe_mode(compared):
    model = keras.saving.load_model(compared / "random" / "best_model.keras", safe_mode=True)
    assert model.predict(keras.ops.zeros((2, 3)), verbose=0).shape == (2, 1)


def test_hparams_logs_are_readable_by_tensorboard(compared):
    from tensorboard.backend.event_processing import event_accumulator as ea

    for name in STRATEGIES:
        logdir = compared / name / "tensorboard"
        trials = pd.read_csv(compared / name / "trials.csv")
        runs = sorted(p for p in logdir.iterdir() if p.is_dir())
        assert len(runs) == len(trials)
        root = ea.EventAccumulator(str(logdir))
        root.Reload()
        assert "_hparams_/experiment" in root.PluginTagToContent("hparams")
        acc = ea.EventAccumulator(str(runs[0]), size_guidance={ea.TENSORS: 0})
        acc.Reload()
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
        score = acc.Tensors("cv_score")[0]
        first = trials.sort_values("trial").iloc[0]
        value = float(keras.ops.convert_to_numpy(
            __import__("tensorflow").make_ndarray(score.tensor_proto)))
        assert value == pytest.approx(first["mean_score"], rel=1e-5)


def test_report_rebuilds_from_the_run_folder(compared, capsys):
    for file in ("report.md", "best_so_far.png", "score_by_hyperparameter.png"):
        (compared / file).unlink()
    assert cli.main(["report", str(compared)]) == 0
    assert (compared / "report.md").is_file() and (compared / "best_so_far.png").is_file()
    assert "report.md" in capsys.readouterr().out


def test_rerun_of_the_same_run_resumes(compared, capsys):
    before = json.loads((compared / "random" / "summary.json").read_text())
    code = cli.main(["run", str(compared / "config.toml"), "--strategy", "random",
                     "--out", str(compared), "--quiet"])
    assert code == 0
    after = json.loads((compared / "random" / "summary.json").read_text())
    assert after["resumed_trials"] == before["trials_run"] == after["trials_run"]


IRIS = """
name = "iris"
[data]
dataset = "iris"
[builder]
name = "mlp_classifier"
"""


def test_run_one_strategy_on_a_classifier(tmp_path, capsys):
    config = _write(tmp_path / "iris.toml", IRIS + """[space]
neurons = [4, 8]
[training]
epochs = 2
scoring = "accuracy"
[strategies.random]
max_trials = 5
[strategies.manual]
configs = [{ neurons = 4 }]
""")
    out = tmp_path / "out"
    code = cli.main(["run", str(config), "--strategy", "random", "--out", str(out),
                     "--max-trials", "2", "--epochs", "2", "--cv", "2", "--seed", "3", "--quiet",
                     "--device", "cpu"])
    assert code == 0
    assert not (out / "manual").exists()
    summary = json.loads((out / "random" / "summary.json").read_text())
    assert set(summary["test_metrics"]) == {"accuracy", "f1_macro"}
    assert summary["trials_run"] == 2 and summary["seed"] == 3 and summary["cv_folds"] == 2
    assert "test macro F1" in (out / "report.md").read_text()
    assert set(pd.read_csv(out / "random" / "trials.csv")["device"]) == {"cpu"}
    assert "random" in capsys.readouterr().out


def test_compare_without_config_runs_the_embedded_advertising_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["compare", "--strategies", "manual", "--max-trials", "1", "--epochs", "1",
                     "--cv", "2", "--quiet"])
    assert code == 0
    run = tmp_path / "runs" / "advertising"
    summary = json.loads((run / "manual" / "summary.json").read_text())
    assert summary["trials_run"] == 1 and summary["epochs"] == 1
    source = json.loads((run / "experiment.json").read_text())["source"]
    assert source == "<bundled advertising.toml>"


def test_overwrite_replaces_an_earlier_run(compared, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(compared, out)
    code = cli.main(["run", str(compared / "config.toml"), "--strategy", "manual",
                     "--out", str(out), "--epochs", "1", "--overwrite", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["manual"]
    assert json.loads((out / "manual" / "summary.json").read_text())["epochs"] == 1


def test_doctor_is_healthy_here(capsys):
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("tensorflow", "keras", "keras-tuner", "scikeras", "scikit-learn", "tensorboard",
                 "devices", "classifier wrapper"):
        assert name in out
    assert "BAD" not in out and "CPU" in out


def test_doctor_reports_each_problem_with_a_fix(monkeypatch, capsys):
    from nn_tuning import doctor

    checks = [doctor.Check("keras", True, "3.0"),
              doctor.Check("tensorboard", False, "cannot import tensorboard", "pip install x")]
    monkeypatch.setattr(doctor, "run_checks", lambda: checks)
    assert cli.main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "BAD tensorboard" in captured.out
    assert captured.err.strip() == "fix: tensorboard: pip install x"


# Bad input --------------------------------------------------------------------------

BAD_CSV = "TV,Radio,Sales\n1,2,3\n4,oops,6\n7,8,9\n10,11,12\n13,14,15\n"


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    def cfg(name: str, text: str) -> str:
        return str(_write(tmp / name, text))

    csv = _write(tmp / "ads.csv", BAD_CSV.replace("oops", "5"))
    bad_csv = _write(tmp / "bad.csv", BAD_CSV)
    csv_cfg = TINY.replace('dataset = "advertising"', f'csv = "{csv}"').replace(
        'features = ["TV", "Radio", "Newspaper"]', 'features = ["TV", "Radio"]')
    return [
        (["run", str(tmp / "missing.toml")], r"config file not found: '.*missing\.toml'"),
        (["run", cfg("malformed.toml", "[data\n")], r"malformed\.toml: malformed TOML"),
        (["run", cfg("key.toml", TINY.replace("test_size", "tset_size"))],
         r"key\.toml: unknown key 'data\.tset_size'; allowed: dataset"),
        (["run", cfg("builder.toml", TINY.replace('"mlp_regressor"', '"resnet"'))],
         r"builder\.toml: unknown builder\.name 'resnet'; choose one of cnn_classifier"),
        (["run", cfg("strat.toml", TINY.replace("[strategies.grid]", "[strategies.anneal]"))],
         r"strat\.toml: unknown strategy 'strategies\.anneal'"),
        (["compare", cfg("ok.toml", TINY), "--strategies", "manual,genetic"],
         r"unknown strategy 'genetic'; choose one of manual, grid"),
        (["run", cfg("target.toml", csv_cfg.replace('target = "Sales"', 'target = "Revenue"'))],
         r"target\.toml: .*ads\.csv: data\.target column 'Revenue' is not in the data; "
         r"columns are TV, Radio, Sales"),
        (["run", cfg("nonnum.toml", csv_cfg.replace(str(csv), str(bad_csv)))],
         r"nonnum\.toml: .*bad\.csv: feature column 'Radio' is not numeric \(row 1: 'oops'\)"),
        (["run", cfg("inf.toml", csv_cfg.replace(str(csv), str(_write(
            tmp / "inf.csv", BAD_CSV.replace("oops", "inf")))))],
         r"inf\.toml: .*inf\.csv: feature column 'Radio' has an infinite value at row 1 \(inf\)"),
        (["run", cfg("cv.toml", TINY), "--cv", "1"],
         r"argument --cv: expected an integer >= 2, got '1'"),
        (["run", cfg("empty.toml", TINY.replace(
            'activation = ["relu", "linear"]\nneurons = [4]\noptimizer = ["Adam"]', ""))],
         r"empty\.toml: the \[space\] table is empty"),
        (["run", cfg("nocsv.toml", csv_cfg.replace(str(csv), str(tmp / "nowhere.csv")))],
         r"nocsv\.toml: data\.csv file not found: '.*nowhere\.csv'"),
        (["run", cfg("arg.toml", TINY.replace("n_layers = 1", "n_layer = 1"))],
         r"arg\.toml: unknown key 'builder\.args\.n_layer'; allowed: neurons"),
        (["run", cfg("type.toml", TINY.replace("batch_size = 40", 'batch_size = "big"'))],
         r"type\.toml: training\.batch_size must be an integer >= 1, got 'big'"),
        (["run", cfg("other.toml", TINY), "--strategy", "grid"],  # a different run, same --out
         r"holds a different run .*pass --overwrite"),
        (["run", cfg("ok2.toml", TINY), "--max-trials", "0"],
         r"argument --max-trials: expected an integer >= 1, got '0'"),
        (["report", str(tmp)], r"holds no strategy results"),
        _missing_gpu_case(cfg("gpu.toml", TINY)),
    ]


def _missing_gpu_case(config: str) -> tuple[list[str], str]:
    """Asking for a GPU the machine lacks, on a machine with GPUs or without."""
    import tensorflow as tf

    n_gpus = len(tf.config.list_physical_devices("GPU"))
    if n_gpus == 0:
        return ["run", config, "--device", "gpu"], r"gpu\.toml: training\.device 'gpu': .*sees no GPU"
    return (["run", config, "--device", "gpu", "--gpus", str(n_gpus)],
            rf"gpu\.toml: training\.device 'gpu': gpus \[{n_gpus}\] do not exist")


def test_bad_input_is_one_line_exit_2_and_leaves_earlier_results_alone(compared, tmp_path,
                                                                       capsys):
    before = _snapshot(compared)
    cases = _bad_cases(tmp_path)
    for argv, pattern in cases:
        if argv[0] != "report":
            argv = [*argv, "--out", str(compared), "--quiet"]
            if "other.toml" in argv[1]:
                argv += ["--epochs", "3"]
        code = cli.main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert "\n" not in err and "Traceback" not in err, err
        assert err.startswith("nn-tune: error: "), err
        assert re.match(r"nn-tune: error: [^'\"]", err), err
        assert re.search(pattern, err), (pattern, err)
    assert _snapshot(compared) == before


def _nn_tune() -> list[str]:
    script = shutil.which("nn-tune") or str(Path(sys.executable).with_name("nn-tune"))
    return [script] if os.path.exists(script) else [sys.executable, "-m", "nn_tuning.cli"]


def test_console_script_reports_bad_config_without_traceback(tmp_path):
    config = _write(tmp_path / "bad.toml", TINY.replace("[builder]", "[builder]\ncolour = 1"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([*_nn_tune(), "run", str(config), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"nn-tune: error: {config}: unknown key 'builder.colour'; "
                    "allowed: name, args")
    assert not (tmp_path / "o").exists()


def test_run_says_which_fit_settings_did_not_stack(tmp_path, capsys):
    config = _write(tmp_path / "iris.toml", IRIS + """[training]
epochs = 2
cv = 2
[training.fit]
class_weight = "balanced"
validation_split = 0.25
early_stopping = { monitor = "loss", patience = 1 }
[strategies.manual]
configs = [{ neurons = 4 }, { neurons = 6 }]
""")
    out = tmp_path / "out"
    assert cli.main(["run", str(config), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    reason = "fit setting validation_split with class_weight is not stacked yet"
    err = capsys.readouterr().err
    assert err.count(f"nn-tune: not stacked, trained one configuration at a time: {reason}") == 1
    summary = json.loads((out / "manual" / "summary.json").read_text())
    assert summary["not_stacked"] == {reason: 2}
    assert set(pd.read_csv(out / "manual" / "trials.csv")["engine"]) == {"keras"}
    report = (out / "report.md").read_text()
    assert f"- manual: 2 configuration(s) not stacked, trained one at a time: {reason}" in report
    assert '"class_weight": "balanced"' in report
