// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FederationLedger} from "../FederationLedger.sol";
import {LedgerTest} from "./utils/LedgerTest.sol";

/**
 * Unit tests of every function and custom error of FederationLedger in public mode (no secure
 * aggregation), quorum of two; the secure-aggregation phases are in SecureAggregationTest and
 * the fuzz tests in FederationLedgerFuzzTest below.
 */
contract FederationLedgerTest is LedgerTest {
    function setUp() public {
        _deploy(2, false);
    }

    // ------------------------------------------------------------ constructor and views

    function test_constructor_setsEveryView() public {
        vm.expectEmit(true, true, true, true);
        emit FederationLedger.AdminTransferred(address(0), address(this));
        FederationLedger fresh = new FederationLedger(GENESIS, DESCRIPTOR, 3, 600, true);
        vm.assertEq(fresh.admin(), address(this), "admin");
        vm.assertEq(fresh.pendingAdmin(), address(0), "pendingAdmin");
        vm.assertEq(fresh.coordinator(), address(0), "coordinator");
        vm.assertEq(fresh.genesisModel(), GENESIS, "genesisModel");
        vm.assertEq(fresh.descriptor(), DESCRIPTOR, "descriptor");
        vm.assertEq(uint256(fresh.minUpdates()), 3, "minUpdates");
        vm.assertEq(uint256(fresh.abortGrace()), 600, "abortGrace");
        vm.assertTrue(fresh.secureAggregation(), "secureAggregation");
        vm.assertEq(fresh.latestModel(), GENESIS, "latestModel");
        vm.assertEq(fresh.currentRound(), 0, "currentRound");
        vm.assertEq(fresh.latestFinalizedRound(), 0, "latestFinalizedRound");
        vm.assertEq(fresh.participantCount(), 0, "participantCount");
        vm.assertEq(fresh.participants().length, 0, "participants");
    }

    function test_constructor_revertsOnEmptyModel() public {
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyModel.selector));
        new FederationLedger(bytes32(0), DESCRIPTOR, 1, GRACE, false);
    }

    function test_constructor_revertsOnEmptyDescriptor() public {
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyDescriptor.selector));
        new FederationLedger(GENESIS, bytes32(0), 1, GRACE, false);
    }

    function test_constructor_revertsOnZeroQuorum() public {
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.InvalidMinUpdates.selector, uint32(0)));
        new FederationLedger(GENESIS, DESCRIPTOR, 0, GRACE, false);
    }

    // ------------------------------------------------------------ governance

    function test_setCoordinator_emitsAndReplaces() public {
        address next = makeAddr("next coordinator");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.CoordinatorChanged(coordinator, next);
        ledger.setCoordinator(next);
        vm.assertEq(ledger.coordinator(), next, "coordinator");
    }

    function test_setCoordinator_revertsForNonAdmin() public {
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, outsider));
        ledger.setCoordinator(outsider);
    }

    function test_setCoordinator_revertsOnZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.ZeroAddress.selector));
        ledger.setCoordinator(address(0));
    }

    function test_registerParticipant_recordsMemberAndSince() public {
        address member = makeAddr("late member");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.ParticipantRegistered(member, "Late Bank", 0);
        ledger.registerParticipant(member, "Late Bank");
        vm.assertTrue(ledger.isParticipant(member), "isParticipant");
        vm.assertEq(ledger.participantName(member), "Late Bank", "name");
        vm.assertEq(ledger.participantCount(), MEMBERS + 1, "count");
        vm.assertEq(ledger.participants()[MEMBERS], member, "appended");
        (uint256 count, uint256 lastRound, uint256 lastBlock) = ledger.submissionHistory(member);
        vm.assertEq(count + lastRound + lastBlock, 0, "no submissions yet");

        // Registered while round 1 is open: sinceRound is 1, so it takes part from round 2.
        uint256 roundId = _open();
        address later = makeAddr("mid-round member");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.ParticipantRegistered(later, "Mid", roundId);
        ledger.registerParticipant(later, "Mid");
    }

    function test_registerParticipant_reverts() public {
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, outsider));
        ledger.registerParticipant(outsider, "x");

        vm.expectRevert(abi.encodeWithSelector(FederationLedger.ZeroAddress.selector));
        ledger.registerParticipant(address(0), "nobody");

        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyName.selector, outsider));
        ledger.registerParticipant(outsider, "");

        vm.expectRevert(abi.encodeWithSelector(FederationLedger.AlreadyRegistered.selector, members[0]));
        ledger.registerParticipant(members[0], "again");
    }

    function test_removeParticipant_swapsAndPops() public {
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.ParticipantRemoved(members[1]);
        ledger.removeParticipant(members[1]);
        address[] memory active = ledger.participants();
        vm.assertEq(active.length, MEMBERS - 1, "count");
        vm.assertEq(active[1], members[MEMBERS - 1], "the last member moved into the gap");
        vm.assertFalse(ledger.isParticipant(members[1]), "removed");
        vm.assertEq(ledger.participantName(members[1]), "org-1", "its name stays on record");

        ledger.removeParticipant(members[MEMBERS - 1]); // the one that moved
        ledger.removeParticipant(members[0]);
        active = ledger.participants();
        vm.assertEq(active.length, 2, "two left");
        vm.assertEq(active[0], members[2], "first");
        vm.assertEq(active[1], members[3], "second");

        // A returning member is appended again and keeps its totals.
        ledger.registerParticipant(members[1], "org-1 again");
        vm.assertEq(ledger.participants()[2], members[1], "re-registered at the end");
        vm.assertEq(ledger.participantName(members[1]), "org-1 again", "renamed");
    }

    function test_removeParticipant_reverts() public {
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, outsider));
        ledger.removeParticipant(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        ledger.removeParticipant(outsider);
        ledger.removeParticipant(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, members[0]));
        ledger.removeParticipant(members[0]);
    }

    function test_setMemberKey_bindsAndReplaces() public {
        bytes32 key = keccak256("x25519 public key");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.MemberKeySet(members[0], key);
        vm.prank(members[0]);
        ledger.setMemberKey(key);
        vm.assertEq(ledger.memberKey(members[0]), key, "key");
        vm.prank(members[0]);
        ledger.setMemberKey(bytes32(uint256(7)));
        vm.assertEq(ledger.memberKey(members[0]), bytes32(uint256(7)), "replaced");
        vm.assertEq(ledger.memberKey(members[1]), bytes32(0), "others unset");
    }

    function test_setMemberKey_reverts() public {
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        ledger.setMemberKey(bytes32(uint256(1)));
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyKey.selector, members[0]));
        ledger.setMemberKey(bytes32(0));
        ledger.removeParticipant(members[0]);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, members[0]));
        ledger.setMemberKey(bytes32(uint256(1)));
    }

    function test_adminTransfer_isTwoStep() public {
        address next = makeAddr("next admin");
        vm.prank(next);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, next));
        ledger.transferAdmin(next);

        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.AdminTransferStarted(address(this), next);
        ledger.transferAdmin(next);
        vm.assertEq(ledger.pendingAdmin(), next, "pending");
        vm.assertEq(ledger.admin(), address(this), "unchanged until accepted");

        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotPendingAdmin.selector, outsider));
        ledger.acceptAdmin();

        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.AdminTransferred(address(this), next);
        vm.prank(next);
        ledger.acceptAdmin();
        vm.assertEq(ledger.admin(), next, "admin");
        vm.assertEq(ledger.pendingAdmin(), address(0), "pending cleared");
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, address(this)));
        ledger.setCoordinator(outsider);

        // Offering to zero cancels a pending offer.
        vm.startPrank(next);
        ledger.transferAdmin(outsider);
        ledger.transferAdmin(address(0));
        vm.stopPrank();
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotPendingAdmin.selector, outsider));
        ledger.acceptAdmin();
    }

    // ------------------------------------------------------------ openRound

    function test_openRound_recordsTheRound() public {
        uint64 deadline = uint64(block.timestamp) + ROUND;
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundOpened(1, GENESIS, deadline, 0, MEMBERS);
        vm.prank(coordinator);
        uint256 roundId = ledger.openRound(GENESIS, 0, deadline);
        vm.assertEq(roundId, 1, "ids start at 1");
        vm.assertEq(ledger.currentRound(), 1, "currentRound");
        _checkOpenedRound(deadline);
        _checkOpenedPhases(deadline);
    }

    function _checkOpenedRound(uint64 deadline) private view {
        (bytes32 base, bytes32 model, bytes32 manifest, uint64 dl, FederationLedger.RoundState state, uint256 count,
            uint256 opened, uint256 closedBlock) = ledger.getRound(1);
        vm.assertEq(base, GENESIS, "base");
        vm.assertEq(model, bytes32(0), "no model yet");
        vm.assertEq(manifest, bytes32(0), "no manifest yet");
        vm.assertEq(uint256(dl), deadline, "deadline");
        vm.assertTrue(state == FederationLedger.RoundState.Open, "open");
        vm.assertEq(count, 0, "no submissions");
        vm.assertEq(opened, block.number, "opened block");
        vm.assertEq(closedBlock, 0, "not closed");
    }

    function _checkOpenedPhases(uint64 deadline) private view {
        (uint256 baseRound, uint256 eligible, uint64 shareDeadline, uint256 shares, uint256 reveals, bool closed,
            uint256 abortableAt) = ledger.roundPhases(1);
        vm.assertEq(baseRound, 0, "base round is genesis");
        vm.assertEq(eligible, MEMBERS, "eligible");
        vm.assertEq(uint256(shareDeadline) + shares + reveals, 0, "no share phase");
        vm.assertFalse(closed, "submissions open");
        vm.assertEq(abortableAt, uint256(deadline) + GRACE, "abortableAt");
    }

    function test_openRound_reverts() public {
        uint64 deadline = uint64(block.timestamp) + ROUND;
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotCoordinator.selector, address(this)));
        ledger.openRound(GENESIS, 0, deadline);

        vm.startPrank(coordinator);
        bytes32 wrong = keccak256("wrong base");
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.BaseModelMismatch.selector, GENESIS, wrong));
        ledger.openRound(wrong, 0, deadline);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.DeadlineNotInFuture.selector, uint64(block.timestamp), block.timestamp)
        );
        ledger.openRound(GENESIS, 0, uint64(block.timestamp));
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.InvalidShareDeadline.selector, deadline - 1, deadline, false)
        );
        ledger.openRound(GENESIS, deadline - 1, deadline);
        ledger.openRound(GENESIS, 0, deadline);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundStillOpen.selector, uint256(1)));
        ledger.openRound(GENESIS, 0, deadline);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ submitUpdate

    function test_submitUpdate_records() public {
        uint256 r1 = _open();
        bytes32 update = keccak256("u1");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.UpdateSubmitted(r1, members[0], update, 1000, 1500, 0);
        vm.prank(members[0]);
        ledger.submitUpdate(r1, update, 1000, 1500);
        (bytes32 u, uint64 samples, uint32 eps, int32 score, uint256 blockNumber, bool scored) =
            ledger.getSubmission(r1, members[0]);
        vm.assertEq(u, update, "update");
        vm.assertEq(uint256(samples), 1000, "samples");
        vm.assertEq(uint256(eps), 1500, "epsilon");
        vm.assertEq(int256(score), 0, "unscored");
        vm.assertEq(blockNumber, block.number, "block");
        vm.assertFalse(scored, "not scored");
        vm.assertEq(_submissionCount(r1), 1, "count");
        vm.assertEq(uint256(ledger.totalEpsilonMilli(members[0])), 1500, "epsilon total");
    }

    function test_submitUpdate_chainsEachMembersHistory() public {
        uint256 r1 = _roundWith(2);
        uint256 firstBlock = block.number;
        vm.roll(block.number + 10);
        uint256 r2 = _open();
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.UpdateSubmitted(r2, members[0], keccak256("u2"), 7, 0, firstBlock);
        vm.prank(members[0]);
        ledger.submitUpdate(r2, keccak256("u2"), 7, 0);
        (uint256 count, uint256 lastRound, uint256 lastBlock) = ledger.submissionHistory(members[0]);
        vm.assertEq(count, 2, "two submissions");
        vm.assertEq(lastRound, r2, "latest round");
        vm.assertEq(lastBlock, block.number, "latest block");
        // Only the latest submission is in storage; earlier ones are in the events.
        (bytes32 u,,,,,) = ledger.getSubmission(r1, members[0]);
        vm.assertEq(u, bytes32(0), "older round reads zero");
        (u,,,,,) = ledger.getSubmission(r1, members[1]);
        vm.assertEq(u, _digest("update", r1, members[1]), "member 1's latest is still round 1");
    }

    function test_submitUpdate_sameDigestFromTwoMembersIsRecordedTwice() public {
        uint256 roundId = _open();
        bytes32 copied = keccak256("member 0's update");
        vm.prank(members[1]); // front-runs member 0 with its digest
        ledger.submitUpdate(roundId, copied, 10, 0);
        vm.prank(members[0]);
        ledger.submitUpdate(roundId, copied, 10, 0);
        (bytes32 a,,,,,) = ledger.getSubmission(roundId, members[0]);
        (bytes32 b,,,,,) = ledger.getSubmission(roundId, members[1]);
        vm.assertEq(a, copied, "member 0 recorded");
        vm.assertEq(b, copied, "member 1 recorded");
        vm.assertEq(_submissionCount(roundId), 2, "both counted");
    }

    function test_submitUpdate_reverts() public {
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, uint256(1)));
        ledger.submitUpdate(1, bytes32(uint256(1)), 1, 0);

        uint256 roundId = _open();
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        ledger.submitUpdate(roundId, bytes32(uint256(1)), 1, 0);

        vm.startPrank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, roundId + 1));
        ledger.submitUpdate(roundId + 1, bytes32(uint256(1)), 1, 0);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyUpdate.selector, roundId));
        ledger.submitUpdate(roundId, bytes32(0), 1, 0);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NoSamples.selector, roundId));
        ledger.submitUpdate(roundId, bytes32(uint256(1)), 0, 0);
        ledger.submitUpdate(roundId, bytes32(uint256(1)), 1, 0);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.AlreadySubmitted.selector, roundId, members[0], bytes32(uint256(1)))
        );
        ledger.submitUpdate(roundId, bytes32(uint256(2)), 1, 0);
        vm.stopPrank();

        address late = makeAddr("registered mid-round");
        ledger.registerParticipant(late, "late");
        vm.prank(late);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotEligible.selector, roundId, late));
        ledger.submitUpdate(roundId, bytes32(uint256(3)), 1, 0);

        vm.warp(block.timestamp + ROUND);
        vm.prank(members[1]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.SubmissionsClosed.selector, roundId, uint64(block.timestamp))
        );
        ledger.submitUpdate(roundId, bytes32(uint256(4)), 1, 0);
    }

    function test_submitUpdate_closesWhenEveryEligibleMemberSubmitted() public {
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        for (uint256 i = 0; i < MEMBERS; ++i) {
            vm.assertFalse(_closed(roundId), "open until the last eligible member submits");
            _submit(members[i], roundId);
        }
        vm.assertTrue(_closed(roundId), "closed");
        // A member registered mid-round is not counted, and cannot reopen the round.
        address late = makeAddr("late");
        ledger.registerParticipant(late, "late");
        vm.prank(late);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotEligible.selector, roundId, late));
        ledger.submitUpdate(roundId, bytes32(uint256(9)), 1, 0);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.SubmissionsClosed.selector, roundId, deadline));
        ledger.submitUpdate(roundId, bytes32(uint256(9)), 1, 0);
    }

    function test_submitUpdate_removedMemberDelaysCloseToTheDeadline() public {
        uint256 roundId = _open();
        ledger.removeParticipant(members[4]);
        for (uint256 i = 0; i < MEMBERS - 1; ++i) _submit(members[i], roundId);
        vm.assertFalse(_closed(roundId), "the removed member was eligible, so the round waits for the deadline");
        vm.warp(block.timestamp + ROUND);
        vm.assertTrue(_closed(roundId), "closed at the deadline");
    }

    // ------------------------------------------------------------ finalizeRound

    function test_finalizeRound_recordsScoresAndModel() public {
        uint256 roundId = _open();
        for (uint256 i = 0; i < 3; ++i) _submit(members[i], roundId);
        vm.warp(block.timestamp + ROUND);
        address[] memory scored = new address[](2);
        (scored[0], scored[1]) = (members[2], members[0]); // any order; member 1 rejected, unscored
        int32[] memory scores = new int32[](2);
        (scores[0], scores[1]) = (type(int32).min, 40);
        bytes32 model = keccak256("global");
        bytes32 manifest = keccak256("manifest");

        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.ContributionScored(roundId, members[2], type(int32).min);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.ContributionScored(roundId, members[0], 40);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundFinalized(roundId, model, manifest, 3, 2);
        vm.prank(coordinator);
        ledger.finalizeRound(roundId, model, manifest, scored, scores);

        (, bytes32 gm, bytes32 mf,, FederationLedger.RoundState state,,, uint256 closedBlock) = ledger.getRound(roundId);
        vm.assertEq(gm, model, "model");
        vm.assertEq(mf, manifest, "manifest");
        vm.assertTrue(state == FederationLedger.RoundState.Finalized, "finalized");
        vm.assertEq(closedBlock, block.number, "closed block");
        vm.assertEq(ledger.latestModel(), model, "latestModel");
        vm.assertEq(ledger.latestFinalizedRound(), roundId, "head");
        vm.assertEq(int256(ledger.totalScore(members[0])), 40, "score 0");
        vm.assertEq(int256(ledger.totalScore(members[1])), 0, "member 1 unscored");
        vm.assertEq(int256(ledger.totalScore(members[2])), int256(type(int32).min), "score 2");
        (,,, int32 score, , bool isScored) = ledger.getSubmission(roundId, members[1]);
        vm.assertFalse(isScored, "unscored stays unscored");
        vm.assertEq(int256(score), 0, "zero score");
        (,,, score,, isScored) = ledger.getSubmission(roundId, members[0]);
        vm.assertTrue(isScored && score == 40, "scored");

        // The next round must start from this round's model.
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.BaseModelMismatch.selector, model, GENESIS));
        ledger.openRound(GENESIS, 0, uint64(block.timestamp) + ROUND);
        uint256 next = _open();
        (uint256 baseRound,,,,,,) = ledger.roundPhases(next);
        vm.assertEq(baseRound, roundId, "base round");
    }

    function test_finalizeRound_refusedWhileSubmissionsOpen() public {
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        _submit(members[0], roundId);
        _submit(members[1], roundId); // the coordinator's favoured members are in: quorum, but not closed
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, 2, MEMBERS)
        );
        ledger.finalizeRound(roundId, bytes32(uint256(1)), bytes32(uint256(2)), _first(2), _scores(2));
        vm.warp(deadline - 1);
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, 2, MEMBERS)
        );
        ledger.finalizeRound(roundId, bytes32(uint256(1)), bytes32(uint256(2)), _first(2), _scores(2));
        vm.warp(deadline);
        vm.prank(coordinator);
        ledger.finalizeRound(roundId, bytes32(uint256(1)), bytes32(uint256(2)), _first(2), _scores(2));
    }

    function test_finalizeRound_allowedOnceEveryEligibleMemberSubmitted() public {
        uint256 roundId = _open();
        for (uint256 i = 0; i < MEMBERS; ++i) _submit(members[i], roundId);
        _finalize(roundId, _first(2)); // well before the deadline
        vm.assertTrue(_state(roundId) == FederationLedger.RoundState.Finalized, "finalized");
    }

    function test_finalizeRound_reverts() public {
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, uint256(1)));
        ledger.finalizeRound(1, bytes32(uint256(1)), bytes32(uint256(1)), _first(0), _scores(0));

        uint256 roundId = _open();
        for (uint256 i = 0; i < 3; ++i) _submit(members[i], roundId);
        vm.warp(block.timestamp + ROUND);
        bytes32 m = bytes32(uint256(1));

        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotCoordinator.selector, address(this)));
        ledger.finalizeRound(roundId, m, m, _first(2), _scores(2));

        vm.startPrank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.LengthMismatch.selector, 2, 1));
        ledger.finalizeRound(roundId, m, m, _first(2), _scores(1));
        // Three submitted, but only one aggregated: below the quorum of two.
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.QuorumNotReached.selector, 1, 2));
        ledger.finalizeRound(roundId, m, m, _first(1), _scores(1));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyModel.selector));
        ledger.finalizeRound(roundId, bytes32(0), m, _first(2), _scores(2));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyManifest.selector));
        ledger.finalizeRound(roundId, m, bytes32(0), _first(2), _scores(2));
        address[] memory withOutsider = _first(2);
        withOutsider[1] = members[4];
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSubmitter.selector, roundId, members[4]));
        ledger.finalizeRound(roundId, m, m, withOutsider, _scores(2));
        address[] memory twice = _first(3);
        twice[2] = members[0];
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.AlreadyScored.selector, roundId, members[0]));
        ledger.finalizeRound(roundId, m, m, twice, _scores(3));
        vm.stopPrank();

        vm.assertTrue(_state(roundId) == FederationLedger.RoundState.Open, "rejected attempts changed nothing");
        vm.assertEq(int256(ledger.totalScore(members[0])), 0, "no score");
        _finalize(roundId, _first(3));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, roundId));
        ledger.finalizeRound(roundId, m, m, _first(2), _scores(2));
    }

    function test_finalizeRound_scoresAnOlderRoundsSubmitterOnlyInItsRound() public {
        // A member whose latest submission is in round 1 cannot be scored in round 2.
        uint256 r1 = _open();
        for (uint256 i = 0; i < MEMBERS; ++i) _submit(members[i], r1);
        _finalize(r1, _first(MEMBERS));
        uint256 r2 = _open();
        _submit(members[0], r2);
        _submit(members[1], r2);
        vm.warp(block.timestamp + ROUND);
        address[] memory scored = _first(3);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSubmitter.selector, r2, members[2]));
        ledger.finalizeRound(r2, bytes32(uint256(1)), bytes32(uint256(1)), scored, _scores(3));
    }

    // ------------------------------------------------------------ abortRound

    function test_abortRound_byCoordinatorOnceClosedShortOfQuorum() public {
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        _submit(members[0], roundId);
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, 1, MEMBERS)
        );
        ledger.abortRound(roundId);
        vm.warp(deadline);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundAborted(roundId, 1, coordinator);
        vm.prank(coordinator);
        ledger.abortRound(roundId);
        (, bytes32 model,,, FederationLedger.RoundState state,,, uint256 closedBlock) = ledger.getRound(roundId);
        vm.assertTrue(state == FederationLedger.RoundState.Aborted, "aborted");
        vm.assertEq(model, bytes32(0), "no model");
        vm.assertEq(closedBlock, block.number, "closed block");
        vm.assertEq(ledger.latestModel(), GENESIS, "latest model unchanged");
        vm.assertEq(_open(), roundId + 1, "the next round opens on the same model");
    }

    function test_abortRound_refusedAtQuorumUntilTheGraceIsOver() public {
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        _submit(members[0], roundId);
        _submit(members[1], roundId);
        vm.warp(deadline);
        uint256 abortableAt = uint256(deadline) + GRACE;
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.QuorumReached.selector, roundId, 2, 2, abortableAt));
        ledger.abortRound(roundId);
        vm.warp(abortableAt - 1);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.QuorumReached.selector, roundId, 2, 2, abortableAt));
        ledger.abortRound(roundId);
        vm.warp(abortableAt);
        vm.prank(coordinator);
        ledger.abortRound(roundId);
        vm.assertTrue(_state(roundId) == FederationLedger.RoundState.Aborted, "aborted after the grace");
    }

    function test_abortRound_anyMemberOrAdminAfterTheGrace() public {
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        uint256 abortableAt = uint256(deadline) + GRACE;
        vm.prank(members[3]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.GraceNotOver.selector, roundId, members[3], abortableAt));
        ledger.abortRound(roundId);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.GraceNotOver.selector, roundId, address(this), abortableAt)
        );
        ledger.abortRound(roundId);
        vm.warp(abortableAt);
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        ledger.abortRound(roundId);
        // A member registered after the round opened is still a member: it may abort.
        address late = makeAddr("late");
        ledger.registerParticipant(late, "late");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundAborted(roundId, 0, late);
        vm.prank(late);
        ledger.abortRound(roundId);

        uint256 second = _open();
        (,,, deadline,,,,) = ledger.getRound(second);
        vm.warp(uint256(deadline) + GRACE);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundAborted(second, 0, address(this));
        ledger.abortRound(second); // the admin
    }

    function test_abortRound_reverts() public {
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, uint256(1)));
        ledger.abortRound(1);
        uint256 roundId = _roundWith(2);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, roundId));
        ledger.abortRound(roundId);
    }

    // ------------------------------------------------------------ rebaseLineage

    function test_rebaseLineage_movesTheHeadBack() public {
        uint256 r1 = _roundWith(2);
        bytes32 m1 = ledger.latestModel();
        uint256 r2 = _roundWith(2);
        bytes32 m2 = ledger.latestModel();

        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.LineageRebased(r2, r1, m1);
        ledger.rebaseLineage(r1);
        vm.assertEq(ledger.latestFinalizedRound(), r1, "head");
        vm.assertEq(ledger.latestModel(), m1, "latest model");

        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.BaseModelMismatch.selector, m1, m2));
        ledger.openRound(m2, 0, uint64(block.timestamp) + ROUND);
        uint256 r3 = _open();
        (bytes32 base,,,,,,,) = ledger.getRound(r3);
        (uint256 baseRound,,,,,,) = ledger.roundPhases(r3);
        vm.assertEq(base, m1, "r3 starts from r1's model");
        vm.assertEq(baseRound, r1, "r3's base round");
        _submit(members[0], r3);
        _submit(members[1], r3);
        vm.warp(block.timestamp + ROUND);
        _finalize(r3, _first(2));
        vm.assertEq(ledger.latestFinalizedRound(), r3, "the lineage goes on from r3");
        (bytes32 r2Base,,,,,,,) = ledger.getRound(r2);
        vm.assertEq(r2Base, m1, "r2 stays on record, off the lineage");
    }

    function test_rebaseLineage_toGenesis() public {
        uint256 r1 = _roundWith(2);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.LineageRebased(r1, 0, GENESIS);
        ledger.rebaseLineage(0);
        vm.assertEq(ledger.latestModel(), GENESIS, "back at genesis");
        uint256 r2 = _open();
        (bytes32 base,,,,,,,) = ledger.getRound(r2);
        vm.assertEq(base, GENESIS, "next round starts from genesis");
    }

    function test_rebaseLineage_reverts() public {
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotAdmin.selector, outsider));
        ledger.rebaseLineage(0);

        uint256 r1 = _roundWith(2);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotRebaseTarget.selector, r1 + 1));
        ledger.rebaseLineage(r1 + 1); // after the head

        uint256 r2 = _open();
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundStillOpen.selector, r2));
        ledger.rebaseLineage(r1);
        vm.warp(block.timestamp + ROUND);
        vm.prank(coordinator);
        ledger.abortRound(r2);
        _roundWith(2); // r3 is the head; r2 was aborted
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotRebaseTarget.selector, r2));
        ledger.rebaseLineage(r2);
    }

    // ------------------------------------------------------------ views

    function test_views_revertOnUnknownRounds() public {
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, uint256(0)));
        ledger.getRound(0);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, uint256(1)));
        ledger.getRound(1);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, uint256(1)));
        ledger.roundPhases(1);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, uint256(0)));
        ledger.getSubmission(0, members[0]);
        uint256 roundId = _open();
        (bytes32 u,,,,,) = ledger.getSubmission(roundId, members[0]);
        vm.assertEq(u, bytes32(0), "no submission reads zero");
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, roundId + 1));
        ledger.getSubmission(roundId + 1, members[0]);
    }

    function test_participantsPage_pagesAndBoundsTheLimit() public {
        address[] memory page = ledger.participantsPage(1, 2);
        vm.assertEq(page.length, 2, "two");
        vm.assertEq(page[0], members[1], "from offset");
        vm.assertEq(page[1], members[2], "next");
        vm.assertEq(ledger.participantsPage(4, 10).length, 1, "cut at the end");
        vm.assertEq(ledger.participantsPage(5, 10).length, 0, "past the end");
        vm.assertEq(ledger.participantsPage(type(uint256).max, 1000).length, 0, "far past the end");
        vm.assertEq(ledger.participantsPage(0, 1000), ledger.participants(), "whole set");
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.PageTooLarge.selector, 1001, 1000));
        ledger.participantsPage(0, 1001);
    }
}

/**
 * Unit tests of the secure-aggregation phases: shares, masked submissions, reveals.
 */
contract SecureAggregationTest is LedgerTest {
    function setUp() public {
        _deploy(2, true);
    }

    function test_openRound_needsAShareDeadlineBetweenNowAndTheDeadline() public {
        uint64 now_ = uint64(block.timestamp);
        uint64 deadline = now_ + ROUND;
        vm.startPrank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.InvalidShareDeadline.selector, 0, deadline, true));
        ledger.openRound(GENESIS, 0, deadline);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.InvalidShareDeadline.selector, now_, deadline, true));
        ledger.openRound(GENESIS, now_, deadline);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.InvalidShareDeadline.selector, deadline, deadline, true));
        ledger.openRound(GENESIS, deadline, deadline);
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.RoundOpened(1, GENESIS, deadline, now_ + 1, MEMBERS);
        ledger.openRound(GENESIS, now_ + 1, deadline);
        vm.stopPrank();
        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(1);
        vm.assertEq(uint256(shareDeadline), now_ + 1, "share deadline");
    }

    function test_fullSecureRound() public {
        uint256 roundId = _openSecure();
        for (uint256 i = 0; i < 3; ++i) {
            vm.expectEmit(true, true, true, true, address(ledger));
            emit FederationLedger.SharesPublished(roundId, members[i], _digest("shares", roundId, members[i]));
            _share(members[i], roundId);
        }
        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(roundId);
        vm.warp(shareDeadline);
        // Submissions close as soon as every sharer submitted.
        for (uint256 i = 0; i < 3; ++i) {
            vm.assertFalse(_closed(roundId), "open until every sharer submitted");
            _submit(members[i], roundId);
        }
        vm.assertTrue(_closed(roundId), "closed");
        bytes32 reveal = keccak256("reveal");
        vm.expectEmit(true, true, true, true, address(ledger));
        emit FederationLedger.SharesRevealed(roundId, members[0], reveal);
        vm.prank(members[0]);
        ledger.revealShares(roundId, reveal);
        vm.prank(members[1]);
        ledger.revealShares(roundId, reveal);
        (,,, uint256 shares, uint256 reveals, bool closed,) = ledger.roundPhases(roundId);
        vm.assertEq(shares, 3, "shares");
        vm.assertEq(reveals, 2, "reveals");
        vm.assertTrue(closed, "closed");
        _finalize(roundId, _first(3));
        vm.assertTrue(_state(roundId) == FederationLedger.RoundState.Finalized, "finalized");
    }

    function test_sharePhaseClosesWhenEveryEligibleMemberShared() public {
        uint256 roundId = _openSecure();
        for (uint256 i = 0; i < MEMBERS; ++i) _share(members[i], roundId);
        _submit(members[0], roundId); // no wait for the share deadline
        (,,,,,, uint256 abortableAt) = ledger.roundPhases(roundId);
        vm.assertEq(abortableAt, uint256(block.timestamp) + ROUND + GRACE, "abortableAt");
    }

    function test_publishShares_reverts() public {
        uint256 roundId = _openSecure();
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        ledger.publishShares(roundId, bytes32(uint256(1)));
        vm.startPrank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, roundId + 1));
        ledger.publishShares(roundId + 1, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyUpdate.selector, roundId));
        ledger.publishShares(roundId, bytes32(0));
        ledger.publishShares(roundId, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.AlreadyPublished.selector, roundId, members[0]));
        ledger.publishShares(roundId, bytes32(uint256(2)));
        vm.stopPrank();

        address late = makeAddr("late");
        ledger.registerParticipant(late, "late");
        vm.prank(late);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotEligible.selector, roundId, late));
        ledger.publishShares(roundId, bytes32(uint256(1)));

        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(roundId);
        vm.warp(shareDeadline);
        vm.prank(members[1]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.SharePhaseClosed.selector, roundId, shareDeadline));
        ledger.publishShares(roundId, bytes32(uint256(1)));
    }

    function test_submitUpdate_onlyBySharersAfterTheSharePhase() public {
        uint256 roundId = _openSecure();
        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(roundId);
        _share(members[0], roundId);
        _share(members[1], roundId);
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.SharePhaseOpen.selector, roundId, shareDeadline));
        ledger.submitUpdate(roundId, bytes32(uint256(1)), 1, 0);
        vm.warp(shareDeadline);
        vm.prank(members[2]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSharer.selector, roundId, members[2]));
        ledger.submitUpdate(roundId, bytes32(uint256(1)), 1, 0);
        _submit(members[0], roundId);
        vm.assertFalse(_closed(roundId), "one sharer still to submit");
        _submit(members[1], roundId);
        vm.assertTrue(_closed(roundId), "every sharer submitted");
    }

    function test_noSharesMeansSubmissionsCloseWithTheSharePhase() public {
        uint256 roundId = _openSecure();
        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(roundId);
        vm.assertFalse(_closed(roundId), "share phase open");
        vm.warp(shareDeadline);
        vm.assertTrue(_closed(roundId), "nobody shared: nothing to wait for");
        vm.prank(coordinator);
        ledger.abortRound(roundId);
    }

    function test_revealShares_reverts() public {
        vm.prank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.UnknownRound.selector, uint256(1)));
        ledger.revealShares(1, bytes32(uint256(1)));

        uint256 roundId = _openSecure();
        _share(members[0], roundId);
        _share(members[1], roundId);
        _share(members[2], roundId);
        (,, uint64 shareDeadline,,,,) = ledger.roundPhases(roundId);
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        vm.warp(shareDeadline);
        _submit(members[0], roundId);
        _submit(members[1], roundId);

        vm.prank(members[3]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSubmitter.selector, roundId, members[3]));
        ledger.revealShares(roundId, bytes32(uint256(1)));
        vm.prank(members[0]);
        vm.expectRevert(
            abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, 2, 3)
        );
        ledger.revealShares(roundId, bytes32(uint256(1)));
        vm.warp(deadline);
        vm.startPrank(members[0]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.EmptyUpdate.selector, roundId));
        ledger.revealShares(roundId, bytes32(0));
        ledger.revealShares(roundId, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.AlreadyPublished.selector, roundId, members[0]));
        ledger.revealShares(roundId, bytes32(uint256(1)));
        vm.stopPrank();

        _finalize(roundId, _first(2));
        vm.prank(members[1]);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.RoundNotOpen.selector, roundId));
        ledger.revealShares(roundId, bytes32(uint256(1)));
    }

    function test_secureCallsRefusedInPublicMode() public {
        FederationLedger open = new FederationLedger(GENESIS, DESCRIPTOR, 1, GRACE, false);
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSecureAggregation.selector));
        open.publishShares(1, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotSecureAggregation.selector));
        open.revealShares(1, bytes32(uint256(1)));
    }
}

/**
 * Fuzz tests: random sample counts and privacy spend, random submission orders, random scored
 * subsets, page bounds, membership churn, and the timing rules of finalize and abort.
 */
contract FederationLedgerFuzzTest is LedgerTest {
    function setUp() public {
        _deploy(2, false);
    }

    function testFuzz_submitRecordsSamplesAndEpsilon(bytes32 update, uint64 samples, uint32 epsilon) public {
        vm.assume(update != bytes32(0) && samples != 0);
        uint256 roundId = _open();
        vm.prank(members[0]);
        ledger.submitUpdate(roundId, update, samples, epsilon);
        (bytes32 u, uint64 s, uint32 e,,,) = ledger.getSubmission(roundId, members[0]);
        vm.assertEq(u, update, "update");
        vm.assertEq(uint256(s), samples, "samples");
        vm.assertEq(uint256(e), epsilon, "epsilon");
        vm.assertEq(uint256(ledger.totalEpsilonMilli(members[0])), epsilon, "total epsilon");
    }

    function testFuzz_epsilonAndScoresAccumulateOverRounds(uint32[4] calldata epsilons, int32[4] calldata scores)
        public
    {
        uint256 epsilonTotal;
        int256 scoreTotal;
        for (uint256 r = 0; r < 4; ++r) {
            uint256 roundId = _open();
            vm.prank(members[0]);
            ledger.submitUpdate(roundId, bytes32(r + 1), 1, epsilons[r]);
            _submit(members[1], roundId);
            vm.warp(block.timestamp + ROUND);
            int32[] memory given = new int32[](2);
            (given[0], given[1]) = (scores[r], 0);
            vm.prank(coordinator);
            ledger.finalizeRound(roundId, bytes32(r + 10), bytes32(r + 20), _first(2), given);
            epsilonTotal += epsilons[r];
            scoreTotal += scores[r];
        }
        vm.assertEq(uint256(ledger.totalEpsilonMilli(members[0])), epsilonTotal, "epsilon");
        vm.assertEq(int256(ledger.totalScore(members[0])), scoreTotal, "score");
        (uint256 count,,) = ledger.submissionHistory(members[0]);
        vm.assertEq(count, 4, "four submissions");
    }

    /// Any submission order and any scored subset in any order give the same totals.
    function testFuzz_randomOrderings(uint256 seed, uint8 scoredMask) public {
        address[] memory order = _first(MEMBERS);
        for (uint256 i = MEMBERS - 1; i > 0; --i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % (i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        uint256 roundId = _open();
        for (uint256 i = 0; i < MEMBERS; ++i) {
            vm.assertFalse(_closed(roundId), "open before the last member");
            _submit(order[i], roundId);
        }
        vm.assertTrue(_closed(roundId), "closed after the last member");

        uint256 n;
        for (uint256 i = 0; i < MEMBERS; ++i) if (scoredMask >> i & 1 == 1) ++n;
        vm.assume(n >= 2);
        address[] memory scored = new address[](n);
        int32[] memory scores = new int32[](n);
        uint256 k;
        for (uint256 i = 0; i < MEMBERS; ++i) {
            address member = order[(i + seed % MEMBERS) % MEMBERS];
            uint256 index;
            for (uint256 m = 0; m < MEMBERS; ++m) if (members[m] == member) index = m;
            if (scoredMask >> index & 1 == 1) {
                scored[k] = member;
                scores[k] = int32(int256(uint256(keccak256(abi.encode(seed, member))) % 2001) - 1000);
                ++k;
            }
        }
        vm.prank(coordinator);
        ledger.finalizeRound(roundId, bytes32(uint256(1)), bytes32(uint256(2)), scored, scores);
        for (uint256 i = 0; i < n; ++i) {
            vm.assertEq(int256(ledger.totalScore(scored[i])), int256(scores[i]), "score");
            (,,, int32 score,, bool isScored) = ledger.getSubmission(roundId, scored[i]);
            vm.assertTrue(isScored && score == scores[i], "scored submission");
        }
        for (uint256 m = 0; m < MEMBERS; ++m) {
            if (scoredMask >> m & 1 == 0) vm.assertEq(int256(ledger.totalScore(members[m])), 0, "unscored");
        }
    }

    function testFuzz_participantsPage(uint8 extra, uint256 removeMask, uint256 offset, uint256 limit) public {
        uint256 added = bound(extra, 0, 60);
        for (uint256 i = 0; i < added; ++i) ledger.registerParticipant(vm.addr(1000 + i), "org");
        uint256 removed;
        for (uint256 i = 0; i < added; ++i) {
            if (removeMask >> i & 1 == 1) {
                ledger.removeParticipant(vm.addr(1000 + i));
                ++removed;
            }
        }
        address[] memory all = ledger.participants();
        vm.assertEq(all.length, MEMBERS + added - removed, "active only");
        vm.assertEq(ledger.participantCount(), all.length, "count");
        offset = bound(offset, 0, all.length + 5);
        if (limit > 1000) {
            vm.expectRevert(abi.encodeWithSelector(FederationLedger.PageTooLarge.selector, limit, 1000));
            ledger.participantsPage(offset, limit);
            return;
        }
        address[] memory page = ledger.participantsPage(offset, limit);
        uint256 expected = offset >= all.length ? 0 : (all.length - offset < limit ? all.length - offset : limit);
        vm.assertEq(page.length, expected, "page length");
        for (uint256 i = 0; i < page.length; ++i) vm.assertEq(page[i], all[offset + i], "page entry");
    }

    /// Registrations and removals in any order: the active set never holds a removed member or a duplicate.
    function testFuzz_membershipChurn(uint256[24] calldata ops) public {
        bool[16] memory active;
        uint256 count;
        for (uint256 i = 0; i < MEMBERS; ++i) ledger.removeParticipant(members[i]);
        for (uint256 i = 0; i < ops.length; ++i) {
            uint256 who = ops[i] % 16;
            address account = vm.addr(5000 + who);
            if (active[who]) {
                ledger.removeParticipant(account);
                active[who] = false;
                --count;
            } else {
                ledger.registerParticipant(account, "org");
                active[who] = true;
                ++count;
            }
        }
        address[] memory all = ledger.participants();
        vm.assertEq(all.length, count, "count");
        for (uint256 i = 0; i < all.length; ++i) {
            vm.assertTrue(ledger.isParticipant(all[i]), "only active members");
            for (uint256 j = 0; j < i; ++j) vm.assertTrue(all[i] != all[j], "no duplicates");
        }
    }

    function testFuzz_openRoundNeedsAFutureDeadline(uint64 deadline) public {
        vm.prank(coordinator);
        if (deadline <= block.timestamp) {
            vm.expectRevert(
                abi.encodeWithSelector(FederationLedger.DeadlineNotInFuture.selector, deadline, block.timestamp)
            );
        }
        ledger.openRound(GENESIS, 0, deadline);
    }

    function testFuzz_finalizeTiming(uint256 elapsed, uint8 submitted) public {
        uint256 n = bound(submitted, 2, MEMBERS);
        elapsed = bound(elapsed, 0, 3 * ROUND);
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        for (uint256 i = 0; i < n; ++i) _submit(members[i], roundId);
        vm.warp(block.timestamp + elapsed);
        bool closed = block.timestamp >= deadline || n == MEMBERS;
        vm.assertEq(_closed(roundId), closed, "roundPhases.submissionsClosed");
        if (!closed) {
            vm.expectRevert(
                abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, n, MEMBERS)
            );
        }
        vm.prank(coordinator);
        ledger.finalizeRound(roundId, bytes32(uint256(1)), bytes32(uint256(2)), _first(n), _scores(n));
    }

    function testFuzz_abortTiming(uint256 elapsed, uint8 submitted, uint8 callerIndex) public {
        uint256 n = bound(submitted, 0, MEMBERS - 1);
        elapsed = bound(elapsed, 0, ROUND + 2 * GRACE);
        uint256 roundId = _open();
        (,,, uint64 deadline,,,,) = ledger.getRound(roundId);
        for (uint256 i = 0; i < n; ++i) _submit(members[i], roundId);
        vm.warp(block.timestamp + elapsed);
        uint256 abortableAt = uint256(deadline) + GRACE;
        uint256 pick = callerIndex % 4;
        address caller = pick == 0 ? coordinator : pick == 1 ? admin : pick == 2 ? members[4] : outsider;
        if (block.timestamp < abortableAt) {
            if (caller != coordinator) {
                vm.expectRevert(
                    abi.encodeWithSelector(FederationLedger.GraceNotOver.selector, roundId, caller, abortableAt)
                );
            } else if (block.timestamp < deadline) {
                vm.expectRevert(
                    abi.encodeWithSelector(FederationLedger.SubmissionsStillOpen.selector, roundId, deadline, n, MEMBERS)
                );
            } else if (n >= 2) {
                vm.expectRevert(
                    abi.encodeWithSelector(FederationLedger.QuorumReached.selector, roundId, n, 2, abortableAt)
                );
            }
        } else if (caller == outsider) {
            vm.expectRevert(abi.encodeWithSelector(FederationLedger.NotParticipant.selector, outsider));
        }
        vm.prank(caller);
        ledger.abortRound(roundId);
    }
}
