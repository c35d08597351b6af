"""The exceptions nn-tuning raises.

Everything derives from :class:`NNTuningError`. Configuration problems also
derive from ``ValueError`` so that ordinary ``except ValueError`` clauses keep
working.
"""

from __future__ import annotations


class NNTuningError(Exception):
    """Base class of every nn-tuning error."""


class ConfigError(NNTuningError, ValueError):
    """A bad argument, configuration entry, search space or data set."""


class SearchSpaceError(ConfigError):
    """A search-space entry or a translation of the space is invalid."""


class DataError(ConfigError):
    """The data cannot be used: missing column, NaNs, non-numeric features..."""


class TrialFailedError(NNTuningError):
    """One trial failed (NaN loss, an exception in the builder); the search goes on."""


class AllTrialsFailedError(NNTuningError, RuntimeError):
    """Every trial of a search failed, so there is no best configuration."""


class StoreError(NNTuningError):
    """The trial store is damaged or belongs to a different run."""
