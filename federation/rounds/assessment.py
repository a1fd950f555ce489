"""From a round's accepted updates to the new model, every flag and every score: defences, robust rule, scoring.

Shared by the round derivation (coordinator and auditor) and the learning-only simulation,
so the flags and scores a simulation reports are the ones a real round would record.

Order of work, and why:

1. copy / free-rider detection (:mod:`federation.rounds.defences`) in on-chain order — the
   earlier of two similar updates is the original;
2. the flagged copies and free-riders are left out of the aggregate (a copy would count
   its original twice, a zero update would dilute everyone's step) and score 0;
3. the federation's strategy aggregates the rest in address order, flagging what it
   clips or drops (robust rules);
4. the scoring rule values coalitions of the remaining participants by the validation
   metric of the model the same strategy builds from them (no retraining).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.metrics import evaluate
from federation.model import ModelSpec
from federation.rounds.defences import Candidate, DefenceParams, detect
from federation.rounds.scoring import ScoreReport, ScoringRule, score
from federation.rounds.strategies import Flag, Strategy, StrategyState, WeightedUpdate
from flows import FlowDataset


@dataclass(frozen=True)
class AcceptedUpdate:
    """An update that passed validation, in on-chain order."""

    participant: str
    digest: bytes
    num_samples: int
    delta: Mapping[str, np.ndarray]


@dataclass
class Assessment:
    weights: dict[str, np.ndarray]
    state: StrategyState
    order: list[str]  # the aggregated participants, in address order
    excluded: dict[str, Flag]  # copies and free-riders, left out of the aggregate
    strategy_flags: dict[str, Flag]  # what the strategy clipped or dropped (still aggregated or considered)
    scores: dict[str, int]  # every accepted participant
    report: ScoreReport | None
    metrics: dict[str, Any] = field(default_factory=dict)

    def flags_of(self, participant: str) -> list[dict[str, str]]:
        """Every flag of ``participant`` as ``[{"reason", "detail"}]`` (defence first, then strategy)."""
        return [f.to_dict() for f in (self.excluded.get(participant), self.strategy_flags.get(participant)) if f is not None]


def _address_order(addresses: Sequence[str]) -> list[str]:
    return sorted(addresses, key=lambda a: bytes.fromhex(a.lower().removeprefix("0x")))


def assess_round(
    *,
    strategy: Strategy,
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    state: StrategyState | None,
    accepted: Sequence[AcceptedUpdate],
    validation: FlowDataset | None,
    scoring: ScoringRule,
    seed: bytes,
    defences: DefenceParams | None = None,
    score_contributions: bool = True,
) -> Assessment:
    """Defend, aggregate and score one round; deterministic (see the module doc).

    ``score_contributions=False`` skips step 4 (benchmarks of the model alone); scores are then 0.
    """
    by_addr = {u.participant: u for u in accepted}
    metric = scoring.metric
    base_metric: float | None = None

    def metric_of(weights: Mapping[str, np.ndarray]) -> float:
        assert validation is not None
        return float(evaluate(weights, spec, validation)[metric])

    gain: Callable[[Mapping[str, np.ndarray]], float] | None = None
    if validation is not None:
        base_metric = metric_of(base_weights)

        def gain_of(delta: Mapping[str, np.ndarray]) -> float:
            alone = {k: (np.asarray(base_weights[k], np.float64) + np.asarray(delta[k], np.float64)).astype(np.float32)
                     for k in base_weights}  # fmt: skip
            return metric_of(alone) - float(base_metric)  # type: ignore[arg-type]

        gain = gain_of

    excluded = detect([Candidate(u.participant, u.digest, u.delta) for u in accepted], defences, gain) if accepted else {}
    order = _address_order([u.participant for u in accepted if u.participant not in excluded])

    def aggregate(members: Sequence[str]) -> tuple[dict[str, np.ndarray], StrategyState, dict[str, Flag]]:
        if not members:
            return {k: np.asarray(v, dtype=np.float32) for k, v in base_weights.items()}, dict(state or {}), {}
        ups = (WeightedUpdate(a, by_addr[a].num_samples, by_addr[a].delta) for a in members)
        res = strategy.aggregate_with_flags(base_weights, ups, state)
        return res.weights, res.state, res.flags

    weights, new_state, strategy_flags = aggregate(order)
    scores = {u.participant: 0 for u in accepted}
    report = None
    metrics: dict[str, Any] = {}
    if validation is not None:
        metrics = evaluate(weights, spec, validation)
        full = tuple(order)

        def value(members: tuple[str, ...]) -> float:
            if members == full:
                return float(metrics[metric])
            if not members:
                return float(base_metric)  # type: ignore[arg-type]
            return metric_of(aggregate(members)[0])

        if score_contributions:
            report = score(order, value, scoring, seed)
            scores.update(report.scores)
    for a in excluded:
        scores[a] = min(scores[a], 0)  # never positive; they are not aggregated, so 0
    return Assessment(weights, new_state, order, excluded, strategy_flags, scores, report, metrics)
