"""FederationLedger on a real anvil: every function's happy path and every custom error,
reached from Python as its typed exception carrying the error's values. Time moves on the
chain clock (``increase_time``), never by sleeping. The attacks the contract now refuses are in
test_attacks.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contracts import errors
from contracts.build import load_artifact
from contracts.client import DEFAULT_ABORT_GRACE, Ledger, RoundState
from tests.contracts.conftest import (
    open_secure_round,
    pass_deadline,
    pass_grace,
    pass_share_deadline,
)

ZERO_ADDRESS = "0x" + "00" * 20


def digest() -> bytes:
    return os.urandom(32)


# ------------------------------------------------------------------ deployment and governance


def test_deploy_sets_admin_genesis_descriptor_and_parameters(anvil, accounts):
    genesis, descriptor = digest(), digest()
    ledger = Ledger.deploy(
        anvil.rpc_url, accounts[0], genesis, 2, descriptor=descriptor, abort_grace=900, secure_aggregation=True,
        expected_chain_id=anvil.chain_id,
    )  # fmt: skip
    assert ledger.admin() == accounts[0].address
    assert ledger.pending_admin() is None and ledger.coordinator() is None
    assert ledger.genesis_model() == genesis == ledger.latest_model()
    assert ledger.descriptor_digest() == descriptor
    assert (ledger.min_updates(), ledger.abort_grace(), ledger.secure_aggregation()) == (2, 900, True)
    assert (ledger.current_round(), ledger.latest_finalized_round()) == (0, 0)
    assert ledger.participants() == [] and ledger.participant_count() == 0
    assert [e.name for e in ledger.deployment.events] == ["AdminTransferred"]
    assert ledger.deployment.events[0].args == {"previousAdmin": ZERO_ADDRESS, "newAdmin": accounts[0].address}


def test_deploy_defaults(deploy_ledger):
    """Without a descriptor the ledger is bound to the genesis digest; public mode, default grace."""
    ledger = deploy_ledger()
    assert ledger.descriptor_digest() == ledger.genesis_model()
    assert (ledger.abort_grace(), ledger.secure_aggregation()) == (DEFAULT_ABORT_GRACE, False)


def test_constructor_rejects_zero_genesis_descriptor_and_quorum(anvil, accounts):
    with pytest.raises(errors.EmptyModel) as bad_genesis:
        Ledger.deploy(anvil.rpc_url, accounts[0], bytes(32), 1)
    assert bad_genesis.value.function == "constructor"
    with pytest.raises(errors.EmptyDescriptor):
        Ledger.deploy(anvil.rpc_url, accounts[0], digest(), 1, descriptor=bytes(32))
    with pytest.raises(errors.InvalidMinUpdates) as bad_quorum:
        Ledger.deploy(anvil.rpc_url, accounts[0], digest(), 0)
    assert bad_quorum.value.minUpdates == 0
    assert "InvalidMinUpdates(minUpdates=0)" in str(bad_quorum.value)


@pytest.fixture
def ledger_pair(deploy_ledger, accounts):
    admin = deploy_ledger()
    return admin, admin.with_account(accounts[9]), accounts


def test_set_coordinator_emits_change_and_guards(ledger_pair):
    admin, outsider, accounts = ledger_pair
    result = admin.set_coordinator(accounts[1].address)
    assert admin.coordinator() == accounts[1].address
    assert [(e.name, e.args) for e in result.events] == [
        ("CoordinatorChanged", {"previousCoordinator": ZERO_ADDRESS, "newCoordinator": accounts[1].address})
    ]
    with pytest.raises(errors.NotAdmin) as not_admin:
        outsider.set_coordinator(accounts[3].address)
    assert not_admin.value.account == outsider.account
    with pytest.raises(errors.ZeroAddress):
        admin.set_coordinator(ZERO_ADDRESS)


def test_register_and_remove_participants(ledger_pair):
    admin, outsider, accounts = ledger_pair
    a, b, c = accounts[2].address, accounts[3].address, accounts[4].address
    result = admin.register_participant(a, "Bank A")
    assert [(e.name, e.args) for e in result.events] == [
        ("ParticipantRegistered", {"participant": a, "name": "Bank A", "sinceRound": 0})
    ]
    admin.register_participant(b, "CERT B")
    admin.register_participant(c, "MSSP C")
    assert admin.participants() == [a, b, c] and admin.participant_count() == 3
    assert admin.is_participant(a) and admin.participant_name(b) == "CERT B"

    removed = admin.remove_participant(a)
    assert [(e.name, e.args) for e in removed.events] == [("ParticipantRemoved", {"participant": a})]
    assert admin.participants() == [c, b]  # swap-and-pop: the last member takes the free place
    assert not admin.is_participant(a) and admin.participant_name(a) == "Bank A"
    # A returning member is appended and takes the new name.
    admin.register_participant(a, "Bank A (renamed)")
    assert admin.participants() == [c, b, a]
    assert admin.participant_name(a) == "Bank A (renamed)"

    with pytest.raises(errors.AlreadyRegistered) as again:
        admin.register_participant(a, "dup")
    assert again.value.account == a
    with pytest.raises(errors.NotParticipant) as missing:
        admin.remove_participant(accounts[7].address)
    assert missing.value.account == accounts[7].address
    with pytest.raises(errors.EmptyName) as empty:
        admin.register_participant(accounts[7].address, "")
    assert empty.value.participant == accounts[7].address
    with pytest.raises(errors.ZeroAddress):
        admin.register_participant(ZERO_ADDRESS, "nobody")
    with pytest.raises(errors.NotAdmin):
        outsider.register_participant(accounts[7].address, "x")
    with pytest.raises(errors.NotAdmin):
        outsider.remove_participant(b)


def test_registration_during_a_round_counts_from_the_next(federation, accounts):
    fed = federation
    rid = fed.open_round()
    late = accounts[10].address
    registered = fed.admin.register_participant(late, "late")
    assert registered.events[0].args["sinceRound"] == rid
    assert fed.admin.round_phases(rid).eligible == 3


def test_member_keys(federation, accounts):
    member = federation.participants[0]
    key = digest()
    result = member.set_member_key(key)
    assert [(e.name, e.args) for e in result.events] == [("MemberKeySet", {"participant": member.account, "key": key})]
    assert federation.admin.member_key(member.account) == key
    member.set_member_key(b"\x07" * 32)  # replaces the earlier key
    assert federation.admin.member_key(member.account) == b"\x07" * 32
    assert federation.admin.member_key(federation.addresses[1]) is None
    with pytest.raises(errors.EmptyKey) as empty:
        member.set_member_key(bytes(32))
    assert empty.value.participant == member.account
    with pytest.raises(errors.NotParticipant) as outsider:
        federation.admin.with_account(accounts[15]).set_member_key(key)
    assert outsider.value.account == accounts[15].address


def test_two_step_admin_transfer(ledger_pair):
    admin, _, accounts = ledger_pair
    new = admin.with_account(accounts[5])
    with pytest.raises(errors.NotAdmin):
        new.transfer_admin(accounts[5].address)
    started = admin.transfer_admin(accounts[5].address)
    assert started.events[0].name == "AdminTransferStarted"
    assert started.events[0].args == {"currentAdmin": accounts[0].address, "pendingAdmin": accounts[5].address}
    assert admin.pending_admin() == accounts[5].address
    assert admin.admin() == accounts[0].address  # nothing changes until accepted

    with pytest.raises(errors.NotPendingAdmin) as wrong:
        admin.with_account(accounts[6]).accept_admin()
    assert wrong.value.account == accounts[6].address

    accepted = new.accept_admin()
    assert accepted.events[0].args == {"previousAdmin": accounts[0].address, "newAdmin": accounts[5].address}
    assert admin.admin() == accounts[5].address and admin.pending_admin() is None
    with pytest.raises(errors.NotAdmin):
        admin.set_coordinator(accounts[1].address)  # the old admin lost its powers
    new.set_coordinator(accounts[1].address)
    new.transfer_admin(accounts[6].address)
    new.transfer_admin(ZERO_ADDRESS)  # transfer to zero cancels the offer
    with pytest.raises(errors.NotPendingAdmin):
        admin.with_account(accounts[6]).accept_admin()


# ------------------------------------------------------------------ rounds: happy path


def test_full_round_records_everything(federation):
    fed = federation
    genesis = fed.admin.genesis_model()
    deadline = fed.chain.block_timestamp() + 600
    opened = fed.coordinator.open_round(genesis, deadline)
    assert opened.round_id == 1 and opened.gas_used > 0
    assert opened.events[0].args == {"roundId": 1, "baseModel": genesis, "deadline": deadline, "shareDeadline": 0,
                                     "eligible": 3}  # fmt: skip
    info = fed.admin.get_round(1)
    assert (info.state, info.base_model, info.deadline, info.submission_count) == (RoundState.OPEN, genesis, deadline, 0)
    assert info.global_model is None and info.closed_block is None and info.opened_block == opened.block_number
    phases = fed.admin.round_phases(1)
    assert (phases.base_round, phases.eligible, phases.share_deadline, phases.share_count, phases.reveal_count) == (
        0, 3, 0, 0, 0)  # fmt: skip
    assert not phases.submissions_closed and phases.abortable_at == deadline + DEFAULT_ABORT_GRACE

    updates = [digest() for _ in fed.participants]
    blocks = []
    for i, (member, update) in enumerate(zip(fed.participants, updates, strict=True)):
        sent = member.submit_update(1, update, 100 * (i + 1), 250 * i)
        blocks.append(sent.block_number)
        assert sent.events[0].args == {
            "roundId": 1, "participant": member.account, "update": update,
            "numSamples": 100 * (i + 1), "epsilonMilli": 250 * i, "previousBlock": 0,
        }  # fmt: skip
    assert fed.admin.round_phases(1).submissions_closed  # every eligible member submitted
    assert fed.admin.submitters(1) == fed.addresses
    sub = fed.admin.get_submission(1, fed.addresses[1])
    assert (sub.update, sub.num_samples, sub.epsilon_milli, sub.score) == (updates[1], 200, 250, None)

    global_model, manifest = digest(), digest()
    scored = [fed.addresses[2], fed.addresses[0]]  # any order; participant 1 rejected, left unscored
    final = fed.coordinator.finalize_round(1, global_model, manifest, scored, [-5, 40])
    assert [e.name for e in final.events] == ["ContributionScored", "ContributionScored", "RoundFinalized"]
    assert final.events[-1].args == {
        "roundId": 1, "globalModel": global_model, "manifest": manifest, "submissionCount": 3, "scoredCount": 2,
    }
    info = fed.admin.get_round(1)
    assert (info.state, info.global_model, info.manifest) == (RoundState.FINALIZED, global_model, manifest)
    assert info.closed_block == final.block_number
    assert fed.admin.latest_model() == global_model and fed.admin.latest_finalized_round() == 1
    assert fed.admin.get_submission(1, fed.addresses[0]).score == 40
    assert fed.admin.get_submission(1, fed.addresses[2]).score == -5
    assert fed.admin.get_submission(1, fed.addresses[1]).score is None
    assert [fed.admin.total_score(a) for a in fed.addresses] == [40, 0, -5]
    assert [fed.admin.total_epsilon_milli(a) for a in fed.addresses] == [0, 250, 500]

    # Round 2 builds on round 1's model; each submission names its member's previous one.
    fed.coordinator.open_round(global_model, fed.chain.block_timestamp() + 600)
    again = fed.participants[0].submit_update(2, digest(), 1, 1000)
    assert again.events[0].args["previousBlock"] == blocks[0]
    pass_deadline(fed, 2)
    fed.coordinator.finalize_round(2, digest(), digest(), [fed.addresses[0]], [2])
    assert fed.admin.total_score(fed.addresses[0]) == 42
    assert fed.admin.total_epsilon_milli(fed.addresses[0]) == 1000
    assert fed.admin.submission_history(fed.addresses[0]) == (2, 2, again.block_number)
    assert fed.admin.participant_rounds(fed.addresses[0]) == [1, 2]
    assert fed.admin.participant_rounds(fed.addresses[1]) == [1]
    assert fed.admin.get_round(2).base_model == global_model
    assert fed.admin.round_phases(2).base_round == 1
    # Storage keeps each member's latest submission; the client reads older ones from events.
    first = fed.admin.get_submission(1, fed.addresses[0])
    assert (first.update, first.score, first.num_samples) == (updates[0], 40, 100)


def test_abort_keeps_latest_model_and_next_round_reuses_it(federation):
    fed = federation
    genesis = fed.admin.latest_model()
    rid = fed.open_round()
    pass_deadline(fed, rid)  # nobody submitted: closed short of the quorum
    aborted = fed.coordinator.abort_round(rid)
    assert aborted.events[0].args == {"roundId": rid, "submissionCount": 0, "by": fed.coordinator.account}
    info = fed.admin.get_round(rid)
    assert info.state is RoundState.ABORTED and info.global_model is None and info.closed_block == aborted.block_number
    assert fed.admin.latest_model() == genesis
    assert fed.coordinator.open_round(genesis, fed.chain.block_timestamp() + 60).round_id == rid + 1
    assert fed.admin.get_round(rid + 1).base_model == genesis


def test_removed_participant_keeps_its_submission_and_can_be_scored(federation):
    fed = federation
    rid = fed.open_round()
    fed.participants[0].submit_update(rid, digest(), 10, 0)
    fed.admin.remove_participant(fed.addresses[0])
    # It was eligible: the round now waits for its deadline.
    fed.participants[1].submit_update(rid, digest(), 10, 0)
    fed.participants[2].submit_update(rid, digest(), 10, 0)
    assert fed.admin.round_phases(rid).submissions_closed
    fed.coordinator.finalize_round(rid, digest(), digest(), [fed.addresses[0]], [3])
    assert fed.admin.total_score(fed.addresses[0]) == 3
    rid2 = fed.open_round()
    with pytest.raises(errors.NotParticipant):
        fed.participants[0].submit_update(rid2, digest(), 10, 0)


def test_a_removed_member_that_had_not_submitted_holds_the_round_to_its_deadline(federation):
    fed = federation
    rid = fed.open_round()
    fed.admin.remove_participant(fed.addresses[2])
    fed.participants[0].submit_update(rid, digest(), 10, 0)
    fed.participants[1].submit_update(rid, digest(), 10, 0)
    assert not fed.admin.round_phases(rid).submissions_closed
    pass_deadline(fed, rid)
    assert fed.admin.round_phases(rid).submissions_closed


def test_rebase_lineage(federation):
    fed = federation
    rid1 = fed.open_round()
    for member in fed.participants:
        member.submit_update(rid1, digest(), 1, 0)
    m1 = digest()
    fed.coordinator.finalize_round(rid1, m1, digest(), fed.addresses, [1, 1, 1])
    rid2 = fed.open_round()
    for member in fed.participants:
        member.submit_update(rid2, digest(), 1, 0)
    m2 = digest()
    fed.coordinator.finalize_round(rid2, m2, digest(), fed.addresses, [1, 1, 1])

    result = fed.admin.rebase_lineage(rid1)
    assert [(e.name, e.args) for e in result.events] == [
        ("LineageRebased", {"fromRound": rid2, "toRound": rid1, "model": m1})
    ]
    assert (fed.admin.latest_finalized_round(), fed.admin.latest_model()) == (rid1, m1)
    back = fed.admin.rebase_lineage(0)
    assert back.events[0].args == {"fromRound": rid1, "toRound": 0, "model": fed.admin.genesis_model()}
    assert fed.admin.latest_model() == fed.admin.genesis_model()


def test_rebase_lineage_rejections(federation):
    fed = federation
    with pytest.raises(errors.NotAdmin):
        fed.coordinator.rebase_lineage(0)
    with pytest.raises(errors.NotRebaseTarget) as ahead:
        fed.admin.rebase_lineage(1)  # no round yet: only genesis
    assert ahead.value.roundId == 1
    rid = fed.open_round()
    with pytest.raises(errors.RoundStillOpen) as still:
        fed.admin.rebase_lineage(0)
    assert still.value.roundId == rid
    pass_deadline(fed, rid)
    fed.coordinator.abort_round(rid)
    with pytest.raises(errors.NotRebaseTarget) as aborted:
        fed.admin.rebase_lineage(rid)
    assert aborted.value.roundId == rid


# ------------------------------------------------------------------ rounds: every rejection


def test_open_round_rejections(federation):
    fed = federation
    genesis = fed.admin.latest_model()
    now = fed.chain.block_timestamp()
    with pytest.raises(errors.NotCoordinator) as not_coord:
        fed.admin.open_round(genesis, now + 100)
    assert not_coord.value.account == fed.admin.account
    wrong = digest()
    with pytest.raises(errors.BaseModelMismatch) as mismatch:
        fed.coordinator.open_round(wrong, now + 100)
    assert (mismatch.value.expected, mismatch.value.given) == (genesis, wrong)
    assert f"expected=0x{genesis.hex()}" in str(mismatch.value)
    with pytest.raises(errors.DeadlineNotInFuture) as past:
        fed.coordinator.open_round(genesis, now - 1)
    assert past.value.deadline == now - 1 and past.value.nowTimestamp >= now
    with pytest.raises(errors.InvalidShareDeadline) as shares:
        fed.coordinator.open_round(genesis, now + 100, share_deadline=now + 50)  # public mode: none allowed
    assert (shares.value.shareDeadline, shares.value.deadline, shares.value.secureAggregation) == (now + 50, now + 100,
                                                                                                  False)  # fmt: skip
    rid = fed.open_round()
    with pytest.raises(errors.RoundStillOpen) as still:
        fed.coordinator.open_round(genesis, now + 100)
    assert still.value.roundId == rid


def test_submit_update_rejections(federation, accounts):
    fed = federation
    member = fed.participants[0]
    with pytest.raises(errors.RoundNotOpen) as none_open:
        member.submit_update(1, digest(), 1, 0)
    assert none_open.value.roundId == 1
    rid = fed.open_round(seconds=120)
    with pytest.raises(errors.NotParticipant) as outsider:
        fed.admin.with_account(accounts[15]).submit_update(rid, digest(), 1, 0)
    assert outsider.value.account == accounts[15].address
    with pytest.raises(errors.EmptyUpdate) as empty:
        member.submit_update(rid, bytes(32), 1, 0)
    assert empty.value.roundId == rid
    with pytest.raises(errors.NoSamples) as no_samples:
        member.submit_update(rid, digest(), 0, 0)
    assert no_samples.value.roundId == rid
    first = digest()
    member.submit_update(rid, first, 5, 0)
    with pytest.raises(errors.AlreadySubmitted) as twice:
        member.submit_update(rid, digest(), 5, 0)
    assert (twice.value.roundId, twice.value.participant, twice.value.update) == (rid, member.account, first)
    with pytest.raises(errors.RoundNotOpen):
        member.submit_update(rid + 1, digest(), 1, 0)
    fed.admin.register_participant(accounts[15].address, "late")
    with pytest.raises(errors.NotEligible) as late:
        fed.admin.with_account(accounts[15]).submit_update(rid, digest(), 1, 0)
    assert (late.value.roundId, late.value.participant) == (rid, accounts[15].address)
    deadline = fed.admin.get_round(rid).deadline
    pass_deadline(fed, rid)
    with pytest.raises(errors.SubmissionsClosed) as closed:
        fed.participants[1].submit_update(rid, digest(), 5, 0)
    assert (closed.value.roundId, closed.value.deadline) == (rid, deadline)
    fed.coordinator.finalize_round(rid, digest(), digest(), [member.account], [1])
    with pytest.raises(errors.RoundNotOpen):
        fed.participants[2].submit_update(rid, digest(), 5, 0)


def test_submissions_close_once_every_eligible_member_submitted(federation):
    fed = federation
    rid = fed.open_round()
    for member in fed.participants[:2]:
        member.submit_update(rid, digest(), 1, 0)
    assert not fed.admin.round_phases(rid).submissions_closed
    fed.participants[2].submit_update(rid, digest(), 1, 0)
    assert fed.admin.round_phases(rid).submissions_closed
    with pytest.raises(errors.SubmissionsClosed):
        fed.participants[0].submit_update(rid, digest(), 1, 0)


def test_finalize_round_rejections(make_federation):
    fed = make_federation(participants=3, min_updates=2)
    rid = fed.open_round()
    a, b, c = fed.addresses
    fed.participants[0].submit_update(rid, digest(), 1, 0)
    fed.participants[1].submit_update(rid, digest(), 1, 0)
    deadline = fed.admin.get_round(rid).deadline
    with pytest.raises(errors.SubmissionsStillOpen) as still_open:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b], [1, 2])
    assert (still_open.value.roundId, still_open.value.deadline, still_open.value.submitted,
            still_open.value.eligible) == (rid, deadline, 2, 3)  # fmt: skip
    pass_deadline(fed, rid)
    with pytest.raises(errors.NotCoordinator):
        fed.admin.finalize_round(rid, digest(), digest(), [a, b], [1, 2])
    with pytest.raises(errors.LengthMismatch) as lengths:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b], [1])
    assert (lengths.value.participants, lengths.value.scores) == (2, 1)
    with pytest.raises(errors.QuorumNotReached) as quorum:  # two submitted, one aggregated
        fed.coordinator.finalize_round(rid, digest(), digest(), [a], [1])
    assert (quorum.value.have, quorum.value.need) == (1, 2)
    with pytest.raises(errors.NotSubmitter) as not_sub:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, c], [1, 2])
    assert (not_sub.value.roundId, not_sub.value.participant) == (rid, c)
    with pytest.raises(errors.AlreadyScored) as scored_twice:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b, a], [1, 2, 3])
    assert (scored_twice.value.roundId, scored_twice.value.participant) == (rid, a)
    with pytest.raises(errors.EmptyModel):
        fed.coordinator.finalize_round(rid, bytes(32), digest(), [a, b], [1, 2])
    with pytest.raises(errors.EmptyManifest):
        fed.coordinator.finalize_round(rid, digest(), bytes(32), [a, b], [1, 2])
    with pytest.raises(errors.RoundNotOpen) as other:
        fed.coordinator.finalize_round(rid + 1, digest(), digest(), [a, b], [1, 2])
    assert other.value.roundId == rid + 1
    # None of the rejected attempts changed anything.
    assert fed.admin.get_round(rid).state is RoundState.OPEN
    assert fed.admin.total_score(a) == 0
    fed.coordinator.finalize_round(rid, digest(), digest(), [b, a], [1, 2])
    with pytest.raises(errors.RoundNotOpen):
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b], [1, 2])


def test_abort_round_rejections(make_federation, accounts):
    fed = make_federation(participants=3, min_updates=2)
    with pytest.raises(errors.RoundNotOpen) as nothing:
        fed.coordinator.abort_round(1)
    assert nothing.value.roundId == 1
    rid = fed.open_round()
    deadline = fed.admin.get_round(rid).deadline
    abortable_at = deadline + DEFAULT_ABORT_GRACE
    with pytest.raises(errors.GraceNotOver) as member_early:
        fed.participants[0].abort_round(rid)
    assert (member_early.value.roundId, member_early.value.account, member_early.value.abortableAt) == (
        rid, fed.addresses[0], abortable_at)  # fmt: skip
    with pytest.raises(errors.GraceNotOver):
        fed.admin.abort_round(rid)
    with pytest.raises(errors.SubmissionsStillOpen):
        fed.coordinator.abort_round(rid)
    fed.participants[0].submit_update(rid, digest(), 1, 0)
    fed.participants[1].submit_update(rid, digest(), 1, 0)
    pass_deadline(fed, rid)
    with pytest.raises(errors.QuorumReached) as quorum:
        fed.coordinator.abort_round(rid)
    assert (quorum.value.roundId, quorum.value.submissions, quorum.value.quorum, quorum.value.abortableAt) == (
        rid, 2, 2, abortable_at)  # fmt: skip
    pass_grace(fed, rid)
    with pytest.raises(errors.NotParticipant) as outsider:
        fed.admin.with_account(accounts[15]).abort_round(rid)
    assert outsider.value.account == accounts[15].address
    fed.admin.abort_round(rid)  # the admin, after the grace
    with pytest.raises(errors.RoundNotOpen):
        fed.coordinator.abort_round(rid)


def test_views_reject_unknown_rounds(federation):
    fed = federation
    views = {
        "getRound": fed.admin.get_round,
        "roundPhases": fed.admin.round_phases,
        "getSubmission": lambda r: fed.admin.get_submission(r, fed.addresses[0]),
    }
    for function, view in views.items():
        with pytest.raises(errors.UnknownRound) as unknown:
            view(0)
        assert unknown.value.roundId == 0 and unknown.value.function == function
    with pytest.raises(errors.UnknownRound):
        fed.admin.submitters(1)  # read from the round's events, after its record
    rid = fed.open_round()
    with pytest.raises(errors.UnknownRound):
        fed.admin.get_round(rid + 1)
    assert fed.admin.get_submission(rid, fed.addresses[0]) is None
    assert fed.admin.submitters(rid) == []


def test_participants_page(federation):
    fed = federation
    raw = fed.admin.contract.functions
    assert list(raw.participantsPage(1, 2).call()) == fed.addresses[1:3]
    assert list(raw.participantsPage(2, 1000).call()) == fed.addresses[2:]
    assert list(raw.participantsPage(3, 5).call()) == []
    assert fed.admin.participants(page=1) == fed.addresses  # the client pages
    with pytest.raises(errors.PageTooLarge) as too_large:
        fed.admin._call("participantsPage", 0, 1001)
    assert (too_large.value.limit, too_large.value.maxLimit) == (1001, 1000)


# ------------------------------------------------------------------ secure aggregation


def test_secure_round_runs_shares_submissions_and_reveals(secure_federation):
    fed = secure_federation
    for member in fed.participants:
        member.set_member_key(digest())
    rid = open_secure_round(fed)
    phases = fed.admin.round_phases(rid)
    assert phases.share_deadline > 0 and not phases.submissions_closed
    bundles = {}
    for member in fed.participants[:2]:
        bundles[member.account] = digest()
        shared = member.publish_shares(rid, bundles[member.account])
        assert [(e.name, e.args) for e in shared.events] == [
            ("SharesPublished", {"roundId": rid, "participant": member.account, "bundle": bundles[member.account]})
        ]
    pass_share_deadline(fed, rid)
    for member in fed.participants[:2]:
        member.submit_update(rid, digest(), 10, 100)
    phases = fed.admin.round_phases(rid)
    assert phases.share_count == 2 and phases.submissions_closed  # every sharer submitted
    reveal = digest()
    revealed = fed.participants[0].reveal_shares(rid, reveal)
    assert revealed.events[0].args == {"roundId": rid, "participant": fed.addresses[0], "reveal": reveal}
    fed.participants[1].reveal_shares(rid, digest())
    assert fed.admin.round_phases(rid).reveal_count == 2
    fed.coordinator.finalize_round(rid, digest(), digest(), fed.addresses[:2], [5, 6])
    assert fed.admin.get_round(rid).state is RoundState.FINALIZED


def test_secure_open_round_needs_a_share_deadline(secure_federation):
    fed = secure_federation
    now = fed.chain.block_timestamp()
    genesis = fed.admin.latest_model()
    for share in (0, now - 1, now + 200):
        with pytest.raises(errors.InvalidShareDeadline) as bad:
            fed.coordinator.open_round(genesis, now + 200, share_deadline=share)
        assert (bad.value.shareDeadline, bad.value.secureAggregation) == (share, True)


def test_publish_shares_rejections(secure_federation, federation, accounts):
    with pytest.raises(errors.NotSecureAggregation):
        federation.participants[0].publish_shares(1, digest())
    fed = secure_federation
    rid = open_secure_round(fed)
    member = fed.participants[0]
    with pytest.raises(errors.NotParticipant):
        fed.admin.with_account(accounts[15]).publish_shares(rid, digest())
    with pytest.raises(errors.RoundNotOpen):
        member.publish_shares(rid + 1, digest())
    with pytest.raises(errors.EmptyUpdate):
        member.publish_shares(rid, bytes(32))
    member.publish_shares(rid, digest())
    with pytest.raises(errors.AlreadyPublished) as again:
        member.publish_shares(rid, digest())
    assert (again.value.roundId, again.value.participant) == (rid, member.account)
    fed.admin.register_participant(accounts[15].address, "late")
    with pytest.raises(errors.NotEligible):
        fed.admin.with_account(accounts[15]).publish_shares(rid, digest())
    share_deadline = fed.admin.round_phases(rid).share_deadline
    pass_share_deadline(fed, rid)
    with pytest.raises(errors.SharePhaseClosed) as closed:
        fed.participants[1].publish_shares(rid, digest())
    assert (closed.value.roundId, closed.value.shareDeadline) == (rid, share_deadline)


def test_secure_submit_rejections(secure_federation):
    fed = secure_federation
    rid = open_secure_round(fed)
    fed.participants[0].publish_shares(rid, digest())
    share_deadline = fed.admin.round_phases(rid).share_deadline
    with pytest.raises(errors.SharePhaseOpen) as early:
        fed.participants[0].submit_update(rid, digest(), 1, 0)
    assert (early.value.roundId, early.value.shareDeadline) == (rid, share_deadline)
    pass_share_deadline(fed, rid)
    with pytest.raises(errors.NotSharer) as not_sharer:
        fed.participants[1].submit_update(rid, digest(), 1, 0)
    assert (not_sharer.value.roundId, not_sharer.value.participant) == (rid, fed.addresses[1])


def test_reveal_shares_rejections(secure_federation, federation):
    with pytest.raises(errors.NotSecureAggregation):
        federation.participants[0].reveal_shares(1, digest())
    fed = secure_federation
    with pytest.raises(errors.UnknownRound):
        fed.participants[0].reveal_shares(1, digest())
    rid = open_secure_round(fed)
    for member in fed.participants:
        member.publish_shares(rid, digest())  # every eligible member shared: the share phase closes
    fed.participants[0].submit_update(rid, digest(), 1, 0)
    fed.participants[1].submit_update(rid, digest(), 1, 0)
    with pytest.raises(errors.NotSubmitter):
        fed.participants[2].reveal_shares(rid, digest())
    with pytest.raises(errors.SubmissionsStillOpen) as still_open:
        fed.participants[0].reveal_shares(rid, digest())
    assert (still_open.value.submitted, still_open.value.eligible) == (2, 3)  # waits for every sharer
    pass_deadline(fed, rid)
    with pytest.raises(errors.EmptyUpdate):
        fed.participants[0].reveal_shares(rid, bytes(32))
    fed.participants[0].reveal_shares(rid, digest())
    with pytest.raises(errors.AlreadyPublished):
        fed.participants[0].reveal_shares(rid, digest())
    fed.coordinator.finalize_round(rid, digest(), digest(), fed.addresses[:2], [1, 1])
    with pytest.raises(errors.RoundNotOpen):
        fed.participants[1].reveal_shares(rid, digest())


# ------------------------------------------------------------------ the error classes


def test_every_custom_error_has_a_python_class_and_is_exercised():
    """The ABI and contracts.errors agree, and the contract tests raise each error at least once."""
    abi_errors = {item["name"]: [i["name"] for i in item["inputs"]] for item in load_artifact().abi if item["type"] == "error"}
    classes = errors.revert_classes()
    assert set(abi_errors) == set(classes)
    for name, fields in abi_errors.items():
        assert list(classes[name].fields) == fields, name
        assert issubclass(classes[name], errors.LedgerRevert)
    here = Path(__file__).parent
    source = "".join(path.read_text() for path in sorted(here.glob("test_*.py")))
    missing = [name for name in abi_errors if f"errors.{name})" not in source and f"errors.{name}," not in source]
    assert missing == []


def test_revert_errors_survive_pickling(federation):
    """Coordinators may hand errors across processes; the decoded values must survive."""
    import pickle

    rid = federation.open_round()
    with pytest.raises(errors.RoundStillOpen) as exc:
        federation.open_round()
    copy = pickle.loads(pickle.dumps(exc.value))
    assert type(copy) is errors.RoundStillOpen
    assert (copy.roundId, copy.function, str(copy)) == (rid, "openRound", str(exc.value))
    unavailable = pickle.loads(pickle.dumps(errors.RpcUnavailable("http://127.0.0.1:1", "refused")))
    assert unavailable.url == "http://127.0.0.1:1" and "refused" in str(unavailable)
