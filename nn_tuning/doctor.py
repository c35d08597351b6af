"""``nn-tune doctor``: is this environment able to run nn-tuning?"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .versions import package_versions

__all__ = ["Check", "run_checks"]

_REQUIRED = {  # distribution -> (import name, fix)
    "tensorflow": ("tensorflow", "pip install 'tensorflow>=2.16'"),
    "keras": ("keras", "pip install 'keras>=3'"),
    "keras-tuner": ("keras_tuner", "pip install 'keras-tuner>=1.4'"),
    "scikeras": ("scikeras", "pip install 'scikeras>=0.13,<0.14'"),
    "scikit-learn": ("sklearn", "pip install 'scikit-learn>=1.6'"),
}


@dataclass
class Check:
    """One line of the doctor's report; ``fix`` is set when ``ok`` is False."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _import_check(dist: str, module: str, fix: str, version: str | None) -> Check:
    try:
        importlib.import_module(module)
    except Exception as exc:  # any import failure is a problem to report, not to raise
        return Check(dist, False, f"cannot import {module}: {type(exc).__name__}: {exc}"[:200], fix)
    return Check(dist, True, version or "importable (version unknown)")


def run_checks() -> list[Check]:
    """Check the packages, the devices TensorFlow sees, tensorboard and the wrappers."""
    versions = package_versions()
    checks = [Check("python", True, versions["python"])]
    checks += [_import_check(d, m, f, versions.get(d)) for d, (m, f) in _REQUIRED.items()]
    checks.append(_import_check(
        "tensorboard", "tensorboard",
        "pip install 'tensorboard>=2.16' (keras-tuner imports it in every trial)",
        versions.get("tensorboard")))
    try:
        import tensorflow as tf

        devices = [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}"
                   for d in tf.config.list_physical_devices()]
        checks.append(Check("devices", bool(devices), ", ".join(devices) or "none",
                            "TensorFlow sees no device; reinstall tensorflow"))
    except Exception as exc:  # reported above as an import failure too
        checks.append(Check("devices", False, f"{type(exc).__name__}: {exc}"[:200],
                            "pip install 'tensorflow>=2.16'"))
    try:
        from sklearn.base import is_classifier

        from model_builders import mlp_classifier

        from .wrappers import KerasClassifier

        ok = bool(is_classifier(KerasClassifier(model=mlp_classifier)))
        checks.append(Check("classifier wrapper", ok,
                            "is_classifier(nn_tuning.KerasClassifier(...)) is " + str(ok),
                            "scikit-learn does not recognise the classifier wrapper: install "
                            "scikit-learn>=1.6 and reinstall nn-tuning (pip install -e .)"))
    except Exception as exc:
        checks.append(Check("classifier wrapper", False, f"{type(exc).__name__}: {exc}"[:200],
                            "reinstall nn-tuning and scikit-learn>=1.6"))
    return checks
