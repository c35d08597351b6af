"""The running interpreter satisfies pyproject's requires-python; the config parser imports."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_running_python_satisfies_requires_python():
    spec = SpecifierSet(tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"])
    running = ".".join(map(str, sys.version_info[:3]))
    assert running in spec, f"Python {running} does not satisfy requires-python {spec}"
    # experiment.py reads configs with tomllib, new in 3.11: the floor must say so.
    assert "3.10.99" not in spec


def test_the_config_parser_imports():
    from nn_tuning.experiment import Experiment

    assert callable(Experiment.from_file)
