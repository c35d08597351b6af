"""Successive halving's checkpoint: what a rerun of a killed or stopped asha run continues from.

``asha.ckpt`` in the run folder holds the sampler's Optuna study, the stacks
(weights, optimizer state, slot table; their compiled loops are traced again)
and which configuration is in which slot; it is written atomically
(:func:`os.replace`) after every segment that stored a trial. Each live
configuration is built again on restore, for its encoders and scorer.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import Any

__all__ = ["Checkpointed"]

logger = logging.getLogger("nn_tuning")


class Checkpointed:
    """Save and restore of :class:`nn_tuning.strategies.asha._Search` (its attributes)."""

    checkpoint: Any
    trainer: Any

    def _save(self) -> None:
        if self.checkpoint is None:
            return
        banks = self.trainer.banks
        live = [(k, lv.built.params, lv.bank, lv.slot, lv.epochs, lv.seconds, lv.scores)
                for k, lv in self.trainer.live.items()]
        pending = [(k, b.params) for k, b in self.pending]
        state = {"study": self.study, "pending": pending, "outcomes": self.outcomes,
                 "started": self.started, "repeats": self.repeats, "exhausted": self.exhausted,
                 "reported": self.reported,
                 "live": live, "banks": banks,
                 "otrials": {k: t.number for k, t in self.otrials.items()},
                 "utilisation": (self.trainer.replica_epochs, self.trainer.slot_epochs)}
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.checkpoint)

    def _restore(self) -> None:
        if self.checkpoint is None or not self.checkpoint.is_file():
            return
        try:
            with open(self.checkpoint, "rb") as f:
                state = pickle.load(f)
        except Exception as exc:  # a damaged checkpoint: start over (the store keeps the trials)
            logger.warning("asha: could not read %s (%s); starting the search over", self.checkpoint,
                           exc)
            return
        self.study = state["study"]
        self.pending = [(k, self.trainer.build(k, p)) for k, p in state["pending"]]
        self.outcomes = state["outcomes"]
        self.started, self.repeats = state["started"], state["repeats"]
        self.exhausted = state["exhausted"]
        self.reported = state["reported"]
        self.trainer.replica_epochs, self.trainer.slot_epochs = state["utilisation"]
        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        self.otrials = {k: _running(self.study, by_number[n]) for k, n in state["otrials"].items()}
        self.trainer.restore(state["banks"], state["live"])
        logger.info("asha: resumed from %s: %d configurations in flight, %d started",
                    self.checkpoint, len(self.trainer.live), self.started)


def _running(study: Any, frozen: Any) -> Any:
    """The ``optuna.Trial`` of a running frozen trial of ``study`` (to report and tell it)."""
    import optuna

    return optuna.Trial(study, frozen._trial_id)
