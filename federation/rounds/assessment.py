"""From a round's accepted updates to the new model, every flag and every score: defences, robust rule, scoring.

Shared by the round derivation (coordinator and auditor) and the learning-only simulation,
so the flags and scores a simulation reports are the ones a real round would record.

Order of work, and why:

1. copy / free-rider detection (:mod:`federation.rounds.defences`) in on-chain order — the
   earlier of two similar updates is the original; replays of last round's updates too;
2. the flagged copies and free-riders are left out of the aggregate (a copy would count
   its original twice, a zero update would dilute everyone's step) and score 0;
3. every remaining update's norm and weight is bounded against the round's median
   (:mod:`federation.rounds.bounds`);
4. the federation's strategy aggregates them in address order, flagging what it clips or
   drops (robust rules); an aggregate that is not finite (possible only with the bounds off)
   leaves the model as it was and excludes every update, recorded, never raised;
5. the scoring rule values coalitions of the aggregated participants by the scoring set's
   metric of the model the same strategy builds from them (no retraining); a coalition whose
   model is not finite is worth no more than the base.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.metrics import evaluate
from federation.model import ModelSpec
from federation.rounds.bounds import bound_updates
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
    bound_flags: dict[str, Flag] = field(default_factory=dict)  # whose norm or weight was bounded
    bounds: dict[str, Any] = field(default_factory=dict)  # the medians and limits used (for the manifest)
    samples: dict[str, int] = field(default_factory=dict)  # each aggregated participant's sample claim after bounds

    def flags_of(self, participant: str) -> list[dict[str, str]]:
        """Every flag of ``participant`` as ``[{"reason", "detail"}]`` (defence, then bounds, then strategy)."""
        found = (self.excluded.get(participant), self.bound_flags.get(participant), self.strategy_flags.get(participant))
        return [f.to_dict() for f in found if f is not None]


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
    previous: Sequence[AcceptedUpdate] = (),
) -> Assessment:
    """Defend, bound, aggregate and score one round; deterministic (see the module doc).

    ``validation`` is the scoring set (the round's hold-out, or the public validation set);
    ``previous`` the updates aggregated in the previous round (replay detection).
    ``score_contributions=False`` skips scoring (benchmarks of the model alone); scores are then 0.
    """
    params = defences or DefenceParams()
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

    prior = [Candidate(u.participant, u.digest, u.delta) for u in previous]
    candidates = [Candidate(u.participant, u.digest, u.delta) for u in accepted]
    excluded = detect(candidates, params, gain, prior) if accepted else {}
    bounded = bound_updates([u for u in accepted if u.participant not in excluded], params.norm_bound, params.weight_bound)
    by_addr = {u.participant: u for u in bounded.updates}
    order = _address_order(list(by_addr))
    unchanged = {k: np.asarray(v, dtype=np.float32) for k, v in base_weights.items()}

    def aggregate(members: Sequence[str]) -> tuple[dict[str, np.ndarray], StrategyState, dict[str, Flag]] | None:
        """The strategy's model of ``members``; None when it is not finite."""
        if not members:
            return unchanged, dict(state or {}), {}
        ups = (WeightedUpdate(a, by_addr[a].num_samples, by_addr[a].delta) for a in members)
        with np.errstate(over="ignore", invalid="ignore"):
            res = strategy.aggregate_with_flags(base_weights, ups, state)
        if not all(np.all(np.isfinite(w)) for w in res.weights.values()):
            return None
        return res.weights, res.state, res.flags

    aggregated = aggregate(order)
    if aggregated is None:
        detail = "the aggregate of the round's updates is not finite; the model stays as it was"
        excluded.update({a: Flag("aggregate-non-finite", detail) for a in order})
        order, aggregated = [], (unchanged, dict(state or {}), {})
    weights, new_state, strategy_flags = aggregated
    scores = {u.participant: 0 for u in accepted}
    report = None
    metrics: dict[str, Any] = {}
    if validation is not None:
        metrics = evaluate(weights, spec, validation)
        full = tuple(order)

        def value(members: tuple[str, ...]) -> float:
            if members == full:
                return float(metrics[metric])
            model = aggregate(members) if members else None
            return float(base_metric) if model is None else metric_of(model[0])  # type: ignore[arg-type]

        if score_contributions:
            report = score(order, value, scoring, seed)
            scores.update(report.scores)
    for a in excluded:
        scores[a] = min(scores[a], 0)  # never positive; they are not aggregated, so 0
    return Assessment(
        weights, new_state, order, excluded, strategy_flags, scores, report, metrics, bounded.flags, bounded.record,
        {a: by_addr[a].num_samples for a in order},
    )  # fmt: skip
