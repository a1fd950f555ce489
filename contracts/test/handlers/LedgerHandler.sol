// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {FederationLedger} from "../../FederationLedger.sol";
import {Vm, VM_ADDRESS} from "../utils/Vm.sol";

/**
 * @title LedgerHandler
 * @notice Drives one FederationLedger through random calls for forge's invariant tests, and keeps
 * a model of it: before each call it predicts, from its own ghost state and the contract's
 * documented rules, either success or the exact custom error, and reverts (failing the run, as
 * `fail_on_revert` is on) when the ledger answers otherwise. On success it updates the ghost
 * state the invariants compare the ledger's views with.
 *
 * Every input is a seed bounded here, so most calls are well-formed; a few in each function are
 * deliberately wrong (outsider caller, zero digest, wrong round, ...) to reach every refusal.
 * The handler deploys the ledger, so it is the admin.
 */
contract LedgerHandler {
    Vm internal constant vm = Vm(VM_ADDRESS);

    uint8 internal constant NONE = 0;
    uint8 internal constant OPEN = 1;
    uint8 internal constant FINALIZED = 2;
    uint8 internal constant ABORTED = 3;

    bytes32 public constant GENESIS = keccak256("invariant genesis");
    uint64 public constant GRACE = 6 hours;
    uint256 public constant ACTORS = 8;

    struct GhostRound {
        uint64 deadline;
        uint64 shareDeadline;
        uint8 state;
        uint256 eligible;
        uint256 baseRound;
        uint256 shares;
        uint256 submissions;
        uint256 reveals;
        uint256 scored;
        bytes32 model;
    }

    error Unexpected(string call, bytes4 predicted, bytes returned);

    FederationLedger public immutable ledger;
    bool public immutable secure;
    uint32 public immutable minUpdates;
    address public immutable coordinator;
    address public immutable outsider;
    address[] public actors;

    // ------------------------------------------------------------ ghost state
    mapping(address account => bool) public ghostActive;
    mapping(address account => uint256) internal _since;
    mapping(address account => uint256) public ghostEpsilon;
    mapping(address account => int256) public ghostScore;
    mapping(address account => uint256) public ghostSubmissions;
    mapping(address account => uint256) internal _latestRound;
    mapping(uint256 roundId => GhostRound) internal _rounds;
    mapping(uint256 roundId => address[]) internal _submitters;
    mapping(uint256 roundId => mapping(address account => bool)) internal _shared;
    mapping(uint256 roundId => mapping(address account => bool)) internal _revealed;

    uint256 public registrations;
    uint256 public removals;
    uint256 public totalEpsilonSubmitted;
    uint256 public current;
    uint256 public head;
    /// Finalizations while submissions were open, and coordinator aborts of a round at quorum before the grace: must stay 0.
    uint256 public earlyFinalizations;
    uint256 public quorumAborts;
    /// Successful calls by function, for the run's summary.
    mapping(string name => uint256) public successes;
    /// Refusals by custom-error selector (each one the model predicted).
    mapping(bytes4 selector => uint256) public refusals;

    constructor(bool secureAggregation, uint32 quorum) {
        secure = secureAggregation;
        minUpdates = quorum;
        coordinator = vm.addr(0xC0);
        outsider = vm.addr(0x0B);
        ledger = new FederationLedger(GENESIS, keccak256("invariant descriptor"), quorum, GRACE, secureAggregation);
        ledger.setCoordinator(coordinator);
        for (uint256 i = 0; i < ACTORS; ++i) {
            address actor = vm.addr(0xA000 + i);
            actors.push(actor);
            if (i < 4) {
                ledger.registerParticipant(actor, "org");
                _registered(actor);
            }
        }
    }

    // ------------------------------------------------------------ membership

    /// Registers (mostly), removes or sets a member key.
    function membership(uint256 kind, uint256 actorSeed, uint256 flags, bytes32 key) external {
        kind = _mix(kind) % 20;
        actorSeed = _mix(actorSeed);
        flags = _mix(flags);
        if (kind < 11) _register(actorSeed, flags);
        else if (kind < 16) _remove(actorSeed, flags);
        else _setKey(actorSeed, key);
    }

    function _register(uint256 actorSeed, uint256 flags) internal {
        address actor = flags % 10 < 7 ? _pickActor(actorSeed, _INACTIVE, 0) : actors[actorSeed % ACTORS];
        bool byOutsider = flags % 16 == 8;
        bool emptyName = flags % 16 == 9;
        bytes4 predicted = byOutsider
            ? FederationLedger.NotAdmin.selector
            : emptyName
                ? FederationLedger.EmptyName.selector
                : ghostActive[actor] ? FederationLedger.AlreadyRegistered.selector : bytes4(0);
        if (byOutsider) vm.prank(outsider);
        (bool ok, bytes memory ret) = address(ledger).call(
            abi.encodeCall(FederationLedger.registerParticipant, (actor, emptyName ? "" : "org"))
        );
        _check("registerParticipant", predicted, ok, ret);
        if (ok) _registered(actor);
    }

    function _remove(uint256 actorSeed, uint256 flags) internal {
        address actor = actors[actorSeed % ACTORS];
        bool byOutsider = flags % 16 == 7;
        bytes4 predicted = byOutsider
            ? FederationLedger.NotAdmin.selector
            : ghostActive[actor] ? bytes4(0) : FederationLedger.NotParticipant.selector;
        if (byOutsider) vm.prank(outsider);
        (bool ok, bytes memory ret) = address(ledger).call(abi.encodeCall(FederationLedger.removeParticipant, (actor)));
        _check("removeParticipant", predicted, ok, ret);
        if (ok) {
            ghostActive[actor] = false;
            removals += 1;
            successes["removeParticipant"] += 1;
        }
    }

    function _setKey(uint256 actorSeed, bytes32 key) internal {
        address actor = actorSeed % 10 == 0 ? outsider : actors[actorSeed % ACTORS];
        if (uint256(key) % 8 == 0) key = bytes32(0);
        bytes4 predicted = !ghostActive[actor]
            ? FederationLedger.NotParticipant.selector
            : key == bytes32(0) ? FederationLedger.EmptyKey.selector : bytes4(0);
        vm.prank(actor);
        (bool ok, bytes memory ret) = address(ledger).call(abi.encodeCall(FederationLedger.setMemberKey, (key)));
        _check("setMemberKey", predicted, ok, ret);
        if (ok) successes["setMemberKey"] += 1;
    }

    // ------------------------------------------------------------ rounds

    function openRound(uint256 seed, uint256 durationSeed, uint256 shareSeed) external {
        seed = _mix(seed);
        durationSeed = _mix(durationSeed);
        shareSeed = _mix(shareSeed);
        address caller = seed % 16 == 0 ? outsider : coordinator;
        bytes32 latest = _latestModel();
        bytes32 base = seed % 16 == 1 ? keccak256(abi.encode("wrong base", seed)) : latest;
        uint64 now_ = uint64(block.timestamp);
        uint64 duration = uint64(durationSeed % 20 == 0 ? 0 : 60 + durationSeed % 8 hours);
        uint64 deadline = now_ + duration;
        uint64 shareDeadline;
        if (secure) shareDeadline = shareSeed % 20 == 0 ? now_ : now_ + uint64(1 + shareSeed % (duration + 1));
        else if (shareSeed % 20 == 0) shareDeadline = now_ + 1;

        bytes4 predicted;
        if (caller != coordinator) predicted = FederationLedger.NotCoordinator.selector;
        else if (current != 0 && _rounds[current].state == OPEN) predicted = FederationLedger.RoundStillOpen.selector;
        else if (base != latest) predicted = FederationLedger.BaseModelMismatch.selector;
        else if (deadline <= now_) predicted = FederationLedger.DeadlineNotInFuture.selector;
        else if (secure ? (shareDeadline <= now_ || shareDeadline >= deadline) : shareDeadline != 0) {
            predicted = FederationLedger.InvalidShareDeadline.selector;
        }
        vm.prank(caller);
        (bool ok, bytes memory ret) =
            address(ledger).call(abi.encodeCall(FederationLedger.openRound, (base, shareDeadline, deadline)));
        _check("openRound", predicted, ok, ret);
        if (ok) {
            current += 1;
            require(abi.decode(ret, (uint256)) == current, "openRound returned another id");
            GhostRound storage round = _rounds[current];
            round.deadline = deadline;
            round.shareDeadline = shareDeadline;
            round.state = OPEN;
            round.eligible = _activeCount();
            round.baseRound = head;
            successes["openRound"] += 1;
        }
    }

    /// One to three members publish their share bundles.
    function publishShares(uint256 actorSeed, uint256 flags) external {
        uint256 n = 1 + _mix(flags ^ 1) % 3;
        for (uint256 i = 0; i < n; ++i) _publishShares(_mix(actorSeed ^ i), _mix(flags ^ (i << 128)));
    }

    function _publishShares(uint256 actorSeed, uint256 flags) internal {
        uint256 roundId = flags % 10 == 1 ? current + 1 : current;
        address actor = flags % 10 == 0
            ? outsider
            : flags % 10 < 8 ? _pickActor(actorSeed, _TO_SHARE, roundId) : actors[actorSeed % ACTORS];
        bytes32 bundle = flags % 16 == 2 ? bytes32(0) : keccak256(abi.encode("bundle", roundId, actor));
        GhostRound storage round = _rounds[roundId];
        bytes4 predicted;
        if (!secure) predicted = FederationLedger.NotSecureAggregation.selector;
        else if (round.state != OPEN) predicted = FederationLedger.RoundNotOpen.selector;
        else if (!ghostActive[actor]) predicted = FederationLedger.NotParticipant.selector;
        else if (_since[actor] >= roundId) predicted = FederationLedger.NotEligible.selector;
        else if (_sharePhaseClosed(round)) predicted = FederationLedger.SharePhaseClosed.selector;
        else if (bundle == bytes32(0)) predicted = FederationLedger.EmptyUpdate.selector;
        else if (_shared[roundId][actor]) predicted = FederationLedger.AlreadyPublished.selector;
        vm.prank(actor);
        (bool ok, bytes memory ret) =
            address(ledger).call(abi.encodeCall(FederationLedger.publishShares, (roundId, bundle)));
        _check("publishShares", predicted, ok, ret);
        if (ok) {
            _shared[roundId][actor] = true;
            round.shares += 1;
            successes["publishShares"] += 1;
        }
    }

    /// One to three members submit their updates.
    function submitUpdate(uint256 actorSeed, uint256 flags, uint64 samples, uint32 epsilonMilli) external {
        uint256 n = 1 + _mix(flags ^ 1) % 3;
        for (uint256 i = 0; i < n; ++i) {
            uint32 epsilon = i == 0 ? epsilonMilli : uint32(_mix(uint256(epsilonMilli) ^ i));
            _submitUpdate(_mix(actorSeed ^ i), _mix(flags ^ (i << 128)), samples, epsilon);
        }
    }

    function _submitUpdate(uint256 actorSeed, uint256 flags, uint64 samples, uint32 epsilonMilli) internal {
        uint256 roundId = flags % 10 == 1 ? current + 1 : current;
        address actor = flags % 10 == 0
            ? outsider
            : flags % 10 < 8 ? _pickActor(actorSeed, _TO_SUBMIT, roundId) : actors[actorSeed % ACTORS];
        bytes32 update = flags % 16 == 2 ? bytes32(0) : keccak256(abi.encode("update", roundId, actor, flags));
        if (flags % 16 == 3) update = keccak256("the same digest"); // two members may submit the same digest
        if (flags % 32 == 4) samples = 0;
        else if (samples == 0) samples = 1;
        GhostRound storage round = _rounds[roundId];
        bytes4 predicted;
        if (round.state != OPEN) predicted = FederationLedger.RoundNotOpen.selector;
        else if (!ghostActive[actor]) predicted = FederationLedger.NotParticipant.selector;
        else if (_since[actor] >= roundId) predicted = FederationLedger.NotEligible.selector;
        else if (secure && !_sharePhaseClosed(round)) predicted = FederationLedger.SharePhaseOpen.selector;
        else if (secure && !_shared[roundId][actor]) predicted = FederationLedger.NotSharer.selector;
        else if (_submissionsClosed(round)) predicted = FederationLedger.SubmissionsClosed.selector;
        else if (update == bytes32(0)) predicted = FederationLedger.EmptyUpdate.selector;
        else if (samples == 0) predicted = FederationLedger.NoSamples.selector;
        else if (_latestRound[actor] == roundId) predicted = FederationLedger.AlreadySubmitted.selector;
        vm.prank(actor);
        (bool ok, bytes memory ret) = address(ledger).call(
            abi.encodeCall(FederationLedger.submitUpdate, (roundId, update, samples, epsilonMilli))
        );
        _check("submitUpdate", predicted, ok, ret);
        if (ok) {
            _latestRound[actor] = roundId;
            _submitters[roundId].push(actor);
            round.submissions += 1;
            ghostSubmissions[actor] += 1;
            ghostEpsilon[actor] += epsilonMilli;
            totalEpsilonSubmitted += epsilonMilli;
            successes["submitUpdate"] += 1;
        }
    }

    function revealShares(uint256 actorSeed, uint256 flags) external {
        actorSeed = _mix(actorSeed);
        flags = _mix(flags);
        uint256 roundId = flags % 10 == 1 ? current + 1 : current;
        address actor = flags % 10 < 8 ? _pickActor(actorSeed, _TO_REVEAL, roundId) : actors[actorSeed % ACTORS];
        bytes32 reveal = flags % 16 == 2 ? bytes32(0) : keccak256(abi.encode("reveal", roundId, actor));
        GhostRound storage round = _rounds[roundId];
        bytes4 predicted;
        if (!secure) predicted = FederationLedger.NotSecureAggregation.selector;
        else if (round.state == NONE) predicted = FederationLedger.UnknownRound.selector;
        else if (round.state != OPEN) predicted = FederationLedger.RoundNotOpen.selector;
        else if (_latestRound[actor] != roundId) predicted = FederationLedger.NotSubmitter.selector;
        else if (!_submissionsClosed(round)) predicted = FederationLedger.SubmissionsStillOpen.selector;
        else if (reveal == bytes32(0)) predicted = FederationLedger.EmptyUpdate.selector;
        else if (_revealed[roundId][actor]) predicted = FederationLedger.AlreadyPublished.selector;
        vm.prank(actor);
        (bool ok, bytes memory ret) =
            address(ledger).call(abi.encodeCall(FederationLedger.revealShares, (roundId, reveal)));
        _check("revealShares", predicted, ok, ret);
        if (ok) {
            _revealed[roundId][actor] = true;
            round.reveals += 1;
            successes["revealShares"] += 1;
        }
    }

    function finalizeRound(uint256 mask, uint256 flags, int32 scoreSeed) external {
        mask = _mix(mask);
        flags = _mix(flags);
        address caller = flags % 16 == 0 ? outsider : coordinator;
        uint256 roundId = flags % 16 == 1 ? current + 1 : current;
        // Mostly every submitter (a quorum, once enough submitted), else a random subset in a rotated order.
        address[] memory scored = _pick(_submitters[roundId], mask % 2 == 0 ? type(uint128).max | (mask >> 128 << 128) : mask);
        uint256 fault = (flags / 10) % 16; // 0..9: none; 10: a non-submitter; 11: one twice; 12: short scores; 13, 14: empty digests
        if (fault == 10) scored = _with(scored, actors[mask % ACTORS], mask);
        if (fault == 11 && scored.length > 0) scored = _with(scored, scored[mask % scored.length], mask >> 8);
        int32[] memory scores = new int32[](fault == 12 && scored.length > 0 ? scored.length - 1 : scored.length);
        for (uint256 i = 0; i < scores.length; ++i) scores[i] = int32(int256(scoreSeed) % 1000) + int32(int256(i));
        bytes32 model = fault == 13 ? bytes32(0) : keccak256(abi.encode("model", roundId, flags));
        bytes32 manifest = fault == 14 ? bytes32(0) : keccak256(abi.encode("manifest", roundId));

        GhostRound storage round = _rounds[roundId];
        bytes4 predicted;
        if (caller != coordinator) predicted = FederationLedger.NotCoordinator.selector;
        else if (round.state != OPEN) predicted = FederationLedger.RoundNotOpen.selector;
        else if (!_submissionsClosed(round)) predicted = FederationLedger.SubmissionsStillOpen.selector;
        else if (scored.length != scores.length) predicted = FederationLedger.LengthMismatch.selector;
        else if (scored.length < minUpdates) predicted = FederationLedger.QuorumNotReached.selector;
        else if (model == bytes32(0)) predicted = FederationLedger.EmptyModel.selector;
        else if (manifest == bytes32(0)) predicted = FederationLedger.EmptyManifest.selector;
        else predicted = _scoringError(roundId, scored);

        vm.prank(caller);
        (bool ok, bytes memory ret) = address(ledger).call(
            abi.encodeCall(FederationLedger.finalizeRound, (roundId, model, manifest, scored, scores))
        );
        _check("finalizeRound", predicted, ok, ret);
        if (ok) {
            if (block.timestamp < round.deadline && round.submissions < _expected(round)) earlyFinalizations += 1;
            round.state = FINALIZED;
            round.model = model;
            round.scored = scored.length;
            head = roundId;
            for (uint256 i = 0; i < scored.length; ++i) ghostScore[scored[i]] += scores[i];
            successes["finalizeRound"] += 1;
        }
    }

    function abortRound(uint256 callerSeed, uint256 flags) external {
        callerSeed = _mix(callerSeed);
        flags = _mix(flags);
        uint256 pick = callerSeed % 5;
        address caller = pick < 2 ? coordinator : pick == 2 ? address(this) : pick == 3 ? actors[flags % ACTORS] : outsider;
        uint256 roundId = flags % 10 == 1 ? current + 1 : current;
        GhostRound storage round = _rounds[roundId];
        uint256 abortableAt = uint256(round.deadline) + GRACE;
        bytes4 predicted;
        if (round.state != OPEN) {
            predicted = FederationLedger.RoundNotOpen.selector;
        } else if (block.timestamp < abortableAt) {
            if (caller != coordinator) predicted = FederationLedger.GraceNotOver.selector;
            else if (!_submissionsClosed(round)) predicted = FederationLedger.SubmissionsStillOpen.selector;
            else if (round.submissions >= minUpdates) predicted = FederationLedger.QuorumReached.selector;
        } else if (caller != coordinator && caller != address(this) && !ghostActive[caller]) {
            predicted = FederationLedger.NotParticipant.selector;
        }
        vm.prank(caller);
        (bool ok, bytes memory ret) = address(ledger).call(abi.encodeCall(FederationLedger.abortRound, (roundId)));
        _check("abortRound", predicted, ok, ret);
        if (ok) {
            if (block.timestamp < abortableAt && round.submissions >= minUpdates) quorumAborts += 1;
            round.state = ABORTED;
            successes["abortRound"] += 1;
        }
    }

    function rebaseLineage(uint256 targetSeed, uint256 flags) external {
        targetSeed = _mix(targetSeed);
        flags = _mix(flags);
        bool byOutsider = flags % 8 == 3;
        uint256 target = targetSeed % (current + 2);
        bytes4 predicted;
        if (byOutsider) predicted = FederationLedger.NotAdmin.selector;
        else if (current != 0 && _rounds[current].state == OPEN) predicted = FederationLedger.RoundStillOpen.selector;
        else if (!_onLineage(target)) predicted = FederationLedger.NotRebaseTarget.selector;
        if (byOutsider) vm.prank(outsider);
        (bool ok, bytes memory ret) = address(ledger).call(abi.encodeCall(FederationLedger.rebaseLineage, (target)));
        _check("rebaseLineage", predicted, ok, ret);
        if (ok) {
            head = target;
            successes["rebaseLineage"] += 1;
        }
    }

    /// Moves the chain's clock (and block) forward: deadlines, share deadlines and grace periods pass.
    function warp(uint256 seconds_) external {
        seconds_ = _mix(seconds_);
        vm.roll(block.number + 1);
        if (seconds_ % 2 == 0) return; // the clock moves on every other call, so members get to submit before deadlines
        vm.warp(block.timestamp + 1 + (seconds_ >> 1) % 3 hours);
    }

    // ------------------------------------------------------------ views for the invariants

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function ghostRound(uint256 roundId) external view returns (GhostRound memory) {
        return _rounds[roundId];
    }

    function activeCount() external view returns (uint256) {
        return _activeCount();
    }

    // ------------------------------------------------------------ the model's rules

    /// Whether `target` (0 = genesis) is the head or one of its ancestors: a rebase may only go back along the lineage.
    function _onLineage(uint256 target) internal view returns (bool) {
        if (target == 0) return true;
        for (uint256 step = head; step != 0 && step >= target; step = _rounds[step].baseRound) {
            if (step == target) return true;
        }
        return false;
    }

    /// @dev forge's fuzzer favours edge values (0, 1, max) and values it saw in storage; hashing each
    /// seed spreads the residues the cases are chosen by evenly.
    function _mix(uint256 seed) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed)));
    }

    function _registered(address actor) internal {
        ghostActive[actor] = true;
        _since[actor] = current;
        registrations += 1;
        successes["registerParticipant"] += 1;
    }

    function _latestModel() internal view returns (bytes32) {
        return head == 0 ? GENESIS : _rounds[head].model;
    }

    function _activeCount() internal view returns (uint256 count) {
        for (uint256 i = 0; i < ACTORS; ++i) if (ghostActive[actors[i]]) ++count;
    }

    function _expected(GhostRound storage round) internal view returns (uint256) {
        return secure ? round.shares : round.eligible;
    }

    function _sharePhaseClosed(GhostRound storage round) internal view returns (bool) {
        return block.timestamp >= round.shareDeadline || round.shares >= round.eligible;
    }

    function _submissionsClosed(GhostRound storage round) internal view returns (bool) {
        if (block.timestamp >= round.deadline) return true;
        if (secure && !_sharePhaseClosed(round)) return false;
        return round.submissions >= _expected(round);
    }

    function _scoringError(uint256 roundId, address[] memory scored) internal view returns (bytes4) {
        for (uint256 i = 0; i < scored.length; ++i) {
            if (_latestRound[scored[i]] != roundId) return FederationLedger.NotSubmitter.selector;
            for (uint256 j = 0; j < i; ++j) {
                if (scored[j] == scored[i]) return FederationLedger.AlreadyScored.selector;
            }
        }
        return bytes4(0);
    }

    uint8 internal constant _INACTIVE = 0;
    uint8 internal constant _TO_SHARE = 1;
    uint8 internal constant _TO_SUBMIT = 2;
    uint8 internal constant _TO_REVEAL = 3;

    /// An actor the call should succeed for, if there is one (else any): most calls then move the round on.
    function _pickActor(uint256 seed, uint8 purpose, uint256 roundId) internal view returns (address) {
        address[] memory fits = new address[](ACTORS);
        uint256 n;
        for (uint256 i = 0; i < ACTORS; ++i) {
            address a = actors[i];
            bool eligible = ghostActive[a] && _since[a] < roundId;
            bool fit;
            if (purpose == _INACTIVE) fit = !ghostActive[a];
            else if (purpose == _TO_SHARE) fit = eligible && !_shared[roundId][a];
            else if (purpose == _TO_SUBMIT) fit = eligible && _latestRound[a] != roundId && (!secure || _shared[roundId][a]);
            else fit = _latestRound[a] == roundId && !_revealed[roundId][a];
            if (fit) fits[n++] = a;
        }
        return n == 0 ? actors[seed % ACTORS] : fits[seed % n];
    }

    function _pick(address[] storage from, uint256 mask) internal view returns (address[] memory out) {
        uint256 n;
        for (uint256 i = 0; i < from.length; ++i) if (mask >> i & 1 == 1) ++n;
        out = new address[](n);
        uint256 k;
        // Rotate the start so the scored order differs from the submission order.
        uint256 start = from.length == 0 ? 0 : (mask >> 128) % from.length;
        for (uint256 step = 0; step < from.length; ++step) {
            uint256 i = (start + step) % from.length;
            if (mask >> i & 1 == 1) out[k++] = from[i];
        }
    }

    function _with(address[] memory list, address extra, uint256 seed) internal pure returns (address[] memory out) {
        out = new address[](list.length + 1);
        uint256 at = seed % out.length;
        for (uint256 i = 0; i < out.length; ++i) out[i] = i < at ? list[i] : i == at ? extra : list[i - 1];
    }

    function _check(string memory call, bytes4 predicted, bool ok, bytes memory ret) internal {
        if (ok ? predicted != bytes4(0) : (predicted == bytes4(0) || bytes4(ret) != predicted)) {
            revert Unexpected(call, predicted, ret);
        }
        if (!ok) refusals[predicted] += 1;
    }
}
