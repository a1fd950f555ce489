"""Aggregation strategies as objects, one family per module, numeric kernels in ``aggregate``.

- :mod:`.fedavg`: FedAvg, FedAvgM (server momentum);
- :mod:`.classwise`: class-wise FedAvg (each output row over the members that train its class);
- :mod:`.fedadam`: FedAdam (adaptive server optimisation);
- :mod:`.robust`: coordinate-wise median, trimmed mean, Multi-Krum;
- :mod:`.aggregate`: the bit-reproducible kernels they share;
- :mod:`.base`: the :class:`Strategy` interface and its state files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.rounds.strategies.aggregate import (
    clip_updates,
    exact_sq_norm,
    update_norm,
    weighted_sum,
)
from federation.rounds.strategies.base import STATE_FORMAT, Strategy
from federation.rounds.strategies.classwise import ClasswiseFedAvg
from federation.rounds.strategies.fedadam import FedAdam
from federation.rounds.strategies.fedavg import FedAvg, FedAvgM
from federation.rounds.strategies.robust import Median, MultiKrum, TrimmedMean
from federation.rounds.strategies.types import (
    Aggregate,
    AggregationError,
    Flag,
    StrategyState,
    WeightedUpdate,
    Weights,
)

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedavg-classwise": ClasswiseFedAvg,
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "median": Median,
    "trimmed-mean": TrimmedMean,
    "multi-krum": MultiKrum,
}


def strategy_from_name(name: str, **params: Any) -> Strategy:
    """Build a strategy by name (``fedavg``, ``fedavg-classwise``, ``fedavgm``, ``fedadam``, ``median``, ``trimmed-mean``, ``multi-krum``) with keyword parameters."""
    cls = STRATEGIES.get(name.lower())
    if cls is None:
        raise AggregationError(f"unknown aggregation strategy {name!r}", hint=f"use one of {', '.join(STRATEGIES)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise AggregationError(f"strategy {name!r}: {exc}") from None


def strategy_from_manifest(entry: Mapping[str, Any]) -> Strategy:
    """Rebuild a strategy from ``{"name": ..., "params": {...}}`` as recorded in a round manifest."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("params", {}), Mapping):
        raise AggregationError(f"strategy entry {entry!r} must be {{'name': str, 'params': {{...}}}}")
    return strategy_from_name(entry["name"], **dict(entry.get("params", {})))


__all__ = [
    "STATE_FORMAT",
    "STRATEGIES",
    "Aggregate",
    "AggregationError",
    "ClasswiseFedAvg",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "Flag",
    "Median",
    "MultiKrum",
    "Strategy",
    "StrategyState",
    "TrimmedMean",
    "WeightedUpdate",
    "Weights",
    "clip_updates",
    "exact_sq_norm",
    "strategy_from_manifest",
    "strategy_from_name",
    "update_norm",
    "weighted_sum",
]
