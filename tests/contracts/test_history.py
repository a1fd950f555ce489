"""Audit queries: a participant's history, one round's record, and the lineage — and their
cost on a ledger with 200 rounds, which must not grow with the number of other rounds."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pytest

from contracts import errors
from contracts import history as queries
from contracts.client import Ledger, RoundState
from tests.contracts.conftest import two_rounds_in_one_block

ROUNDS = 200
EARLY = 10  # queries are first measured when only this many rounds exist
ABORTED = {4, 50, 120}  # rounds closed without a model
QUIET_ROUNDS = (3, 7)  # the only rounds "quiet" takes part in


@dataclass
class Measured:
    value: object
    requests: Counter


def measure(ledger: Ledger, query, *args, **kwargs) -> Measured:
    before = Counter(ledger.request_counts)
    value = query(ledger, *args, **kwargs)
    return Measured(value, ledger.request_counts - before)


@pytest.fixture(scope="module")
def long_ledger(anvil, accounts):
    """A ledger with 200 rounds: "busy" submits every round, "quiet" only in rounds 3 and 7,
    "late" only in round 150. Queries are measured after round 10 and again after round 200.

    Not every member submits, so each round's submissions close at its deadline: the chain clock
    is moved past it. With no abort grace, the coordinator may abort at the deadline."""
    admin = Ledger.deploy(anvil.rpc_url, accounts[0], os.urandom(32), 1, abort_grace=0)
    admin.set_coordinator(accounts[1].address)
    busy, quiet, late = (admin.with_account(a) for a in accounts[2:5])
    for member, name in ((busy, "busy"), (quiet, "quiet"), (late, "late")):
        admin.register_participant(member.account, name)
    coordinator = admin.with_account(accounts[1])
    expected: dict[int, dict] = {}
    early: dict[str, Measured] = {}
    for round_id in range(1, ROUNDS + 1):
        deadline = anvil.block_timestamp() + 60
        assert coordinator.open_round(admin.latest_model(), deadline).round_id == round_id
        members = [busy] + ([quiet] if round_id in QUIET_ROUNDS else []) + ([late] if round_id == 150 else [])
        updates = {}
        for i, member in enumerate(members):
            update = os.urandom(32)
            member.submit_update(round_id, update, 10 + round_id, i * 100)
            updates[member.account] = update
        anvil.increase_time(max(1, deadline - anvil.block_timestamp()))
        if round_id in ABORTED:
            coordinator.abort_round(round_id)
            expected[round_id] = {"updates": updates, "scores": {}}
        else:
            scores = {a: round_id * (j + 1) for j, a in enumerate(updates)}
            coordinator.finalize_round(round_id, os.urandom(32), os.urandom(32), list(scores), list(scores.values()))
            expected[round_id] = {"updates": updates, "scores": scores}
        if round_id == EARLY:
            early["quiet"] = measure(admin, queries.participant_history, quiet.account)
            early["round5"] = measure(admin, queries.round_record, 5)
    return admin, {"busy": busy.account, "quiet": quiet.account, "late": late.account}, expected, early


def test_participant_history_lists_every_round_with_digests_samples_epsilon_and_scores(long_ledger):
    ledger, who, expected, _ = long_ledger
    history = queries.participant_history(ledger, who["quiet"])
    assert history.name == "quiet" and history.active
    assert [s.round_id for s in history.submissions] == list(QUIET_ROUNDS)
    for record in history.submissions:
        assert record.update == expected[record.round_id]["updates"][who["quiet"]]
        assert record.num_samples == 10 + record.round_id and record.epsilon_milli == 100
        assert record.score == expected[record.round_id]["scores"][who["quiet"]]
        assert record.tx_hash.startswith("0x") and record.block_number > 0
    assert history.total_score == sum(expected[r]["scores"][who["quiet"]] for r in QUIET_ROUNDS)
    assert history.total_epsilon_milli == 200

    late = queries.participant_history(ledger, who["late"])
    assert [(s.round_id, s.score) for s in late.submissions] == [(150, expected[150]["scores"][who["late"]])]


def test_unscored_submission_in_an_aborted_round_has_no_score(long_ledger):
    ledger, who, _, _ = long_ledger
    record = queries.round_record(ledger, 4)
    assert record.info.state is RoundState.ABORTED
    assert [s.score for s in record.submissions] == [None]
    assert record.closed_tx is not None


def test_round_record_is_complete(long_ledger):
    ledger, who, expected, _ = long_ledger
    record = queries.round_record(ledger, 7)
    assert record.info.state is RoundState.FINALIZED and record.info.round_id == 7
    assert [s.participant for s in record.submissions] == [who["busy"], who["quiet"]]
    assert {s.participant: s.update for s in record.submissions} == expected[7]["updates"]
    assert {s.participant: s.score for s in record.submissions} == expected[7]["scores"]
    names = [e.name for e in record.events]
    assert names == ["RoundOpened", "UpdateSubmitted", "UpdateSubmitted",
                     "ContributionScored", "ContributionScored", "RoundFinalized"]
    assert all(e.args["roundId"] == 7 for e in record.events)


def test_round_record_pages_through_blocks_one_at_a_time(long_ledger):
    ledger, _, _, _ = long_ledger
    whole = queries.round_record(ledger, 7)
    paged = measure(ledger, queries.round_record, 7, page_size=1)
    assert paged.value == whole
    span = whole.info.closed_block - whole.info.opened_block + 1
    assert paged.requests["eth_getLogs"] == span


def test_query_cost_does_not_grow_with_other_rounds(long_ledger):
    ledger, who, _, early = long_ledger
    assert ledger.current_round() == ROUNDS
    late_quiet = measure(ledger, queries.participant_history, who["quiet"])
    late_round5 = measure(ledger, queries.round_record, 5)
    # Same answers, same JSON-RPC requests (by method and count) with 200 rounds as with 10.
    assert late_quiet.value == early["quiet"].value
    assert late_quiet.requests == early["quiet"].requests
    assert late_round5.value.submissions == early["round5"].value.submissions
    assert late_round5.requests == early["round5"].requests
    # ...and the logs read are exactly the round's own events.
    assert len(late_round5.value.events) == 1 + 1 + 1 + 1  # opened, submitted, scored, finalized
    assert late_round5.requests["eth_getLogs"] == 1


def test_lineage_runs_from_genesis_through_every_finalized_round(long_ledger):
    ledger, _, _, _ = long_ledger
    chain = queries.lineage(ledger)
    assert [s.round_id for s in chain.steps] == [r for r in range(1, ROUNDS + 1) if r not in ABORTED]
    assert chain.steps[0].base_model == chain.genesis_model == ledger.genesis_model()
    for previous, step in zip(chain.steps, chain.steps[1:]):
        assert step.base_model == previous.global_model
    assert chain.latest_model == ledger.latest_model()


def test_lineage_of_a_fresh_ledger_is_just_genesis(deploy_ledger):
    ledger = deploy_ledger()
    chain = queries.lineage(ledger)
    assert chain.steps == () and chain.rebases == () and chain.latest_model == ledger.genesis_model()


def test_lineage_after_a_rebase_to_genesis(federation):
    fed = federation
    rid = fed.open_round()
    for member in fed.participants:
        member.submit_update(rid, os.urandom(32), 1, 0)
    model = os.urandom(32)
    fed.coordinator.finalize_round(rid, model, os.urandom(32), fed.addresses, [1, 1, 1])
    assert [s.round_id for s in queries.lineage(fed.admin).steps] == [rid]
    rebased = fed.admin.rebase_lineage(0)
    chain = queries.lineage(fed.admin)
    assert chain.steps == () and chain.latest_model == fed.admin.genesis_model()
    assert chain.rebases == (queries.Rebase(rid, 0, fed.admin.genesis_model(), rebased.block_number),)


def test_eligible_members_replays_membership_up_to_the_round_opening(federation, accounts):
    fed = federation
    a, b, c = fed.addresses
    d, e = accounts[10].address, accounts[11].address
    r1 = fed.open_round()
    fed.admin.register_participant(d, "joined during round 1")
    fed.admin.remove_participant(c)  # was eligible when round 1 opened: still counted for it
    assert sorted(queries.eligible_members(fed.admin, r1)) == sorted([a, b, c])
    fed.chain.increase_time(3601)
    fed.coordinator.abort_round(r1)
    fed.admin.register_participant(e, "joined between rounds")
    fed.admin.remove_participant(a)
    fed.admin.register_participant(a, "back again")  # re-registered between rounds: eligible
    r2 = fed.open_round()
    assert sorted(queries.eligible_members(fed.admin, r2)) == sorted([a, b, d, e])
    assert fed.admin.round_phases(r2).eligible == 4
    with pytest.raises(errors.UnknownRound):
        queries.eligible_members(fed.admin, r2 + 1)


def test_queries_reject_bad_input(long_ledger):
    ledger, _, _, _ = long_ledger
    with pytest.raises(errors.UnknownRound):
        queries.round_record(ledger, ROUNDS + 1)
    with pytest.raises(errors.InvalidArgument):
        queries.participant_history(ledger, "not-an-address")
    nobody = queries.participant_history(ledger, "0x" + "12" * 20)
    assert nobody.submissions == () and nobody.name == "" and not nobody.active


def test_history_of_two_submissions_in_one_block(custom_federation, anvil):
    """See test_client.test_two_submissions_of_one_member_in_one_block: the audit's history of
    the member must list both rounds."""
    fed = custom_federation(participants=1)
    first = two_rounds_in_one_block(fed, anvil)
    history = queries.participant_history(fed.admin, fed.addresses[0])
    assert [s.round_id for s in history.submissions] == [first, first + 1]
