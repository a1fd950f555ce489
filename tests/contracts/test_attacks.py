"""Attacks on the round protocol that the ledger now refuses, each played on a real anvil.

Each test's docstring says what the attack did against the ledger before (the contract that
kept a digest index per round, let the coordinator finalise or abort at any time, let a member
registered mid-round submit at once, and listed every address ever registered). Time moves on
the chain clock, never by sleeping.
"""

from __future__ import annotations

import os

import pytest
from eth_account import Account

from contracts import errors
from contracts import history as queries
from contracts.client import Ledger, RoundState
from contracts.nonces import forget_nonces
from tests.contracts.conftest import pass_deadline, pass_grace


def digest() -> bytes:
    return os.urandom(32)


def test_front_running_a_members_digest_no_longer_locks_it_out(federation, anvil):
    """Before: submitUpdate refused a digest that anyone had already submitted to the round
    (DuplicateUpdate). Member B, reading A's pending submission in the mempool, sent A's digest
    first with a higher tip; A's transaction then reverted with DuplicateUpdate, and every retry
    too: A was locked out of the round for good and B held A's commitment.

    Now submissions are keyed by (round, member): the update's header binds its sender, so B's
    copy is just an invalid update for the audit, and A's submission lands beside it."""
    fed = federation
    a, b = fed.participants[0], fed.participants[1]
    rid = fed.open_round()
    committed = digest()  # A's commitment, seen by B before it is mined

    anvil.rpc("evm_setAutomine", [False])
    try:
        anvil.rpc("evm_mine")
        # B's copy goes first in the block; A's follows.
        hashes = []
        for member in (b, a):
            data = member.contract.encode_abi("submitUpdate", args=[rid, committed, 10, 0])
            tx = {"to": fed.admin.address, "data": data, "value": 0, "chainId": anvil.chain_id, "gas": 200_000,
                  "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**10 if member is b else 10**9, "type": 2,
                  "nonce": int(anvil.rpc("eth_getTransactionCount", [member.account, "pending"]), 16)}  # fmt: skip
            signer = next(acct for acct in anvil.accounts if acct.address == member.account)
            raw = signer.sign_transaction(tx).raw_transaction
            hashes.append(anvil.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", [True])
    forget_nonces()  # the raw sends used nonces behind the client's back
    receipts = [anvil.rpc("eth_getTransactionReceipt", [h]) for h in hashes]
    assert [int(r["status"], 16) for r in receipts] == [1, 1]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    assert fed.admin.submitters(rid) == [b.account, a.account]
    assert fed.admin.get_submission(rid, a.account).update == committed
    assert fed.admin.get_submission(rid, b.account).update == committed
    # A can be scored for its update; B's copy can be left unscored.
    fed.participants[2].submit_update(rid, digest(), 10, 0)
    fed.coordinator.finalize_round(rid, digest(), digest(), [a.account], [7])
    assert fed.admin.get_submission(rid, a.account).score == 7
    assert fed.admin.get_submission(rid, b.account).score is None


def test_coordinator_cannot_finalize_as_soon_as_its_favoured_members_are_in(make_federation):
    """Before: finalizeRound was accepted as soon as the quorum had submitted, at any time before
    the deadline. A coordinator favouring some members finalised the moment they were in, so the
    other members' updates, still on their way, were shut out of the round (and of its scores).

    Now submissions stay open until the deadline or until every eligible member submitted, and
    finalizeRound is refused with SubmissionsStillOpen until then."""
    fed = make_federation(participants=4, min_updates=2)
    favoured, others = fed.participants[:2], fed.participants[2:]

    rid = fed.open_round()
    for member in favoured:
        member.submit_update(rid, digest(), 10, 0)
    deadline = fed.admin.get_round(rid).deadline
    with pytest.raises(errors.SubmissionsStillOpen) as refused:
        fed.coordinator.finalize_round(rid, digest(), digest(), [m.account for m in favoured], [1, 1])
    assert (refused.value.submitted, refused.value.eligible, refused.value.deadline) == (2, 4, deadline)
    others[0].submit_update(rid, digest(), 10, 0)
    with pytest.raises(errors.SubmissionsStillOpen):
        fed.coordinator.finalize_round(rid, digest(), digest(), [m.account for m in favoured], [1, 1])
    # Everyone eligible submitted: allowed before the deadline.
    others[1].submit_update(rid, digest(), 10, 0)
    fed.coordinator.finalize_round(rid, digest(), digest(), fed.addresses, [1, 1, 1, 1])

    # Or the deadline passed: allowed with whoever submitted.
    rid = fed.open_round()
    for member in favoured:
        member.submit_update(rid, digest(), 10, 0)
    with pytest.raises(errors.SubmissionsStillOpen):
        fed.coordinator.finalize_round(rid, digest(), digest(), [m.account for m in favoured], [1, 1])
    pass_deadline(fed, rid)
    fed.coordinator.finalize_round(rid, digest(), digest(), [m.account for m in favoured], [1, 1])
    assert fed.admin.get_round(rid).state is RoundState.FINALIZED


def test_coordinator_cannot_abort_a_round_that_reached_the_quorum(make_federation, accounts):
    """Before: abortRound was the coordinator's alone, at any time. A coordinator could throw
    away a round that reached the quorum (say, one whose honest aggregate it disliked), and a
    coordinator that went away left its round open for ever: nobody else could abort it, and no
    new round could open (RoundStillOpen).

    Now the coordinator aborts only a round whose submissions closed short of the quorum
    (QuorumReached otherwise) until the deadline plus the grace period; from then on any member,
    the admin or the coordinator may abort an abandoned round; a non-member still cannot."""
    fed = make_federation(participants=3, min_updates=2)
    rid = fed.open_round()
    for member in fed.participants[:2]:
        member.submit_update(rid, digest(), 10, 0)
    with pytest.raises(errors.SubmissionsStillOpen):
        fed.coordinator.abort_round(rid)  # before the deadline
    pass_deadline(fed, rid)
    with pytest.raises(errors.QuorumReached) as refused:
        fed.coordinator.abort_round(rid)
    assert (refused.value.submissions, refused.value.quorum) == (2, 2)
    assert refused.value.abortableAt == fed.admin.round_phases(rid).abortable_at
    with pytest.raises(errors.GraceNotOver):
        fed.participants[2].abort_round(rid)  # a member must wait for the grace too

    # The coordinator goes away. After the grace, an outsider still cannot abort; a member can.
    pass_grace(fed, rid)
    with pytest.raises(errors.NotParticipant):
        fed.admin.with_account(accounts[15]).abort_round(rid)
    aborted = fed.participants[2].abort_round(rid)
    assert aborted.events[0].args == {"roundId": rid, "submissionCount": 2, "by": fed.addresses[2]}
    assert fed.admin.get_round(rid).state is RoundState.ABORTED
    # The federation goes on: the next round opens from the same model.
    assert fed.open_round() == rid + 1


def test_a_puppet_registered_mid_round_cannot_help_close_it(make_federation, accounts):
    """Before: a member registered while a round was open could submit to it at once. An admin
    colluding with the coordinator registered puppets mid-round whose submissions made up the
    quorum (and the count of members that had submitted), so the round could be closed and
    finalised on puppet updates before the honest members had sent theirs.

    Now a round's eligible members are fixed when it opens: the puppet is refused NotEligible,
    the round's eligible count does not move, and submissions stay open until the honest members
    have submitted or the deadline passed."""
    fed = make_federation(participants=3, min_updates=2)
    rid = fed.open_round()
    fed.participants[0].submit_update(rid, digest(), 10, 0)
    puppets = [fed.admin.with_account(a) for a in accounts[12:14]]
    for puppet in puppets:
        fed.admin.register_participant(puppet.account, "puppet")
        with pytest.raises(errors.NotEligible) as refused:
            puppet.submit_update(rid, digest(), 10, 0)
        assert (refused.value.roundId, refused.value.participant) == (rid, puppet.account)
    phases = fed.admin.round_phases(rid)
    assert (phases.eligible, phases.submissions_closed) == (3, False)
    with pytest.raises(errors.SubmissionsStillOpen):
        fed.coordinator.finalize_round(rid, digest(), digest(), [fed.addresses[0]], [1])
    assert fed.admin.get_round(rid).submission_count == 1
    assert sorted(queries.eligible_members(fed.admin, rid)) == sorted(fed.addresses)
    # From the next round on, they are members like any other.
    fed.participants[1].submit_update(rid, digest(), 10, 0)
    fed.participants[2].submit_update(rid, digest(), 10, 0)
    fed.coordinator.finalize_round(rid, digest(), digest(), fed.addresses[:2], [1, 1])
    nxt = fed.open_round()
    assert fed.admin.round_phases(nxt).eligible == 5
    puppets[0].submit_update(nxt, digest(), 10, 0)


def test_participants_lists_only_the_active_set_and_pages(deploy_ledger, accounts):
    """Before: participants() walked every address ever registered and filtered out the removed
    ones, about 4,200 gas an entry, removed or not. The list only grew, so after some 7,000
    registrations the coordinator's poll of participants() hit the node's eth_call gas cap and
    failed: the federation could not run a round.

    Now the active set is kept swap-and-pop: participants() and participantCount() hold the
    active members only, and participantsPage(offset, limit) reads them in bounded pages (the
    client pages). Removed members cost nothing."""
    ledger = deploy_ledger()
    churned = [Account.create().address for _ in range(60)]
    for address in churned:
        ledger.register_participant(address, "org")
    for address in churned[:50]:
        ledger.remove_participant(address)
    active = churned[50:]
    assert ledger.participant_count() == 10
    assert sorted(ledger.participants()) == sorted(active)
    assert sorted(ledger.participants(page=3)) == sorted(active)
    assert ledger.participants(page=3) == ledger.participants()
    pages = [list(ledger.contract.functions.participantsPage(o, 4).call()) for o in (0, 4, 8, 12)]
    assert [len(p) for p in pages] == [4, 4, 2, 0]
    assert [a for page in pages for a in page] == ledger.participants()
    assert not any(ledger.is_participant(a) for a in churned[:50])

    # The read costs the same as on a ledger that only ever had these ten members.
    fresh = deploy_ledger()
    for address in active:
        fresh.register_participant(address, "org")
    churned_gas = ledger.contract.functions.participants().estimate_gas()
    fresh_gas = fresh.contract.functions.participants().estimate_gas()
    assert churned_gas == fresh_gas


def test_rebase_moves_the_head_back_and_the_next_round_starts_there(federation):
    """The governed way back from a bad global model. Before there was none: a model later found
    poisoned stayed latestModel() for good, and every later round had to build on it.

    Now the admin rebases the lineage onto an earlier finalized round (or genesis) while no round
    is open; the next round must start from that round's model (BaseModelMismatch otherwise),
    and the lineage follows base rounds back from the head and lists the rebase."""
    fed = federation
    models = {}
    for _ in range(3):
        rid = fed.open_round()
        for member in fed.participants:
            member.submit_update(rid, digest(), 10, 0)
        models[rid] = digest()
        fed.coordinator.finalize_round(rid, models[rid], digest(), fed.addresses, [1, 1, 1])
    # Round 3's model turns out to be poisoned: back to round 2... then even to round 1.
    fed.admin.rebase_lineage(2)
    fed.admin.rebase_lineage(1)
    assert fed.admin.latest_model() == models[1]
    deadline = fed.chain.block_timestamp() + 600
    with pytest.raises(errors.BaseModelMismatch) as refused:
        fed.coordinator.open_round(models[3], deadline)
    assert (refused.value.expected, refused.value.given) == (models[1], models[3])
    rid = fed.coordinator.open_round(models[1], deadline).round_id
    assert fed.admin.get_round(rid).base_model == models[1]
    assert fed.admin.round_phases(rid).base_round == 1
    for member in fed.participants:
        member.submit_update(rid, digest(), 10, 0)
    fed.coordinator.finalize_round(rid, digest(), digest(), fed.addresses, [1, 1, 1])

    chain = queries.lineage(fed.admin)
    assert [s.round_id for s in chain.steps] == [1, rid]  # rounds 2 and 3 are off the lineage
    assert chain.steps[1].base_model == models[1]
    assert [(r.from_round, r.to_round, r.model) for r in chain.rebases] == [(3, 2, models[2]), (2, 1, models[1])]
    assert chain.latest_model == fed.admin.latest_model()
    # A model once rebased away cannot be brought back by another rebase: only the lineage's own rounds qualify.
    for gone in (2, 3):
        with pytest.raises(errors.NotRebaseTarget):
            fed.admin.rebase_lineage(gone)
    fed.admin.rebase_lineage(1)  # an ancestor of the head is fine


def test_an_abandoned_round_never_halts_the_federation(federation, accounts):
    """A coordinator that disappears with a round open: once the grace is over a member aborts
    it and a newly appointed coordinator opens the next round."""
    fed = federation
    rid = fed.open_round()
    pass_grace(fed, rid)
    fed.participants[0].abort_round(rid)
    fed.admin.set_coordinator(accounts[16].address)
    successor: Ledger = fed.admin.with_account(accounts[16])
    opened = successor.open_round(fed.admin.latest_model(), fed.chain.block_timestamp() + 600)
    assert opened.round_id == rid + 1
