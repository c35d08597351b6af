"""Versions of the packages a run depends on (saved beside every run)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__all__ = ["PACKAGES", "package_versions"]

#: Distribution names whose versions are recorded, in display order.
PACKAGES = ("nn-tuning", "tensorflow", "keras", "keras-tuner", "scikeras", "scikit-learn",
            "tensorboard", "numpy", "pandas", "scipy", "matplotlib")


def package_versions() -> dict[str, str | None]:
    """Python, platform and the installed version of each of :data:`PACKAGES` (None if absent)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0],
                                  "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
