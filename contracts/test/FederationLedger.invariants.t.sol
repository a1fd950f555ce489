// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FederationLedger} from "../FederationLedger.sol";
import {LedgerHandler} from "./handlers/LedgerHandler.sol";
import {Test} from "./utils/Test.sol";

/**
 * Invariants of the round state machine, checked after every random call of {LedgerHandler}
 * (which itself fails the run whenever the ledger accepts or refuses a call other than its
 * model predicts). Run on a public ledger and on a secure-aggregation ledger, quorum two.
 */
abstract contract LedgerInvariants is Test {
    LedgerHandler internal handler;
    FederationLedger internal ledger;

    function _setUp(bool secure) internal {
        vm.warp(1_700_000_000);
        vm.roll(100);
        handler = new LedgerHandler(secure, 2);
        ledger = handler.ledger();
        targetContract(address(handler));
    }

    function invariant_atMostOneOpenRound() public view {
        uint256 current = ledger.currentRound();
        vm.assertEq(current, handler.current(), "currentRound");
        uint256 open;
        for (uint256 r = 1; r <= current; ++r) {
            if (_state(r) == FederationLedger.RoundState.Open) {
                ++open;
                vm.assertEq(r, current, "only the latest round can be open");
            }
        }
        vm.assertLe(open, 1, "at most one open round");
    }

    function invariant_latestModelIsGenesisOrAFinalizedModel() public view {
        uint256 head = ledger.latestFinalizedRound();
        vm.assertEq(head, handler.head(), "head");
        if (head == 0) {
            vm.assertEq(ledger.latestModel(), ledger.genesisModel(), "genesis");
        } else {
            (, bytes32 model,,, FederationLedger.RoundState state,,,) = ledger.getRound(head);
            vm.assertTrue(state == FederationLedger.RoundState.Finalized, "head is finalized");
            vm.assertEq(ledger.latestModel(), model, "latest model is the head's model");
        }
    }

    function invariant_finalizedRoundsReachedTheQuorum() public view {
        for (uint256 r = 1; r <= ledger.currentRound(); ++r) {
            if (_state(r) == FederationLedger.RoundState.Finalized) {
                vm.assertGe(handler.ghostRound(r).scored, ledger.minUpdates(), "scored >= minUpdates");
            }
        }
    }

    function invariant_submissionsWithinEligible() public view {
        uint256 total;
        for (uint256 r = 1; r <= ledger.currentRound(); ++r) {
            (,,,,, uint256 submissions,,) = ledger.getRound(r);
            (, uint256 eligible,, uint256 shares, uint256 reveals,,) = ledger.roundPhases(r);
            vm.assertLe(submissions, eligible, "submissionCount <= eligible");
            if (handler.secure()) {
                vm.assertLe(submissions, shares, "only sharers submit");
                vm.assertLe(shares, eligible, "shareCount <= eligible");
                vm.assertLe(reveals, submissions, "only submitters reveal");
            } else {
                vm.assertEq(shares + reveals, 0, "no share phase in public mode");
            }
            LedgerHandler.GhostRound memory ghost = handler.ghostRound(r);
            vm.assertEq(submissions, ghost.submissions, "submissionCount matches the model");
            vm.assertEq(eligible, ghost.eligible, "eligible matches the model");
            vm.assertEq(uint256(_state(r)), uint256(ghost.state), "state matches the model");
            total += submissions;
        }
        uint256 perMember;
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address actor = handler.actors(i);
            (uint256 count,,) = ledger.submissionHistory(actor);
            vm.assertEq(count, handler.ghostSubmissions(actor), "member's submission count");
            perMember += count;
        }
        vm.assertEq(total, perMember, "every submission counted once");
    }

    function invariant_totalEpsilonIsTheSumSubmitted() public view {
        uint256 sum;
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            address actor = handler.actors(i);
            uint256 spent = ledger.totalEpsilonMilli(actor);
            vm.assertEq(spent, handler.ghostEpsilon(actor), "totalEpsilonMilli");
            vm.assertEq(int256(ledger.totalScore(actor)), handler.ghostScore(actor), "totalScore");
            sum += spent;
        }
        vm.assertEq(sum, handler.totalEpsilonSubmitted(), "sum of epsilons submitted");
    }

    function invariant_activeCountIsRegistrationsMinusRemovals() public view {
        uint256 count = ledger.participantCount();
        vm.assertEq(count, handler.registrations() - handler.removals(), "registrations - removals");
        vm.assertEq(count, handler.activeCount(), "active actors");
        address[] memory active = ledger.participants();
        vm.assertEq(active.length, count, "participants() is the active set");
        for (uint256 i = 0; i < active.length; ++i) {
            vm.assertTrue(handler.ghostActive(active[i]), "only active members listed");
            for (uint256 j = 0; j < i; ++j) vm.assertTrue(active[i] != active[j], "no duplicates");
        }
        vm.assertEq(ledger.participantsPage(0, 1000), active, "one page holds them all");
    }

    function invariant_lineageLinksEveryFinalizedRound() public view {
        for (uint256 r = 1; r <= ledger.currentRound(); ++r) {
            (uint256 baseRound,,,,,,) = ledger.roundPhases(r);
            vm.assertEq(baseRound, handler.ghostRound(r).baseRound, "base round matches the model");
            vm.assertLt(baseRound, r, "a round builds on an earlier one");
            (bytes32 base,,,,,,,) = ledger.getRound(r);
            if (baseRound == 0) {
                vm.assertEq(base, ledger.genesisModel(), "built on genesis");
            } else {
                (, bytes32 model,,, FederationLedger.RoundState state,,,) = ledger.getRound(baseRound);
                vm.assertTrue(state == FederationLedger.RoundState.Finalized, "built on a finalized round");
                vm.assertEq(base, model, "built on that round's model");
            }
        }
    }

    function invariant_noEarlyFinalizeNorQuorumAbort() public view {
        vm.assertEq(handler.earlyFinalizations(), 0, "finalized while submissions were open");
        vm.assertEq(handler.quorumAborts(), 0, "coordinator aborted at quorum before the grace");
    }

    function _state(uint256 roundId) internal view returns (FederationLedger.RoundState state) {
        (,,,, state,,,) = ledger.getRound(roundId);
    }
}

contract PublicLedgerInvariants is LedgerInvariants {
    function setUp() public {
        _setUp(false);
    }
}

contract SecureLedgerInvariants is LedgerInvariants {
    function setUp() public {
        _setUp(true);
    }
}
