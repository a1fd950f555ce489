"""Contribution scores anyone can recompute: leave-one-out and GTG-Shapley, on the public validation set.

Both rules value a coalition of participants by the validation metric of the model the
round's strategy builds from that coalition's submitted updates (no retraining: the
updates are on chain and in the store, so every auditor rebuilds the same models).

* ``leave-one-out``: score_i = v(all) - v(all without i); n + 1 evaluations.
* ``gtg-shapley`` (Liu et al. 2022, "GTG-Shapley: Efficient and Accurate Participant
  Contribution Evaluation in Federated Learning"): truncated Monte-Carlo Shapley values.
  A round whose model barely moved from the base scores everyone 0 (between-round
  truncation); inside a permutation, once the coalition's value is within ``tolerance``
  of the full coalition's, the remaining marginals are 0 (within-round truncation);
  permutations are guided (permutation t starts with participant t mod n, as GTG does)
  and otherwise drawn from a seed derived from the round's on-chain data, so every
  auditor draws the same ones. The number of evaluations is bounded (``max_evaluations``)
  and reported.

Scores are integers: round(scale * value) clamped to int32, as the ledger stores them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faults import FedLedgerError

# sample-share scores secure-aggregation rounds, where no single update is ever in the clear
RULES = ("leave-one-out", "gtg-shapley", "sample-share")
_INT32 = (-(2**31), 2**31 - 1)

ValueFn = Callable[[tuple[str, ...]], float]


class InvalidScoringRule(FedLedgerError):
    """A scoring rule or parameters the federation descriptor cannot use."""


@dataclass(frozen=True)
class ScoringRule:
    """The federation's scoring rule and its parameters (the descriptor's ``scoring`` entry)."""

    rule: str = "leave-one-out"
    metric: str = "macro_f1"
    scale: int = 10000
    # gtg-shapley only
    max_evaluations: int = 400
    max_permutations: int = 50
    tolerance: float = 0.001  # metric units: marginal gains below this are truncated
    convergence: float = 0.05  # stop when no running estimate moves by more than this fraction of the largest

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InvalidScoringRule(f"unknown scoring rule {self.rule!r}", hint=f"use one of {', '.join(RULES)}")
        if type(self.scale) is not int or self.scale < 1:
            raise InvalidScoringRule(f"scoring scale must be a positive integer, got {self.scale!r}")
        for name in ("max_evaluations", "max_permutations"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise InvalidScoringRule(f"scoring {name} must be a positive integer, got {v!r}")
        for name in ("tolerance", "convergence"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < 1):
                raise InvalidScoringRule(f"scoring {name} must be a number in [0, 1), got {v!r}")
            object.__setattr__(self, name, float(v))

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ScoringRule:
        known = {"rule", "metric", "scale", "max_evaluations", "max_permutations", "tolerance", "convergence"}
        unknown = set(obj) - known
        if unknown:
            raise InvalidScoringRule(f"unknown scoring parameters {sorted(unknown)}", hint=f"use {', '.join(sorted(known))}")
        try:
            return cls(**dict(obj))
        except TypeError as exc:
            raise InvalidScoringRule(f"scoring parameters: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: leave-one-out keeps the descriptor's three keys only, so old manifests keep their bytes."""
        out: dict[str, Any] = {"rule": self.rule, "metric": self.metric, "scale": self.scale}
        if self.rule == "gtg-shapley":
            out.update(max_evaluations=self.max_evaluations, max_permutations=self.max_permutations,
                       tolerance=self.tolerance, convergence=self.convergence)  # fmt: skip
        return out


@dataclass
class ScoreReport:
    """Scores of one round and what computing them cost."""

    scores: dict[str, int]
    values: dict[str, float]  # the unscaled estimates
    evaluations: int  # distinct coalition models built and evaluated
    permutations: int = 0
    truncated: bool = False  # between-round truncation: the round moved the model by less than the tolerance
    seed: str | None = None
    seconds: float = 0.0  # wall time (not part of the manifest: it differs between machines)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The deterministic part, for the manifest."""
        out: dict[str, Any] = {"evaluations": self.evaluations}
        if self.seed is not None:
            out.update(permutations=self.permutations, truncated=self.truncated, seed=self.seed)
        return out


def round_seed(round_id: int, base_digest: bytes, update_digests: Iterable[bytes]) -> bytes:
    """sha256(round id || base digest || sorted update digests): on-chain data only, the same for every auditor."""
    h = hashlib.sha256(b"fedledger-gtg-shapley/1")
    h.update(round_id.to_bytes(32, "big"))
    h.update(bytes(base_digest))
    for d in sorted(bytes(x) for x in update_digests):
        h.update(d)
    return h.digest()


def permutation(seed: bytes, t: int, items: Sequence[str]) -> list[str]:
    """Permutation ``t`` of ``items`` from ``seed``: Fisher-Yates with sha256 as the random source.

    Hand-written on purpose: numpy documents that its generators' streams may change between
    versions, and an auditor years from now must draw the very same permutations.
    GTG's guidance: permutation t starts with item t mod n; the rest are shuffled.
    """
    n = len(items)
    if n == 0:
        return []
    first = items[t % n]
    rest = [x for x in items if x != first]
    for i in range(len(rest) - 1, 0, -1):
        r = int.from_bytes(hashlib.sha256(seed + t.to_bytes(8, "big") + i.to_bytes(8, "big")).digest(), "big")
        j = r % (i + 1)  # bias below 2^-240: irrelevant
        rest[i], rest[j] = rest[j], rest[i]
    return [first, *rest]


def _to_int(scale: int, value: float) -> int:
    return max(_INT32[0], min(_INT32[1], int(round(scale * value))))


class _Cached:
    """Coalition values, each computed once (coalitions are keyed in the players' fixed order)."""

    def __init__(self, value: ValueFn, players: Sequence[str]) -> None:
        self._value, self._rank = value, {p: i for i, p in enumerate(players)}
        self.cache: dict[tuple[str, ...], float] = {}

    def key(self, members: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(members, key=self._rank.__getitem__))

    def has(self, members: Iterable[str]) -> bool:
        return self.key(members) in self.cache

    def __call__(self, members: Iterable[str]) -> float:
        k = self.key(members)
        if k not in self.cache:
            self.cache[k] = float(self._value(k))
        return self.cache[k]


def leave_one_out(players: Sequence[str], value: ValueFn, rule: ScoringRule) -> ScoreReport:
    """score_i = v(players) - v(players without i); ``players`` in aggregation (address) order."""
    started = time.perf_counter()
    v = _Cached(value, players)
    if not players:
        return ScoreReport({}, {}, 0)
    full = v(players)
    values = {p: full - v([q for q in players if q != p]) for p in players}
    return ScoreReport({p: _to_int(rule.scale, x) for p, x in values.items()}, values, len(v.cache),
                       seconds=time.perf_counter() - started)  # fmt: skip


def gtg_shapley(players: Sequence[str], value: ValueFn, rule: ScoringRule, seed: bytes) -> ScoreReport:
    """Truncated, guided Monte-Carlo Shapley values (see the module doc); deterministic given ``seed``."""
    started = time.perf_counter()
    v = _Cached(value, players)
    n = len(players)
    if n == 0:
        return ScoreReport({}, {}, 0, seed=seed.hex())
    empty, full = v(()), v(players)
    report = ScoreReport({p: 0 for p in players}, {p: 0.0 for p in players}, 0, seed=seed.hex())
    if abs(full - empty) < rule.tolerance:
        report.truncated, report.evaluations = True, len(v.cache)
        report.seconds = time.perf_counter() - started
        return report
    if n == 1:
        # One player: its Shapley value is exact, v({p}) - v(∅).
        report.values = {players[0]: full - empty}
    else:
        sums = {p: 0.0 for p in players}
        estimate = {p: 0.0 for p in players}
        done = 0
        for t in range(rule.max_permutations):
            perm = permutation(seed, t, players)
            # A permutation is used whole or not at all: stop before one that could overrun the budget.
            needed = sum(1 for j in range(1, n) if not v.has(perm[:j]))
            if len(v.cache) + needed > rule.max_evaluations and done > 0:
                break
            prev, marginals = empty, {}
            for j, p in enumerate(perm, start=1):
                if abs(full - prev) < rule.tolerance:
                    marginals[p] = 0.0  # within-round truncation: the rest adds (almost) nothing
                    continue
                cur = full if j == n else v(perm[:j])
                marginals[p] = cur - prev
                prev = cur
            done += 1
            new = {p: (sums[p] + marginals[p]) for p in players}
            sums = new
            updated = {p: sums[p] / done for p in players}
            largest = max(abs(x) for x in updated.values())
            moved = max(abs(updated[p] - estimate[p]) for p in players)
            estimate = updated
            if done >= min(n, 5) and moved <= rule.convergence * largest:
                break
        report.values, report.permutations = estimate, done
    report.scores = {p: _to_int(rule.scale, x) for p, x in report.values.items()}
    report.evaluations = len(v.cache)
    report.seconds = time.perf_counter() - started
    return report


def sample_share(weights: Mapping[str, int], rule: ScoringRule) -> dict[str, int]:
    """Each aggregated member's share of the round's (capped, quantised) sample weight, times the scale, rounded down.

    The one score that needs nothing but what a secure-aggregation round reveals: the chain's
    sample counts of the members in the sum. It pays for data, not for its quality: a member
    cannot be scored on an update nobody sees.
    """
    total = sum(weights.values())
    return {a: (w * rule.scale) // total if total else 0 for a, w in weights.items()}


def score(players: Sequence[str], value: ValueFn, rule: ScoringRule, seed: bytes) -> ScoreReport:
    """Scores of ``players`` (aggregation order) under ``rule``; ``seed`` from :func:`round_seed`."""
    if rule.rule == "sample-share":
        raise InvalidScoringRule("sample-share scores secure-aggregation rounds only", hint="use leave-one-out or gtg-shapley")
    if rule.rule == "gtg-shapley":
        return gtg_shapley(players, value, rule, seed)
    return leave_one_out(players, value, rule)
