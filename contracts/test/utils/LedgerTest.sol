// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FederationLedger} from "../../FederationLedger.sol";
import {Test} from "./Test.sol";

/**
 * @title LedgerTest
 * @notice A deployed ledger with a coordinator and five members, and the steps of a round as
 * one-line helpers. The test contract itself deploys, so it is the admin.
 */
abstract contract LedgerTest is Test {
    bytes32 internal constant GENESIS = keccak256("genesis model");
    bytes32 internal constant DESCRIPTOR = keccak256("federation descriptor");
    uint64 internal constant GRACE = 1 hours;
    uint64 internal constant ROUND = 1 days; // submission window of a public round
    uint64 internal constant SHARES = 1 hours; // share window of a secure round
    uint256 internal constant MEMBERS = 5;

    FederationLedger internal ledger;
    address internal admin;
    address internal coordinator;
    address internal outsider;
    address[] internal members;

    function _deploy(uint32 minUpdates, bool secure) internal {
        vm.warp(1_700_000_000);
        vm.roll(100);
        admin = address(this);
        coordinator = makeAddr("coordinator");
        outsider = makeAddr("outsider");
        ledger = new FederationLedger(GENESIS, DESCRIPTOR, minUpdates, GRACE, secure);
        ledger.setCoordinator(coordinator);
        delete members;
        for (uint256 i = 0; i < MEMBERS; ++i) {
            address member = makeAddr(string.concat("member-", _digit(i)));
            ledger.registerParticipant(member, string.concat("org-", _digit(i)));
            members.push(member);
        }
    }

    // ------------------------------------------------------------ round steps

    function _open() internal returns (uint256 roundId) {
        bytes32 base = ledger.latestModel(); // before the prank, which applies to the next call
        vm.prank(coordinator);
        roundId = ledger.openRound(base, 0, uint64(block.timestamp) + ROUND);
    }

    function _openSecure() internal returns (uint256 roundId) {
        bytes32 base = ledger.latestModel();
        vm.prank(coordinator);
        roundId = ledger.openRound(base, uint64(block.timestamp) + SHARES, uint64(block.timestamp) + ROUND);
    }

    function _submit(address member, uint256 roundId) internal returns (bytes32 update) {
        update = _digest("update", roundId, member);
        vm.prank(member);
        ledger.submitUpdate(roundId, update, 100, 250);
    }

    function _share(address member, uint256 roundId) internal {
        vm.prank(member);
        ledger.publishShares(roundId, _digest("shares", roundId, member));
    }

    function _finalize(uint256 roundId, address[] memory scored) internal returns (bytes32 model) {
        int32[] memory scores = new int32[](scored.length);
        for (uint256 i = 0; i < scored.length; ++i) scores[i] = int32(int256(i) + 1);
        model = _digest("model", roundId, address(0));
        vm.prank(coordinator);
        ledger.finalizeRound(roundId, model, _digest("manifest", roundId, address(0)), scored, scores);
    }

    /// A finalized round in which the first `n` members submitted and were scored.
    function _roundWith(uint256 n) internal returns (uint256 roundId) {
        roundId = _open();
        for (uint256 i = 0; i < n; ++i) _submit(members[i], roundId);
        if (n < members.length) vm.warp(block.timestamp + ROUND);
        _finalize(roundId, _first(n));
    }

    // ------------------------------------------------------------ values

    function _first(uint256 n) internal view returns (address[] memory out) {
        out = new address[](n);
        for (uint256 i = 0; i < n; ++i) out[i] = members[i];
    }

    function _one(address a) internal pure returns (address[] memory out) {
        out = new address[](1);
        out[0] = a;
    }

    function _scores(uint256 n) internal pure returns (int32[] memory out) {
        out = new int32[](n);
        for (uint256 i = 0; i < n; ++i) out[i] = 1;
    }

    function _digest(string memory kind, uint256 roundId, address who) internal pure returns (bytes32) {
        return keccak256(abi.encode(kind, roundId, who));
    }

    function _digit(uint256 i) internal pure returns (string memory) {
        bytes memory out = new bytes(1);
        out[0] = bytes1(uint8(48 + i));
        return string(out);
    }

    function _state(uint256 roundId) internal view returns (FederationLedger.RoundState state) {
        (,,,, state,,,) = ledger.getRound(roundId);
    }

    function _submissionCount(uint256 roundId) internal view returns (uint256 count) {
        (,,,,, count,,) = ledger.getRound(roundId);
    }

    function _closed(uint256 roundId) internal view returns (bool closed) {
        (,,,,, closed,) = ledger.roundPhases(roundId);
    }
}
