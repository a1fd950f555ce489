"""Defences and scores in real rounds: a real anvil chain, the compiled ledger, the store, and the auditor."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from federation.updates import UpdateHeader, encode_update, read_header
from fedledger.attacks.kinds import copy_update, free_ride_delta
from fedledger.audit import Auditor
from tests.helpers.runtime import Env, commit, make_env, manifest_of

GTG = "gtg-shapley"


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil(accounts=8) as c:
        yield c


def _env(tmp_path: Path, chain: LocalAnvil, strategy: str = "fedavg", params: dict | None = None, scoring: str = "leave-one-out") -> Env:
    return make_env(tmp_path, chain, participants=5, split="iid", strategy=strategy, strategy_params=params or {}, scoring=scoring)


def _header(env: Env, i: int, round_id: int, base: str, n: int) -> UpdateHeader:
    return UpdateHeader(env.orgs[i].address, round_id, base, env.fed.descriptor.spec.digest(), n,
                        chain_id=env.ledger.chain_id, ledger=env.ledger.address)  # fmt: skip


def _round_with_cheats(env: Env, rnd: int) -> None:
    """Members 0-2 train; member 3 sends member 0's payload as its own (they collude: its bytes reach it off chain);
    member 4 sends the unchanged base."""
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    for i in range(3):
        assert env.participant(i).step() is not None
    victim_blob = env.participant(0)._pending(rnd)
    base = read_header(victim_blob).base_model
    copy = copy_update(victim_blob, _header(env, 3, rnd, base, 900), env.fed.descriptor.spec)
    zero = free_ride_delta("free-ride", env.fed.descriptor.spec.tensor_shapes(), seed=0, address=env.orgs[4].address, round_id=rnd)
    rider = encode_update(_header(env, 4, rnd, base, 900), zero, env.fed.descriptor.spec)
    commit(env, 3, rnd, copy, 900)
    commit(env, 4, rnd, rider, 900)
    for i in range(3):
        env.participant(i).step()  # every eligible member committed: submissions closed, they reveal
    env.store.put(copy)
    env.store.put(rider)
    assert coord.close_round(rnd).finalized


@pytest.mark.parametrize("strategy, params, scoring", [("fedavg", {}, GTG), ("median", {"clip_norm": 50.0}, "leave-one-out")])
def test_copier_and_free_rider_flagged_on_chain_and_the_audit_recomputes_every_score(
    tmp_path: Path, chain: LocalAnvil, strategy: str, params: dict, scoring: str
) -> None:
    env = _env(tmp_path, chain, strategy, params, scoring)
    copier, rider = env.orgs[3], env.orgs[4]
    for rnd in (1, 2):
        _round_with_cheats(env, rnd)
        manifest = manifest_of(env, rnd)
        entries = {e["participant"]: e for e in manifest["submissions"]}
        assert manifest["strategy"]["name"] == strategy and params.items() <= manifest["strategy"]["params"].items()
        assert [f["reason"] for f in entries[copier.address]["flags"]] == ["copy-payload"]
        assert env.orgs[0].address in entries[copier.address]["flags"][0]["detail"]
        assert [f["reason"] for f in entries[rider.address]["flags"]] == ["free-ride-unchanged"]
        for cheat in (copier, rider):
            assert entries[cheat.address]["status"] == "accepted" and entries[cheat.address]["aggregated"] is False
            assert entries[cheat.address]["score"] == 0
            assert env.ledger.get_submission(rnd, cheat.address).score is None  # not aggregated: not scored on chain
        assert "flags" not in entries[env.orgs[0].address] and "aggregated" not in entries[env.orgs[0].address]
        assert copier.address not in manifest["aggregation_order"] and rider.address not in manifest["aggregation_order"]
        if scoring == GTG:
            report = manifest["scoring"]["report"]
            assert 0 < report["evaluations"] <= 400 and len(report["seed"]) == 64
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert [v.round_id for v in report.rounds] == [1, 2]


def test_the_audit_catches_a_score_given_to_a_copier(tmp_path: Path, chain: LocalAnvil) -> None:
    env = _env(tmp_path, chain, scoring=GTG)
    coord = env.coordinator()
    coord.step(None)
    for i in range(3):
        env.participant(i).step()
    victim_blob = env.participant(0)._pending(1)
    copy = copy_update(victim_blob, _header(env, 3, 1, read_header(victim_blob).base_model, 900), env.fed.descriptor.spec)
    commit(env, 3, 1, copy, 900)
    env.close_submissions(1)
    for i in range(3):
        env.participant(i).step()
    env.store.put(copy)
    coord.reveal_holdout(1)
    result = coord.replay.derive(1).result
    assert result.scores[env.orgs[3].address] == 0 and env.orgs[3].address not in result.aggregated
    g, m = env.store.put(result.global_model), env.store.put(result.manifest_bytes)
    # A dishonest coordinator pays the copier as if its update were its own work.
    paid = [*result.aggregated, env.orgs[3].address]
    scores = [result.scores[a] for a in result.aggregated] + [max(1, result.scores[env.orgs[0].address])]
    from ipfs import cid_to_digest

    env.coordinator_ledger.finalize_round(1, cid_to_digest(g), cid_to_digest(m), paid, scores)
    report = Auditor(env.ledger, env.store).audit()
    assert not report.ok
    assert any("score on chain" in x and env.orgs[3].address in x for x in report.rounds[0].mismatches)
