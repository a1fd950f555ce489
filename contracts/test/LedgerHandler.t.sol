// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {LedgerHandler} from "./handlers/LedgerHandler.sol";
import {Test} from "./utils/Test.sol";

/**
 * The invariant handler itself: driven by a fixed pseudo-random sequence, it must walk the
 * ledger through every step (rounds finalized, aborted and rebased, not only refusals), so the
 * invariant runs explore the state machine rather than knocking at a closed door.
 */
contract LedgerHandlerTest is Test {
    function test_handlerReachesEveryStepInPublicMode() public {
        LedgerHandler handler = _drive(false, 1000);
        _assertReached(handler, "registerParticipant", 5);
        _assertReached(handler, "removeParticipant", 5);
        _assertReached(handler, "setMemberKey", 5);
        _assertReached(handler, "openRound", 8);
        _assertReached(handler, "submitUpdate", 20);
        _assertReached(handler, "finalizeRound", 4);
        _assertReached(handler, "abortRound", 2);
        _assertReached(handler, "rebaseLineage", 2);
        vm.assertEq(handler.successes("publishShares") + handler.successes("revealShares"), 0, "no share phase");
    }

    function test_handlerReachesEveryStepInSecureMode() public {
        LedgerHandler handler = _drive(true, 1000);
        _assertReached(handler, "openRound", 6);
        _assertReached(handler, "publishShares", 10);
        _assertReached(handler, "submitUpdate", 10);
        _assertReached(handler, "revealShares", 2);
        _assertReached(handler, "finalizeRound", 2);
        _assertReached(handler, "abortRound", 2);
        _assertReached(handler, "rebaseLineage", 2);
    }

    function _drive(bool secure, uint256 calls) internal returns (LedgerHandler handler) {
        vm.warp(1_700_000_000);
        handler = new LedgerHandler(secure, 2);
        uint256 x = 1;
        for (uint256 i = 0; i < calls; ++i) {
            x = uint256(keccak256(abi.encode(x)));
            uint256 step = x % 9;
            if (step == 0) handler.membership(x, x >> 8, x >> 16, bytes32(x >> 3));
            else if (step == 1) handler.openRound(x, x >> 8, x >> 16);
            else if (step == 2) handler.publishShares(x, x >> 8);
            else if (step == 3) handler.submitUpdate(x, x >> 8, uint64(x >> 16), uint32(x >> 100));
            else if (step == 4) handler.revealShares(x, x >> 8);
            else if (step == 5) handler.finalizeRound(x, x >> 8, int32(int256(x >> 50)));
            else if (step == 6) handler.abortRound(x, x >> 8);
            else if (step == 7) handler.rebaseLineage(x, x >> 8);
            else handler.warp(x);
        }
    }

    function _assertReached(LedgerHandler handler, string memory step, uint256 atLeast) internal view {
        vm.assertGe(handler.successes(step), atLeast, step);
    }
}
