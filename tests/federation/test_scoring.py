"""Contribution scores: leave-one-out and GTG-Shapley on toy games with known answers and on real updates."""

from __future__ import annotations

import itertools
import math

import pytest

from federation.metrics import evaluate
from federation.rounds.scoring import (
    InvalidScoringRule,
    ScoringRule,
    gtg_shapley,
    permutation,
    round_seed,
    score,
)
from federation.rounds.strategies import FedAvg, WeightedUpdate
from tests.helpers.defences import honest_round

PLAYERS = tuple(f"p{i}" for i in range(6))
SEED = round_seed(3, b"\x01" * 32, [b"\x02" * 32, b"\x03" * 32])


def _exact_shapley(players, value):  # type: ignore[no-untyped-def]
    n = len(players)
    out = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for k in range(n):
            for s in itertools.combinations(others, k):
                w = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                total += w * (value(tuple(sorted((*s, p)))) - value(tuple(sorted(s))))
        out[p] = total
    return out


def _additive(weights):  # type: ignore[no-untyped-def]
    return lambda s: sum(weights[p] for p in s)


def test_gtg_on_an_additive_game_is_exact() -> None:
    weights = {p: 0.01 * (i + 1) for i, p in enumerate(PLAYERS)}
    rep = gtg_shapley(PLAYERS, _additive(weights), ScoringRule("gtg-shapley", tolerance=0.0), SEED)
    assert rep.scores == {p: round(10000 * w) for p, w in weights.items()}
    assert not rep.truncated and rep.permutations >= 5


def test_gtg_approximates_exact_shapley_on_a_non_additive_game() -> None:
    # Diminishing returns (like accuracy): v(S) = sqrt(sum of weights).
    weights = {p: (i + 1) ** 2 for i, p in enumerate(PLAYERS)}
    value = lambda s: math.sqrt(sum(weights[p] for p in s)) / 10  # noqa: E731
    exact = _exact_shapley(PLAYERS, value)
    rep = gtg_shapley(PLAYERS, value, ScoringRule("gtg-shapley", tolerance=0.0, convergence=0.0, max_evaluations=10_000), SEED)
    for p in PLAYERS:
        assert rep.values[p] == pytest.approx(exact[p], abs=0.01)
    # ranks follow the weights
    assert [p for p, _ in sorted(rep.values.items(), key=lambda kv: kv[1])] == list(PLAYERS)


def test_between_round_truncation_scores_zero_with_two_evaluations() -> None:
    rep = gtg_shapley(PLAYERS, lambda s: 0.5 + 1e-5 * len(s), ScoringRule("gtg-shapley", tolerance=1e-3), SEED)
    assert rep.truncated and rep.evaluations == 2 and set(rep.scores.values()) == {0}


def test_within_round_truncation_saves_evaluations() -> None:
    # Any one player brings the whole gain: after the first, nothing is left to evaluate.
    value = lambda s: 0.8 if s else 0.2  # noqa: E731
    rep = gtg_shapley(PLAYERS, value, ScoringRule("gtg-shapley", tolerance=1e-3), SEED)
    assert rep.evaluations == 2 + len(PLAYERS)  # empty, full, and each singleton as a permutation's head
    assert sum(rep.values.values()) == pytest.approx(0.6)


@pytest.mark.parametrize("n", [5, 20, 50])
def test_the_evaluation_budget_holds(n: int) -> None:
    players = tuple(f"q{i:02d}" for i in range(n))
    rng = {p: (i * 7919 % 101) / 1000 for i, p in enumerate(players)}
    value = lambda s: math.sqrt(sum(rng[p] for p in s))  # noqa: E731
    rule = ScoringRule("gtg-shapley", max_evaluations=200, tolerance=0.0, convergence=0.0)
    rep = gtg_shapley(players, value, rule, SEED)
    assert rep.evaluations <= max(200, n + 1)
    assert rep.permutations >= 1


def test_same_seed_same_scores_other_seed_other_permutations() -> None:
    value = lambda s: math.sqrt(sum(i + 1 for i, p in enumerate(PLAYERS) if p in s))  # noqa: E731
    rule = ScoringRule("gtg-shapley", tolerance=0.0, convergence=0.2)
    a, b = gtg_shapley(PLAYERS, value, rule, SEED), gtg_shapley(PLAYERS, value, rule, SEED)
    assert a.values == b.values and a.seed == SEED.hex()
    other = round_seed(4, b"\x01" * 32, [b"\x02" * 32, b"\x03" * 32])
    assert [permutation(SEED, t, PLAYERS) for t in range(6)] != [permutation(other, t, PLAYERS) for t in range(6)]


def test_permutations_are_guided_and_complete() -> None:
    for t in range(12):
        perm = permutation(SEED, t, PLAYERS)
        assert sorted(perm) == sorted(PLAYERS) and perm[0] == PLAYERS[t % len(PLAYERS)]


def test_round_seed_depends_on_chain_data_only_not_on_order() -> None:
    d = [bytes([i]) * 32 for i in range(3)]
    assert round_seed(1, b"b" * 32, d) == round_seed(1, b"b" * 32, list(reversed(d)))
    assert round_seed(1, b"b" * 32, d) != round_seed(2, b"b" * 32, d)
    assert round_seed(1, b"b" * 32, d) != round_seed(1, b"c" * 32, d)


def test_leave_one_out_formula_and_dispatch() -> None:
    weights = {p: 0.01 * (i + 1) for i, p in enumerate(PLAYERS)}
    rep = score(PLAYERS, _additive(weights), ScoringRule(), SEED)
    assert rep.scores == {p: round(10000 * w) for p, w in weights.items()}
    assert rep.evaluations == len(PLAYERS) + 1
    assert rep.summary() == {"evaluations": 7}


def test_rules_are_checked() -> None:
    for bad, fragment in [
        ({"rule": "shapley"}, "unknown scoring rule"),
        ({"rule": "gtg-shapley", "max_evaluations": 0}, "max_evaluations"),
        ({"rule": "gtg-shapley", "tolerance": 2}, "tolerance"),
        ({"scale": 0}, "scale"),
        ({"rule": "leave-one-out", "budget": 3}, "unknown scoring parameters"),
    ]:
        with pytest.raises(InvalidScoringRule, match=fragment):
            ScoringRule.from_dict(bad)
    assert ScoringRule.from_dict({"rule": "leave-one-out", "metric": "macro_f1", "scale": 10000}).to_dict() == {
        "rule": "leave-one-out", "metric": "macro_f1", "scale": 10000,
    }


@pytest.mark.parametrize("rule", ["leave-one-out", "gtg-shapley"])
def test_more_useful_data_scores_higher_on_real_updates(rule: str) -> None:
    # Member 0 holds 5x the flows of member 1 (same distribution); from a base trained two rounds
    # (a random-init base makes every first step a coin toss on macro-F1).
    rnd = honest_round(5, records=6000, warm_rounds=2, sizes=(10, 2, 3, 3, 3))
    ups = {a: WeightedUpdate(a, n, d) for a, n, d in rnd.members}
    players = tuple(sorted(ups, key=str.lower))

    def value(members):  # type: ignore[no-untyped-def]
        if not members:
            return evaluate(rnd.base, rnd.spec, rnd.validation)["macro_f1"]
        w, _ = FedAvg().aggregate(rnd.base, [ups[m] for m in members])
        return evaluate(w, rnd.spec, rnd.validation)["macro_f1"]

    rep = score(players, value, ScoringRule(rule), SEED)
    big, small = rnd.members[0][0], rnd.members[1][0]
    assert rep.scores[big] > rep.scores[small], rep.scores
    assert rep.scores[big] == max(rep.scores.values()) and rep.scores[big] > 0
