"""DP through the whole runtime: real anvil, the compiled ledger, the embedded store, opacus.

Members train under DP, their spend lands in the update header and on chain, the
coordinator checks every claim against the declared mechanism, the audit shows
the naive on-chain sum next to the composed total, and a member whose budget is
spent refuses to train.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from federation.model import load_model_bytes
from federation.privacy import (
    Mechanism,
    composed_epsilon,
    mechanism_epsilon,
    recomputed_milli,
)
from federation.updates import UpdateHeader, encode_update
from fedledger.audit import Auditor
from ipfs import digest_to_cid
from participant.budget import PrivacyBudgetExhausted
from participant.dp_training import DPConfig, record_mechanism, train_local_dp
from tests.helpers.runtime import FAST, commit, make_env, manifest_of


@pytest.fixture
def env(tmp_path: Path):
    with LocalAnvil(accounts=8) as chain:
        yield make_env(tmp_path, chain, min_updates=1)


def test_dp_spend_is_on_chain_checked_by_the_coordinator_and_composed_by_the_audit(env) -> None:
    n0 = len(env.data[0])
    mech = record_mechanism(DPConfig(epsilon=1.0, delta=1e-5), n0, FAST.batch_size, FAST.epochs)
    two, three = composed_epsilon([mech] * 2, 1e-5), composed_epsilon([mech] * 3, 1e-5)
    budget = (two + three) / 2  # two rounds fit, a third does not
    dp0 = replace(FAST, dp=DPConfig(epsilon=1.0, delta=1e-5, budget=budget))
    dp1 = replace(FAST, dp=DPConfig(epsilon=2.0, delta=1e-5))
    coord = env.coordinator()
    spends: dict[int, list[int]] = {0: [], 1: []}
    for r in (1, 2):
        assert coord.step(None) == "opened"
        for i, settings in ((0, dp0), (1, dp1), (2, FAST)):
            sub = env.participant(i, settings=settings).step()
            assert sub is not None
            if i in spends:
                assert sub.privacy is not None and sub.privacy["epsilon_milli"] == env.ledger.get_submission(r, env.orgs[i].address).epsilon_milli
                spends[i].append(sub.privacy["epsilon_milli"])
            else:
                assert sub.privacy is None
        for i, settings in ((0, dp0), (1, dp1), (2, FAST)):
            env.participant(i, settings=settings).step()  # every member committed: submissions closed, they reveal
        assert coord.close_round(r).finalized
        m = manifest_of(env, r)
        entries = {e["participant"]: e for e in m["submissions"]}
        assert all(e["status"] == "accepted" for e in entries.values())
        assert entries[env.orgs[0].address]["privacy"]["steps"] == mech.steps
        assert "privacy" not in entries[env.orgs[2].address]  # no DP, no section
    a0, a1, a2 = (o.address for o in env.orgs)
    assert env.ledger.total_epsilon_milli(a0) == sum(spends[0]) and env.ledger.total_epsilon_milli(a2) == 0
    assert all(m == recomputed_milli(Mechanism(mech.noise_multiplier, mech.sample_rate, mech.steps, 1.0, 1e-5)) for m in spends[0])

    # Round 3: member 0's budget is spent, so it refuses before training and submits nothing.
    assert coord.step(None) == "opened"
    history = (env.tmp / "org0" / "privacy-history.json").read_bytes()
    with pytest.raises(PrivacyBudgetExhausted, match="privacy budget exhausted"):
        env.participant(0, settings=dp0).step()
    assert env.ledger.get_submission(3, a0) is None
    assert (env.tmp / "org0" / "privacy-history.json").read_bytes() == history
    # Member 1 under-reports: its header declares the real mechanism but claims a third of its cost.
    info = env.ledger.get_round(3)
    spec = env.fed.descriptor.spec
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), spec)
    res = train_local_dp(spec, base, env.data[1], DPConfig(epsilon=2.0, delta=1e-5), seed=3)
    m1 = res.mechanism
    dp = Mechanism(m1.noise_multiplier, m1.sample_rate, m1.steps, m1.clip_norm, 1e-5)
    claim = res.epsilon_milli // 3
    header = UpdateHeader(a1, 3, info.base_model.hex(), spec.digest(), res.num_samples, claim, dp=dp,
                          chain_id=env.ledger.chain_id, ledger=env.ledger.address)  # fmt: skip
    blob = encode_update(header, res.delta, spec)
    commit(env, 1, 3, blob, res.num_samples, claim)
    assert env.participant(2).step() is not None
    env.close_submissions(3)
    env.store.put(blob)
    env.participant(2).step()
    out = coord.close_round(3)
    verdicts = {v.participant: v for v in out.result.verdicts}
    assert verdicts[a1].reason == "epsilon-inconsistent" and "costs" in verdicts[a1].detail
    assert verdicts[a2].accepted

    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert any("epsilon-inconsistent" in n for n in report.rounds[2].notes)
    p0 = report.privacy[a0]
    assert [r["round"] for r in p0["rounds"]] == [1, 2]
    assert p0["ledger_total_epsilon"] == sum(spends[0]) / 1000
    assert p0["composed_epsilon"] == pytest.approx(two, rel=1e-6)
    assert p0["composed_epsilon"] < p0["ledger_total_epsilon"]
    assert report.privacy[a1]["ledger_total_epsilon"] == (sum(spends[1]) + claim) / 1000
    assert report.privacy[a1]["composed_epsilon"] < sum(spends[1]) / 1000
    assert a2 not in report.privacy
    assert report.to_dict()["privacy"][a0]["composed_epsilon"] == p0["composed_epsilon"]
    assert mechanism_epsilon(mech) < p0["composed_epsilon"]
