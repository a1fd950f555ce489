"""Gaming the contribution scores: a member with no private data trains on the public validation set.

Two federations on the same chain, flows and seeds, played round by round through the real
coordinator and participant services and the audit: one deployed as by default (the
validation pool split into a public set and five scoring hold-outs the coordinator reveals
after each round closes), one with ``holdouts=0`` (contributions scored on the public set).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from federation.flowset import load_flowset
from fedledger.audit import Auditor
from tests.helpers.runtime import FAST, Env, commit, make_env, trained_update

GAMER = 3
ROUNDS = 3
CLAIM = 6000
# The federation these figures were measured on: FedAvg, members (and the gamer) training with
# balanced class weights, an ordinary softmax and no FedLC. With the default recipe (class-wise
# FedAvg, sqrt weights, FedRS 0, FedLC 0.5) gaming the public set pays less: scored on the
# public set the gamer came top on one seed of the three (seeds 5-7, gamer vs best honest: -101
# vs -8, 246 vs -63, -291 vs 799), and scored on hold-outs it was last on all three (-3020,
# -1642, -728).
GAMEABLE = replace(FAST, class_weights="balanced", absent_class_scale=1.0, logit_calibration=0.0)


def _total_scores(env: Env) -> dict[str, int]:
    """Three honest members and a gamer training only on the public validation set, claiming 6,000 samples;
    each member's score summed over three rounds (the gamer as "gamer", the others as "org0".."org2")."""
    env.data[GAMER] = load_flowset(env.store.get(env.fed.descriptor.validation), env.fed.descriptor.spec)
    names = {acct.address: ("gamer" if i == GAMER else f"org{i}") for i, acct in enumerate(env.orgs)}
    totals = dict.fromkeys(names.values(), 0)
    coord = env.coordinator()
    for r in range(1, ROUNDS + 1):
        assert coord.step(None) == "opened"
        for i in range(3):
            assert env.participant(i, settings=GAMEABLE).step() is not None
        blob, _ = trained_update(env, GAMER, r, samples=CLAIM, settings=GAMEABLE)
        commit(env, GAMER, r, blob, CLAIM)
        for i in range(3):
            env.participant(i, settings=GAMEABLE).step()
        env.store.put(blob)
        out = coord.close_round(r)
        assert out is not None and out.finalized and len(out.result.aggregated) == 4  # nothing flags it
        for address, score in out.result.scores.items():
            totals[names[address]] += score
            assert env.ledger.get_submission(r, address).score == score
    assert Auditor(env.ledger, env.store).audit().ok
    return totals


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_member_training_on_the_public_set_tops_public_scoring_but_not_the_default_hold_out_deployment(
    tmp_path: Path, chain: LocalAnvil, seed: int
) -> None:
    """Before: the set that scored contributions was public. A member with no private data that
    trained only on it and claimed 6,000 samples came top under leave-one-out, unflagged.

    Now, deployed with hold-outs as by default, the 1,200-flow validation pool is split into a 200-flow public
    set and five 200-flow hold-outs committed by CID in the descriptor and revealed one per round
    after submissions close. Over three rounds the gamer's total score is the lowest of the four
    members on every seed, where with ``holdouts=0`` (all 1,200 flows public and scored on) it
    is the highest (measured: seed 5 -735 vs 302, seed 6 -2397 vs 984, seed 7 -1002 vs 534).

    What this shows is narrower than "hold-outs stop the gaming": with equal public sets the
    difference goes away (a 7,200-flow pool, so the public set is again 1,200 flows, gave the
    gamer the top total on seeds 6 and 7 even under hold-out scoring; a 200-flow pool scored on
    directly left it last). At this scale the gamer loses because the public set it can train on
    shrinks, not because the scoring set is secret; docs/security.md states the limit."""
    totals = {}
    for holdouts in (5, 0):
        env = make_env(tmp_path / f"holdouts-{holdouts}", chain, participants=4, min_updates=2, holdouts=holdouts, seed=seed,
                       strategy="fedavg")  # fmt: skip
        totals[holdouts] = _total_scores(env)
    print(f"\nseed {seed}: scored on hold-outs {totals[5]}; scored on the public set {totals[0]}")
    assert totals[5]["gamer"] < min(v for k, v in totals[5].items() if k != "gamer")
    assert totals[0]["gamer"] > max(v for k, v in totals[0].items() if k != "gamer")
