"""The values strategies take and give: an accepted update, a flag, an aggregate, their errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from faults import FedLedgerError

Weights = dict[str, np.ndarray]
StrategyState = dict[str, np.ndarray]


class AggregationError(FedLedgerError):
    """Aggregation inputs that cannot be combined (wrong order, shapes, counts, state)."""


@dataclass(frozen=True)
class WeightedUpdate:
    """One accepted update: the decoded delta and the sample count it claims."""

    participant: str
    num_samples: int
    delta: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Flag:
    """Why a strategy clipped or dropped a participant's update (recorded in the round manifest)."""

    reason: str  # a short code: "clipped", "krum-excluded", "median-outlier", "trimmed-outlier"
    detail: str  # human-readable, with numbers formatted deterministically

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Aggregate:
    """The result of one aggregation: new weights, new state and the participants flagged on the way."""

    weights: Weights
    state: StrategyState
    flags: dict[str, Flag]
