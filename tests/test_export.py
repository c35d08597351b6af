"""``nn-tune export RUN --optuna URL``: each strategy's trials as an Optuna study,
loaded back with Optuna and compared with the run's own records."""

from __future__ import annotations

import hashlib
import json
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from nn_tuning import ConfigError, cli
from nn_tuning.export import export_optuna
from nn_tuning.report import load_run
from run_folders import tiny_config


@pytest.fixture
def run(tmp_path):
    from run_folders import make_run

    return make_run(tmp_path / "run", {"manual": 3, "random": 8, "hyperband": 6},
                    unfinished=("hyperband",))


def _url(path):
    return f"sqlite:///{path}"


def _check_study(study, data):
    trials = study.get_trials(deepcopy=False)
    table = data["trials"]
    assert len(trials) == len(table) == len(data["params"])
    for trial, (_, row), params in zip(trials, table.iterrows(), data["params"]):
        assert trial.user_attrs["nn_tune_trial"] == row["trial"]
        if row["state"] == "complete":
            assert trial.state is TrialState.COMPLETE
            assert trial.value == pytest.approx(row["mean_score"])
            assert trial.user_attrs["n_params"] == row["n_params"]
        else:
            assert trial.state is TrialState.FAIL and trial.value is None
            assert trial.user_attrs["reason"] == row["reason"]
        expected = {k: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v
                    for k, v in params.items()}
        assert trial.params == expected


def test_export_loads_back_with_optuna(run, tmp_path):
    url = _url(tmp_path / "study.db")
    names = export_optuna(run, url)
    assert names == ["demo-manual", "demo-random", "demo-hyperband"]
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
    assert set(summaries) == set(names)
    runs = load_run(run)
    for strategy, data in runs.items():
        study = optuna.load_study(study_name=f"demo-{strategy}", storage=url)
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE
        _check_study(study, data)
    random = optuna.load_study(study_name="demo-random", storage=url)
    dists = random.trials[0].distributions
    assert dists["learning_rate"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["hidden_layers"] == CategoricalDistribution(["[4, 4]", "[16]"])
    assert dists["neurons"] == CategoricalDistribution([4, 8, 16, 32])
    assert random.best_value == pytest.approx(runs["random"]["summary"]["best_cv_score"])
    # A manual config outside the space: categorical over the space's values and its own.
    manual = optuna.load_study(study_name="demo-manual", storage=url)
    assert manual.trials[0].distributions["neurons"] == CategoricalDistribution([4, 8, 16, 32, 5])
    # Hyperband's budget, not in the space: categorical over the epochs it used.
    hyperband = optuna.load_study(study_name="demo-hyperband", storage=url)
    assert set(hyperband.trials[0].distributions["epochs"].choices) <= {2, 6}
    # Wall-clock times come from the store.
    assert all(t.datetime_complete >= t.datetime_start for t in hyperband.trials)


def test_importances_of_the_export_match_the_report(run, tmp_path):
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    from nn_tuning.report._importance import importances

    url = _url(tmp_path / "study.db")
    export_optuna(run, url)
    study = optuna.load_study(study_name="demo-random", storage=url)
    found = importances(load_run(run))["random"]
    theirs = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                   params=found["params"])
    assert found["importances"] == pytest.approx(dict(theirs))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_existing_study_is_refused_unless_overwrite(run, tmp_path):
    db = tmp_path / "study.db"
    export_optuna(run, _url(db))
    before = _digest(db)
    with pytest.raises(ConfigError, match="already holds study 'demo-manual'; pass --overwrite"):
        export_optuna(run, _url(db))
    assert _digest(db) == before
    export_optuna(run, _url(db), overwrite=True)
    study = optuna.load_study(study_name="demo-random", storage=_url(db))
    assert len(study.trials) == 8  # replaced, not appended


def test_bad_storage_urls(run, tmp_path):
    with pytest.raises(ConfigError, match="--optuna must be a database URL such as "
                                          "sqlite:///study.db, got 'study.db'"):
        export_optuna(run, "study.db")
    missing = tmp_path / "no" / "such" / "dir" / "study.db"
    with pytest.raises(ConfigError, match="cannot open the storage"):
        export_optuna(run, _url(missing))
    assert not missing.parent.exists()
    with pytest.raises(ConfigError, match="run folder not found"):
        export_optuna(tmp_path / "nope", _url(tmp_path / "x.db"))
    assert not (tmp_path / "x.db").exists()


def test_cli_export_of_a_real_run(tmp_path, capsys):
    config = tiny_config(
        tmp_path,
        space="neurons = [2, 8]\nhidden_layers = [[4, 4], [6]]\n"
              'learning_rate = { type = "float", low = 0.001, high = 0.1, log = true }',
        strategies="[strategies.random]\nmax_trials = 3\n[strategies.hyperband]\nmax_trials = 3")
    out = tmp_path / "run"
    assert cli.main(["compare", str(config), "--out", str(out), "--quiet"]) == 0
    url = _url(tmp_path / "study.db")
    capsys.readouterr()
    assert cli.main(["export", str(out), "--optuna", url]) == 0
    printed = capsys.readouterr().out
    assert "optuna study: tiny-random" in printed and f"optuna-dashboard {url}" in printed
    runs = load_run(out)
    for strategy in ("random", "hyperband"):
        study = optuna.load_study(study_name=f"tiny-{strategy}", storage=url)
        _check_study(study, runs[strategy])
        sizes = [t.user_attrs["n_params"] for t in study.trials
                 if t.state is TrialState.COMPLETE]
        assert sizes and all(isinstance(n, int) and n > 0 for n in sizes)
    assert cli.main(["export", str(out), "--optuna", url]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert not math.isnan(runs["random"]["summary"]["best_cv_score"])


def test_optuna_dashboard_serves_the_export(run, tmp_path):
    dashboard = pytest.importorskip(
        "optuna_dashboard", reason="optuna-dashboard is not installed (pip install -e "
                                   "'.[dashboard]')")
    from wsgiref.util import setup_testing_defaults

    url = _url(tmp_path / "study.db")
    export_optuna(run, url)
    app = dashboard.wsgi(url)

    def get(path):
        environ = {"PATH_INFO": path, "QUERY_STRING": "after=0"}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
        assert status == ["200 OK"], (path, status, body[:300])
        return json.loads(body)

    studies = {s["study_name"]: s["study_id"] for s in get("/api/studies")["study_summaries"]}
    assert set(studies) == {"demo-manual", "demo-random", "demo-hyperband"}
    runs = load_run(run)
    for strategy, data in runs.items():
        study = get(f"/api/studies/{studies[f'demo-{strategy}']}")
        assert len(study["trials"]) == len(data["trials"])
        states = [t["state"] for t in study["trials"]]
        assert states.count("Fail") == int((data["trials"]["state"] == "failed").sum())
