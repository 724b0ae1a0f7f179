"""The estimator race: one configuration trained with several gradient estimators side by side.

Every entrant is an ordinary ``Run`` (its own state, history, diagnosis) of the same model,
data, family, initial values, optimizer, learning rate and seed; only the estimator differs.
The entrants differ in structure (each estimator is its own computation), so they cannot share
one batched step; a race is a ``vizvi.compare.RunSet`` of them: all advance in ONE compiled
call holding each entrant's chunk loop, so a chunk of the race costs one dispatch rather than
one per estimator. Each entrant stops on its own fault or at its own end; the others go on.
A trainer drives a race as it drives a single run (``vizvi.worker``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from vizvi.compare import RunSet
from vizvi.engine import RunConfig
from vizvi.errors import ConfigError
from vizvi.estimators import EstimatorName, unavailable
from vizvi.families import get_family
from vizvi.models import get_model


def entrants(config: RunConfig, estimators=None) -> tuple:
    """(estimators that can race on ``config``, {estimator: why not} for the others).

    ``estimators`` narrows the field (default: every estimator); the config's own estimator
    setting is ignored.
    """
    model = get_model(config.model)
    family = get_family(config.family or model.default_family, model)
    wanted = [EstimatorName(e) for e in (estimators or list(EstimatorName))]
    refused = unavailable(family, config.samples)
    return [e for e in wanted if e not in refused], {e: why for e, why in refused.items() if e in wanted}


class Race(RunSet):
    """Runs of one configuration, one per estimator, advanced together (a ``RunSet``).

    ``entrants`` maps each entrant's estimator to its Run; ``refused`` says why the other
    requested estimators cannot race on this configuration. Raises ConfigError (naming the
    setting) when the configuration is bad or no estimator can race on it.
    """

    def __init__(self, config: RunConfig, estimators=None, csv_text: Optional[str] = None):
        racing, self.refused = entrants(config, estimators)
        if not racing:
            raise ConfigError("estimator", "no estimator can race on this configuration: "
                              + "; ".join(self.refused.values()))
        # One model, data set and seed for all: the set makes the data and reference once.
        super().__init__([dataclasses.replace(config, estimator=e.value) for e in racing], csv_text=csv_text)
        self.entrants = dict(zip(racing, self.runs))
        first = self.runs[0]
        self.model, self.family, self.dataset = first.model, first.family, first.dataset
        self.reference, self.optimum = first.reference, first.optimum

    def update_settings(self, **changes) -> list:
        """Change live settings of every entrant (not the estimator: that is what races)."""
        if "estimator" in changes:
            raise ConfigError("estimator", "a race runs every estimator; start a new race to change the field")
        return super().update_settings(**changes)

    def records(self) -> dict:
        """{estimator: the entrant's record in the CLI's JSON schema}."""
        from vizvi.history import to_record

        return {e.value: to_record(run) for e, run in self.entrants.items()}
