"""FederationLedger on a real anvil: every function's happy path and every custom error,
reached from Python as its typed exception carrying the error's values."""

from __future__ import annotations

import os

import pytest

from contracts import errors
from contracts.build import load_artifact
from contracts.client import Ledger, RoundState


def digest() -> bytes:
    return os.urandom(32)


# ------------------------------------------------------------------ governance


def test_deploy_sets_admin_genesis_and_quorum(deploy_ledger, accounts):
    genesis = digest()
    ledger = deploy_ledger(min_updates=2, genesis=genesis)
    assert ledger.admin() == accounts[0].address
    assert ledger.pending_admin() is None
    assert ledger.coordinator() is None
    assert ledger.genesis_model() == genesis
    assert ledger.latest_model() == genesis
    assert ledger.current_round() == 0
    assert ledger.latest_finalized_round() == 0
    assert ledger.min_updates() == 2
    assert ledger.participants() == []
    assert [e.name for e in ledger.deployment.events] == ["AdminTransferred"]
    assert ledger.deployment.events[0].args == {
        "previousAdmin": "0x" + "00" * 20,
        "newAdmin": accounts[0].address,
    }


def test_constructor_rejects_zero_genesis_and_zero_quorum(anvil, accounts):
    with pytest.raises(errors.EmptyModel) as bad_genesis:
        Ledger.deploy(anvil.rpc_url, accounts[0], bytes(32), 1)
    assert bad_genesis.value.function == "constructor"
    with pytest.raises(errors.InvalidMinUpdates) as bad_quorum:
        Ledger.deploy(anvil.rpc_url, accounts[0], digest(), 0)
    assert bad_quorum.value.minUpdates == 0
    assert "InvalidMinUpdates(minUpdates=0)" in str(bad_quorum.value)


def test_set_coordinator_emits_change_and_guards(ledger_pair):
    admin, outsider, accounts = ledger_pair
    result = admin.set_coordinator(accounts[1].address)
    assert admin.coordinator() == accounts[1].address
    assert [(e.name, e.args) for e in result.events] == [
        ("CoordinatorChanged", {"previousCoordinator": "0x" + "00" * 20, "newCoordinator": accounts[1].address})
    ]
    with pytest.raises(errors.NotAdmin) as not_admin:
        outsider.set_coordinator(accounts[3].address)
    assert not_admin.value.account == outsider.account
    with pytest.raises(errors.ZeroAddress):
        admin.set_coordinator("0x" + "00" * 20)


@pytest.fixture
def ledger_pair(deploy_ledger, accounts):
    admin = deploy_ledger()
    return admin, admin.with_account(accounts[9]), accounts


def test_register_and_remove_participants(ledger_pair):
    admin, outsider, accounts = ledger_pair
    a, b = accounts[2].address, accounts[3].address
    result = admin.register_participant(a, "Bank A")
    assert [(e.name, e.args) for e in result.events] == [
        ("ParticipantRegistered", {"participant": a, "name": "Bank A"})
    ]
    admin.register_participant(b, "CERT B")
    assert admin.participants() == [a, b]
    assert admin.is_participant(a) and admin.participant_name(b) == "CERT B"

    removed = admin.remove_participant(a)
    assert [(e.name, e.args) for e in removed.events] == [("ParticipantRemoved", {"participant": a})]
    assert admin.participants() == [b]
    assert not admin.is_participant(a)
    # A returning member keeps its place (first registration order) and takes the new name.
    admin.register_participant(a, "Bank A (renamed)")
    assert admin.participants() == [a, b]
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
        admin.register_participant("0x" + "00" * 20, "nobody")
    with pytest.raises(errors.NotAdmin):
        outsider.register_participant(accounts[7].address, "x")
    with pytest.raises(errors.NotAdmin):
        outsider.remove_participant(b)


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
    # Transfer to zero cancels an offer.
    new.transfer_admin(accounts[6].address)
    new.transfer_admin("0x" + "00" * 20)
    with pytest.raises(errors.NotPendingAdmin):
        admin.with_account(accounts[6]).accept_admin()


# ------------------------------------------------------------------ rounds: happy path


def test_full_round_records_everything(federation):
    fed = federation
    genesis = fed.admin.genesis_model()
    deadline = fed.chain.block_timestamp() + 600
    opened = fed.coordinator.open_round(genesis, deadline)
    assert opened.round_id == 1 and opened.gas_used > 0
    assert opened.events[0].args == {"roundId": 1, "baseModel": genesis, "deadline": deadline}
    info = fed.admin.get_round(1)
    assert (info.state, info.base_model, info.deadline, info.submission_count) == (RoundState.OPEN, genesis, deadline, 0)
    assert info.global_model is None and info.closed_block is None and info.opened_block == opened.block_number

    updates = [digest() for _ in fed.participants]
    for i, (member, update) in enumerate(zip(fed.participants, updates, strict=True)):
        sent = member.submit_update(1, update, 100 * (i + 1), 250 * i)
        assert sent.events[0].args == {
            "roundId": 1, "participant": member.account, "update": update,
            "numSamples": 100 * (i + 1), "epsilonMilli": 250 * i,
        }
    assert fed.admin.submitters(1) == fed.addresses
    sub = fed.admin.get_submission(1, fed.addresses[1])
    assert (sub.update, sub.num_samples, sub.epsilon_milli, sub.score) == (updates[1], 200, 250, None)

    global_model, manifest = digest(), digest()
    scored = [fed.addresses[2], fed.addresses[0]]  # any order; participant 1 left unscored
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

    # Round 2 must build on round 1's global model; totals accumulate across rounds.
    fed.coordinator.open_round(global_model, fed.chain.block_timestamp() + 600)
    fed.participants[0].submit_update(2, digest(), 1, 1000)
    fed.coordinator.finalize_round(2, digest(), digest(), [fed.addresses[0]], [2])
    assert fed.admin.total_score(fed.addresses[0]) == 42
    assert fed.admin.total_epsilon_milli(fed.addresses[0]) == 1000
    assert fed.admin.participant_rounds(fed.addresses[0]) == [1, 2]
    assert fed.admin.participant_rounds(fed.addresses[1]) == [1]
    assert fed.admin.get_round(2).base_model == global_model


def test_abort_keeps_latest_model_and_next_round_reuses_it(federation):
    fed = federation
    genesis = fed.admin.latest_model()
    rid = fed.open_round()
    fed.participants[0].submit_update(rid, digest(), 10, 0)
    aborted = fed.coordinator.abort_round(rid)
    assert aborted.events[0].args == {"roundId": rid, "submissionCount": 1}
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
    with pytest.raises(errors.NotParticipant):
        fed.participants[0].submit_update(rid + 1, digest(), 10, 0)
    fed.coordinator.finalize_round(rid, digest(), digest(), [fed.addresses[0]], [3])
    assert fed.admin.total_score(fed.addresses[0]) == 3
    assert fed.admin.submitters(rid) == [fed.addresses[0]]


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
    with pytest.raises(errors.DuplicateUpdate) as dup:
        fed.participants[1].submit_update(rid, first, 5, 0)
    assert (dup.value.roundId, dup.value.update) == (rid, first)
    with pytest.raises(errors.RoundNotOpen):
        member.submit_update(rid + 1, digest(), 1, 0)
    deadline = fed.admin.get_round(rid).deadline
    fed.chain.increase_time(121)
    with pytest.raises(errors.DeadlinePassed) as late:
        fed.participants[1].submit_update(rid, digest(), 5, 0)
    assert (late.value.roundId, late.value.deadline) == (rid, deadline)
    # After the deadline the coordinator can still close the round.
    fed.coordinator.finalize_round(rid, digest(), digest(), [], [])
    with pytest.raises(errors.RoundNotOpen):
        fed.participants[2].submit_update(rid, digest(), 5, 0)


def test_finalize_round_rejections(make_federation):
    fed = make_federation(participants=3, min_updates=2)
    rid = fed.open_round()
    a, b, c = fed.addresses
    fed.participants[0].submit_update(rid, digest(), 1, 0)
    with pytest.raises(errors.QuorumNotReached) as quorum:
        fed.coordinator.finalize_round(rid, digest(), digest(), [], [])
    assert (quorum.value.have, quorum.value.need) == (1, 2)
    fed.participants[1].submit_update(rid, digest(), 1, 0)
    with pytest.raises(errors.NotCoordinator):
        fed.admin.finalize_round(rid, digest(), digest(), [], [])
    with pytest.raises(errors.LengthMismatch) as lengths:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b], [1])
    assert (lengths.value.participants, lengths.value.scores) == (2, 1)
    with pytest.raises(errors.NotSubmitter) as not_sub:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, c], [1, 2])
    assert (not_sub.value.roundId, not_sub.value.participant) == (rid, c)
    with pytest.raises(errors.AlreadyScored) as scored_twice:
        fed.coordinator.finalize_round(rid, digest(), digest(), [a, b, a], [1, 2, 3])
    assert (scored_twice.value.roundId, scored_twice.value.participant) == (rid, a)
    with pytest.raises(errors.EmptyModel):
        fed.coordinator.finalize_round(rid, bytes(32), digest(), [], [])
    with pytest.raises(errors.EmptyManifest):
        fed.coordinator.finalize_round(rid, digest(), bytes(32), [], [])
    with pytest.raises(errors.RoundNotOpen) as other:
        fed.coordinator.finalize_round(rid + 1, digest(), digest(), [], [])
    assert other.value.roundId == rid + 1
    # None of the rejected attempts changed anything.
    assert fed.admin.get_round(rid).state is RoundState.OPEN
    assert fed.admin.total_score(a) == 0
    fed.coordinator.finalize_round(rid, digest(), digest(), [b, a], [1, 2])
    with pytest.raises(errors.RoundNotOpen):
        fed.coordinator.finalize_round(rid, digest(), digest(), [], [])


def test_abort_round_rejections(federation):
    fed = federation
    with pytest.raises(errors.RoundNotOpen) as nothing:
        fed.coordinator.abort_round(1)
    assert nothing.value.roundId == 1
    rid = fed.open_round()
    with pytest.raises(errors.NotCoordinator):
        fed.participants[0].abort_round(rid)
    fed.coordinator.abort_round(rid)
    with pytest.raises(errors.RoundNotOpen):
        fed.coordinator.abort_round(rid)


def test_views_reject_unknown_rounds(federation):
    fed = federation
    for view in (fed.admin.get_round, fed.admin.submitters, lambda r: fed.admin.get_submission(r, fed.addresses[0])):
        with pytest.raises(errors.UnknownRound) as unknown:
            view(0)
        assert unknown.value.roundId == 0
        assert unknown.value.function in ("getRound", "submitters", "getSubmission")
    rid = fed.open_round()
    with pytest.raises(errors.UnknownRound):
        fed.admin.get_round(rid + 1)
    assert fed.admin.get_submission(rid, fed.addresses[0]) is None
    assert fed.admin.submitters(rid) == []


def test_every_custom_error_has_a_python_class_and_is_exercised():
    """The ABI and contracts.errors agree, and this module raises each error at least once."""
    abi_errors = {item["name"]: [i["name"] for i in item["inputs"]] for item in load_artifact().abi if item["type"] == "error"}
    classes = errors.revert_classes()
    assert set(abi_errors) == set(classes)
    for name, fields in abi_errors.items():
        assert list(classes[name].fields) == fields, name
        assert issubclass(classes[name], errors.LedgerRevert)
    source = open(__file__).read()
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
