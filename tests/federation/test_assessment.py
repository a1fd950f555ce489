"""The round assessment (defences, robust rule, scoring) and an adversarial federation end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from federation import recipe
from federation.model import save_model_bytes
from federation.rounds.assessment import AcceptedUpdate, assess_round
from federation.rounds.defences import DefenceParams
from federation.rounds.scoring import ScoringRule, round_seed
from federation.rounds.strategies import FedAvg, Median
from fedledger.attacks.harness import AttackRun, run_attacks
from fedledger.attacks.kinds import (
    AttackSpec,
    copy_delta,
    free_ride_delta,
    poison_delta,
)
from flows.synthetic import generate
from tests.helpers.defences import address, honest_round


def _accepted(addr: str, n: int, delta) -> AcceptedUpdate:  # type: ignore[no-untyped-def]
    raw = b"".join(np.asarray(delta[k], np.float32).tobytes() for k in sorted(delta))
    return AcceptedUpdate(addr, hashlib.sha256(addr.encode() + raw).digest(), n, delta)


def _assess(rnd, accepted, strategy=None, rule="leave-one-out", seed=None):  # type: ignore[no-untyped-def]
    seed = seed or round_seed(1, b"\0" * 32, [u.digest for u in accepted])
    return assess_round(
        strategy=strategy or FedAvg(), spec=rnd.spec, base_weights=rnd.base, state=None, accepted=accepted,
        validation=rnd.validation, scoring=ScoringRule(rule), seed=seed,
    )  # fmt: skip


@pytest.mark.parametrize("rule", ["leave-one-out", "gtg-shapley"])
def test_copiers_and_free_riders_score_zero_and_the_original_keeps_its_score(rule: str) -> None:
    rnd = honest_round(5, warm_rounds=2)
    honest = [_accepted(a, n, d) for a, n, d in rnd.members]
    shapes = rnd.spec.tensor_shapes()
    victim = rnd.members[2]
    cheats = {
        address(40): copy_delta("copy", victim[2], seed=0, address=address(40), round_id=1),
        address(41): copy_delta("copy-noise", victim[2], seed=0, address=address(41), round_id=1),
        address(42): free_ride_delta("free-ride", shapes, seed=0, address=address(42), round_id=1),
        address(43): free_ride_delta("free-ride-noise", shapes, seed=0, address=address(43), round_id=1),
    }
    # The same permutations for both (in a real round the seed also covers the cheats' digests,
    # so a GTG estimate moves within its Monte-Carlo error).
    seed = b"s" * 32
    clean = _assess(rnd, honest, rule=rule, seed=seed)
    attacked = _assess(rnd, [*honest, *(_accepted(a, 5000, d) for a, d in cheats.items())], rule=rule, seed=seed)
    assert set(attacked.excluded) == set(cheats)
    assert all(attacked.scores[a] == 0 for a in cheats)
    assert {a: attacked.scores[a] for a, _, _ in rnd.members} == clean.scores  # the original keeps its score
    assert save_model_bytes(rnd.spec, attacked.weights) == save_model_bytes(rnd.spec, clean.weights)
    assert attacked.flags_of(address(40))[0]["reason"] == "copy-payload"
    assert attacked.flags_of(victim[0]) == []


def test_robust_rule_flags_reach_the_assessment() -> None:
    rnd = honest_round(5, warm_rounds=2)
    members = [_accepted(a, n, d) for a, n, d in rnd.members]
    bad = members[0]
    members[0] = _accepted(bad.participant, bad.num_samples, poison_delta("scale100", bad.delta))
    result = _assess(rnd, members, strategy=Median())
    assert set(result.strategy_flags) == {bad.participant}
    # The norm bound scales it down first (100x the median is over the 10x limit); the median still flags it.
    assert [f["reason"] for f in result.flags_of(bad.participant)] == ["norm-bounded", "median-outlier"]
    assert result.scores[bad.participant] < max(result.scores.values())


def test_assessment_is_deterministic_and_handles_everyone_excluded() -> None:
    rnd = honest_round(5)
    members = [_accepted(a, n, d) for a, n, d in rnd.members]
    a, b = _assess(rnd, members, rule="gtg-shapley"), _assess(rnd, list(members), rule="gtg-shapley")
    assert a.scores == b.scores and a.report.summary() == b.report.summary()  # type: ignore[union-attr]
    zero = free_ride_delta("free-ride", rnd.spec.tensor_shapes(), seed=0, address=address(1), round_id=1)
    lone = _assess(rnd, [_accepted(address(1), 10, zero)])
    assert lone.order == [] and lone.scores == {address(1): 0}
    assert save_model_bytes(rnd.spec, lone.weights) == save_model_bytes(rnd.spec, rnd.base)


def test_under_the_default_recipe_a_cheat_that_slips_past_the_flags_still_earns_nothing() -> None:
    """With the default recipe, a base-plus-noise free-rider's noise moved validation macro-F1 by
    +0.0105 in round 2 (at or above min_gain, 0.005), so it was not flagged: the gain test runs on
    a discrete metric, which a tiny perturbation can move by one flow. Leave-one-out still scored
    it below zero, so it earned no credit; every copy was flagged."""
    train, test, val = generate(6000, 0), generate(1500, 1), generate(1500, 2)
    cheats = [AttackSpec.parse(s) for s in ("copy:1", "copy-noise:1", "free-ride:1", "free-ride-noise:1")]
    default = dict(class_weights=recipe.CLASS_WEIGHTS, absent_class_scale=recipe.ABSENT_CLASS_SCALE,
                   logit_calibration=recipe.LOGIT_CALIBRATION)  # fmt: skip
    run = run_attacks(AttackRun(participants=8, rounds=2, attacks=cheats, **default), train, test, val)  # type: ignore[arg-type]
    d = run["detection"]
    assert d["planted_copy_or_free_ride"] == 8 and d["scored_at_most_0"] == 8 and d["honest_flagged"] == 0
    slipped = [p for r in run["rounds"] for p in r["participants"] if p["attack"] and p["accepted"]]
    assert d["flagged"] == 8 - len(slipped) and len(slipped) <= 1
    assert all(p["attack"] == "free-ride-noise" and p["score"] <= 0 for p in slipped)


def test_an_adversarial_federation_flags_every_planted_cheat_and_robust_rules_resist_poison() -> None:
    train, test, val = generate(6000, 0), generate(1500, 1), generate(1500, 2)
    cheats = [AttackSpec.parse(s) for s in ("copy:1", "copy-noise:1", "free-ride:1", "free-ride-noise:1")]
    run = run_attacks(AttackRun(participants=8, rounds=2, attacks=cheats), train, test, val)
    d = run["detection"]
    assert d["planted_copy_or_free_ride"] == 8 and d["flagged"] == 8 and d["scored_at_most_0"] == 8
    assert d["honest_flagged"] == 0
    planted = {p["address"]: p["attack"] for p in run["participants"]}
    assert sorted(k for k in planted.values() if k) == ["copy", "copy-noise", "free-ride", "free-ride-noise"]
    for p in run["rounds"][-1]["participants"]:
        assert p["accepted"] is (p["attack"] is None)

    poison = [AttackSpec("scale100", 2)]
    common = dict(participants=8, rounds=3, attacks=poison, score_contributions=False)
    unbounded = DefenceParams(norm_bound=0, weight_bound=0)  # plain FedAvg, as a federation may still choose
    naive = run_attacks(AttackRun(defences=unbounded, **common), train, test, val)  # type: ignore[arg-type]
    robust = run_attacks(AttackRun(strategy="median", **common), train, test, val)  # type: ignore[arg-type]
    bounded = run_attacks(AttackRun(**common), train, test, val)  # type: ignore[arg-type]
    assert robust["final"]["macro_f1"] > naive["final"]["macro_f1"] + 0.05
    # The default bounds hold FedAvg too: the boosted updates are scaled to 10x the round's median norm.
    assert bounded["final"]["macro_f1"] > naive["final"]["macro_f1"] + 0.05
    flags = {f["reason"] for p in bounded["rounds"][-1]["participants"] if p["attack"] for f in p["flags"]}
    assert "norm-bounded" in flags
