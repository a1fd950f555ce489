// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title FederationLedger
 * @notice The audit trail of a federated-learning consortium. From this contract's views
 * and events alone anyone can answer: who is a member; each round's base model, deadline
 * and state; every submitted update's digest, sample count and privacy spend; each
 * round's global model and manifest; each participant's contribution score per round and
 * in total; and the model lineage from genesis.
 *
 * Every model, update and manifest is referenced by the 32-byte sha2-256 digest of its
 * content's root block in the content store.
 *
 * @dev Roles: one admin (two-step transfer), one coordinator appointed by the admin, and
 * registered participants. Rounds run one at a time: open -> submissions -> finalized or
 * aborted. Storage is packed (one slot per member, one digest slot plus one packed slot
 * per submission, and the round's submitter list threaded through the submission slots)
 * so that a submission costs about two fresh storage slots and a scored participant about
 * three warm slot updates.
 */
contract FederationLedger {
    /// @notice Life cycle of a round. `None` is never stored for an existing round.
    enum RoundState {
        None,
        Open,
        Finalized,
        Aborted
    }

    // One slot per account that was ever registered.
    struct Member {
        bool active;
        uint32 id; // 1-based position in _participantList; 0 = never registered
        uint32 submissionCount;
        uint32 lastRound; // head of this member's list of rounds submitted to; 0 = none
        int64 totalScore;
        uint64 totalEpsilonMilli;
    }

    struct Round {
        // Holds the round's base model while it is open (or after an abort) and its global
        // model once finalized: finalizing then overwrites a written slot (5,000 gas)
        // instead of a fresh one (22,100). The base stays readable through `baseRound`.
        bytes32 model;
        bytes32 manifest;
        // packed into one slot:
        uint64 deadline;
        RoundState state;
        uint32 submissionCount;
        uint32 lastSubmitter; // member id heading the round's submitter list; 0 = none
        uint32 baseRound; // the round whose global model is this round's base; 0 = genesis
        uint40 openedBlock; // uint40 blocks outlast any chain by millennia
        uint40 closedBlock;
    }

    // One slot per submission, keyed by (round, digest) so it also detects a digest
    // submitted twice in a round. The two `prev` links thread the round's submitter list
    // and the participant's round list through these slots instead of separate arrays.
    struct Submission {
        uint64 numSamples;
        uint32 epsilonMilli;
        int32 score;
        uint40 blockNumber; // nonzero for every stored submission
        uint32 prevSubmitter; // member id of the round's previous submitter; 0 = first
        uint32 prevRound; // the participant's previous round; 0 = first
        bool scored;
    }

    // Read together by the coordinator's functions, so they share one slot.
    address private _coordinator;
    uint32 private _currentRound;
    uint32 private _latestFinalizedRound;
    uint32 private _minUpdates;

    address private _admin;
    address private _pendingAdmin;
    bytes32 private _genesisModel;

    address[] private _participantList;
    mapping(address account => Member) private _members;
    mapping(address account => string) private _names;
    mapping(uint256 roundId => Round) private _rounds;
    mapping(uint256 roundId => mapping(address participant => bytes32 update)) private _updates;
    mapping(uint256 roundId => mapping(bytes32 update => Submission)) private _submissions;

    // ---------------------------------------------------------------- events

    /// @notice `participant` became a member under `name`.
    event ParticipantRegistered(address indexed participant, string name);
    /// @notice `participant` stopped being a member; its past submissions and scores remain.
    event ParticipantRemoved(address indexed participant);
    /// @notice The coordinator changed from `previousCoordinator` to `newCoordinator`.
    event CoordinatorChanged(address indexed previousCoordinator, address indexed newCoordinator);
    /// @notice `currentAdmin` offered the admin role to `pendingAdmin`.
    event AdminTransferStarted(address indexed currentAdmin, address indexed pendingAdmin);
    /// @notice The admin role moved from `previousAdmin` to `newAdmin`.
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    /// @notice Round `roundId` opened on `baseModel`; submissions close at `deadline`.
    event RoundOpened(uint256 indexed roundId, bytes32 indexed baseModel, uint64 deadline);
    /// @notice `participant` submitted `update` for round `roundId`.
    event UpdateSubmitted(
        uint256 indexed roundId,
        address indexed participant,
        bytes32 indexed update,
        uint64 numSamples,
        uint32 epsilonMilli
    );
    /// @notice Round `roundId` produced `globalModel`, described by `manifest`.
    event RoundFinalized(
        uint256 indexed roundId,
        bytes32 indexed globalModel,
        bytes32 manifest,
        uint256 submissionCount,
        uint256 scoredCount
    );
    /// @notice Round `roundId` closed without a global model.
    event RoundAborted(uint256 indexed roundId, uint256 submissionCount);
    /// @notice `participant` earned `score` for its update in round `roundId`.
    event ContributionScored(uint256 indexed roundId, address indexed participant, int32 score);

    // ---------------------------------------------------------------- errors

    /// @notice `account` is not the admin.
    error NotAdmin(address account);
    /// @notice `account` is not the pending admin.
    error NotPendingAdmin(address account);
    /// @notice `account` is not the coordinator.
    error NotCoordinator(address account);
    /// @notice `account` is not a registered participant.
    error NotParticipant(address account);
    /// @notice `account` is already a registered participant.
    error AlreadyRegistered(address account);
    /// @notice The zero address was given where an account is required.
    error ZeroAddress();
    /// @notice A participant must be registered with a non-empty name.
    error EmptyName(address participant);
    /// @notice `minUpdates` must be at least 1.
    error InvalidMinUpdates(uint32 minUpdates);
    /// @notice A model digest of zero was given.
    error EmptyModel();
    /// @notice A manifest digest of zero was given.
    error EmptyManifest();
    /// @notice Round `roundId` does not exist.
    error UnknownRound(uint256 roundId);
    /// @notice Round `roundId` is still open; only one round runs at a time.
    error RoundStillOpen(uint256 roundId);
    /// @notice Round `roundId` is not open.
    error RoundNotOpen(uint256 roundId);
    /// @notice A round must start from the latest model `expected`, not `given`.
    error BaseModelMismatch(bytes32 expected, bytes32 given);
    /// @notice `deadline` is not after the current block time `nowTimestamp`.
    error DeadlineNotInFuture(uint64 deadline, uint256 nowTimestamp);
    /// @notice Submissions to round `roundId` closed at `deadline`.
    error DeadlinePassed(uint256 roundId, uint64 deadline);
    /// @notice An update digest of zero was given for round `roundId`.
    error EmptyUpdate(uint256 roundId);
    /// @notice An update must be trained on at least one sample.
    error NoSamples(uint256 roundId);
    /// @notice `participant` already submitted `update` to round `roundId`.
    error AlreadySubmitted(uint256 roundId, address participant, bytes32 update);
    /// @notice `update` was already submitted to round `roundId` by someone else.
    error DuplicateUpdate(uint256 roundId, bytes32 update);
    /// @notice Round `roundId` has `have` submissions and needs `need` to finalize.
    error QuorumNotReached(uint256 have, uint256 need);
    /// @notice `participants` and `scores` must have equal lengths.
    error LengthMismatch(uint256 participants, uint256 scores);
    /// @notice `participant` did not submit to round `roundId`, so it cannot be scored.
    error NotSubmitter(uint256 roundId, address participant);
    /// @notice `participant` appears more than once in round `roundId`'s scores.
    error AlreadyScored(uint256 roundId, address participant);

    // ---------------------------------------------------------------- modifiers

    modifier onlyAdmin() {
        if (msg.sender != _admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyCoordinator() {
        if (msg.sender != _coordinator) revert NotCoordinator(msg.sender);
        _;
    }

    /**
     * @notice Starts a ledger whose lineage begins at `genesisModel`; the deployer is admin.
     * @param genesisModel Digest of the initial model every first round must start from.
     * @param minUpdates Submissions a round needs before it can be finalized (at least 1).
     */
    constructor(bytes32 genesisModel, uint32 minUpdates) {
        if (genesisModel == bytes32(0)) revert EmptyModel();
        if (minUpdates == 0) revert InvalidMinUpdates(minUpdates);
        _genesisModel = genesisModel;
        _minUpdates = minUpdates;
        _admin = msg.sender;
        emit AdminTransferred(address(0), msg.sender);
    }

    // ---------------------------------------------------------------- governance

    /**
     * @notice Appoints `newCoordinator`, who alone opens, finalizes and aborts rounds.
     * @dev Admin only.
     */
    function setCoordinator(address newCoordinator) external onlyAdmin {
        if (newCoordinator == address(0)) revert ZeroAddress();
        address previous = _coordinator;
        _coordinator = newCoordinator;
        emit CoordinatorChanged(previous, newCoordinator);
    }

    /**
     * @notice Makes `participant` a member under `name`; a removed member may be registered again
     * and keeps its history and totals.
     * @dev Admin only.
     */
    function registerParticipant(address participant, string calldata name) external onlyAdmin {
        if (participant == address(0)) revert ZeroAddress();
        if (bytes(name).length == 0) revert EmptyName(participant);
        Member storage member = _members[participant];
        if (member.active) revert AlreadyRegistered(participant);
        if (member.id == 0) {
            _participantList.push(participant);
            member.id = uint32(_participantList.length);
        }
        member.active = true;
        _names[participant] = name;
        emit ParticipantRegistered(participant, name);
    }

    /**
     * @notice Ends `participant`'s membership; its submissions and scores stay on record.
     * @dev Admin only.
     */
    function removeParticipant(address participant) external onlyAdmin {
        Member storage member = _members[participant];
        if (!member.active) revert NotParticipant(participant);
        member.active = false;
        emit ParticipantRemoved(participant);
    }

    /**
     * @notice Offers the admin role to `newAdmin`, who must call {acceptAdmin}. Replaces any
     * pending offer; the zero address cancels it.
     * @dev Admin only.
     */
    function transferAdmin(address newAdmin) external onlyAdmin {
        _pendingAdmin = newAdmin;
        emit AdminTransferStarted(msg.sender, newAdmin);
    }

    /// @notice Completes an admin transfer; callable only by the pending admin.
    function acceptAdmin() external {
        if (msg.sender != _pendingAdmin) revert NotPendingAdmin(msg.sender);
        address previous = _admin;
        delete _pendingAdmin;
        _admin = msg.sender;
        emit AdminTransferred(previous, msg.sender);
    }

    // ---------------------------------------------------------------- rounds

    /**
     * @notice Opens the next round on `baseModel`, which must be {latestModel}.
     * @dev Coordinator only; no other round may be open.
     * @param baseModel Digest of the model participants train from.
     * @param deadline Unix time (seconds) at which submissions close; must be in the future.
     * @return roundId The new round's id; ids start at 1.
     */
    function openRound(bytes32 baseModel, uint64 deadline) external onlyCoordinator returns (uint256 roundId) {
        uint32 current = _currentRound;
        if (current != 0 && _rounds[current].state == RoundState.Open) revert RoundStillOpen(current);
        bytes32 latest = latestModel();
        if (baseModel != latest) revert BaseModelMismatch(latest, baseModel);
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline, block.timestamp);

        uint32 next = current + 1;
        _currentRound = next;
        Round storage round = _rounds[next];
        round.model = baseModel;
        round.deadline = deadline;
        round.state = RoundState.Open;
        round.baseRound = _latestFinalizedRound;
        round.openedBlock = uint40(block.number);
        roundId = next;
        emit RoundOpened(roundId, baseModel, deadline);
    }

    /**
     * @notice Records the caller's update for the open round `roundId`.
     * @dev Registered participants only; once per participant per round; before the deadline.
     * @param roundId The open round.
     * @param update Digest of the encoded update in the content store; not zero and not
     * already submitted to this round.
     * @param numSamples Number of local training samples behind the update; at least 1.
     * @param epsilonMilli Differential-privacy epsilon spent on this update, in thousandths
     * (0 = no differential privacy).
     */
    function submitUpdate(uint256 roundId, bytes32 update, uint64 numSamples, uint32 epsilonMilli) external {
        Member storage member = _members[msg.sender];
        if (!member.active) revert NotParticipant(msg.sender);
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        if (block.timestamp >= round.deadline) revert DeadlinePassed(roundId, round.deadline);
        if (update == bytes32(0)) revert EmptyUpdate(roundId);
        if (numSamples == 0) revert NoSamples(roundId);
        bytes32 previousUpdate = _updates[roundId][msg.sender];
        if (previousUpdate != bytes32(0)) revert AlreadySubmitted(roundId, msg.sender, previousUpdate);
        Submission storage submission = _submissions[roundId][update];
        if (submission.blockNumber != 0) revert DuplicateUpdate(roundId, update);

        _updates[roundId][msg.sender] = update;
        // An open round's id never exceeds _currentRound, so it fits in uint32.
        uint32 round32 = uint32(roundId);
        _submissions[roundId][update] = Submission({
            numSamples: numSamples,
            epsilonMilli: epsilonMilli,
            score: 0,
            blockNumber: uint40(block.number),
            prevSubmitter: round.lastSubmitter,
            prevRound: member.lastRound,
            scored: false
        });
        round.submissionCount += 1;
        round.lastSubmitter = member.id;
        member.submissionCount += 1;
        member.lastRound = round32;
        member.totalEpsilonMilli += epsilonMilli;
        emit UpdateSubmitted(roundId, msg.sender, update, numSamples, epsilonMilli);
    }

    /**
     * @notice Closes round `roundId` with its global model and manifest, and records each
     * scored participant's contribution. {latestModel} becomes `globalModel`.
     * @dev Coordinator only; the round must be open and have at least {minUpdates}
     * submissions. Every scored participant must have submitted to this round, at most once
     * in `participants`. Participants left out are recorded as not scored.
     * @param roundId The open round.
     * @param globalModel Digest of the aggregated model; not zero.
     * @param manifest Digest of the round manifest (accepted and rejected updates, reasons,
     * aggregation parameters); not zero.
     * @param participants Submitters to score, in any order.
     * @param scores Contribution score of each entry of `participants`.
     */
    function finalizeRound(
        uint256 roundId,
        bytes32 globalModel,
        bytes32 manifest,
        address[] calldata participants,
        int32[] calldata scores
    ) external onlyCoordinator {
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        uint256 have = round.submissionCount;
        if (have < _minUpdates) revert QuorumNotReached(have, _minUpdates);
        if (participants.length != scores.length) revert LengthMismatch(participants.length, scores.length);
        if (globalModel == bytes32(0)) revert EmptyModel();
        if (manifest == bytes32(0)) revert EmptyManifest();

        for (uint256 i = 0; i < participants.length; ++i) {
            _recordScore(roundId, participants[i], scores[i]);
        }

        round.model = globalModel;
        round.manifest = manifest;
        round.state = RoundState.Finalized;
        round.closedBlock = uint40(block.number);
        _latestFinalizedRound = uint32(roundId);
        emit RoundFinalized(roundId, globalModel, manifest, have, participants.length);
    }

    /**
     * @notice Closes round `roundId` without a global model (e.g. no quorum); {latestModel}
     * is unchanged and the next round starts from it again.
     * @dev Coordinator only; the round must be open.
     */
    function abortRound(uint256 roundId) external onlyCoordinator {
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        round.state = RoundState.Aborted;
        round.closedBlock = uint40(block.number);
        emit RoundAborted(roundId, round.submissionCount);
    }

    // ---------------------------------------------------------------- views

    /// @notice The admin account.
    function admin() external view returns (address) {
        return _admin;
    }

    /// @notice The account offered the admin role, or zero.
    function pendingAdmin() external view returns (address) {
        return _pendingAdmin;
    }

    /// @notice The coordinator account, or zero before one is appointed.
    function coordinator() external view returns (address) {
        return _coordinator;
    }

    /// @notice The model the lineage starts from.
    function genesisModel() external view returns (bytes32) {
        return _genesisModel;
    }

    /// @notice The global model of the latest finalized round, or the genesis model.
    function latestModel() public view returns (bytes32) {
        uint32 finalized = _latestFinalizedRound;
        return finalized == 0 ? _genesisModel : _rounds[finalized].model;
    }

    /// @notice The latest finalized round, or 0 when none is.
    function latestFinalizedRound() external view returns (uint256) {
        return _latestFinalizedRound;
    }

    /// @notice The id of the most recently opened round (open or closed), or 0 when none.
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @notice Submissions a round needs before it can be finalized.
    function minUpdates() external view returns (uint32) {
        return _minUpdates;
    }

    /// @notice Whether `account` is currently a registered participant.
    function isParticipant(address account) external view returns (bool) {
        return _members[account].active;
    }

    /// @notice The name `account` was (last) registered under, or "" if never registered.
    function participantName(address account) external view returns (string memory) {
        return _names[account];
    }

    /// @notice The current participants, in order of first registration.
    function participants() external view returns (address[] memory active) {
        uint256 total = _participantList.length;
        active = new address[](total);
        uint256 count = 0;
        for (uint256 i = 0; i < total; ++i) {
            address account = _participantList[i];
            if (_members[account].active) active[count++] = account;
        }
        assembly ("memory-safe") {
            mstore(active, count) // shrink to the active entries
        }
    }

    /**
     * @notice One round's record.
     * @dev Reverts with {UnknownRound} for a round that was never opened.
     * @return baseModel The model the round started from.
     * @return globalModel The round's global model; zero unless finalized.
     * @return manifest The round's manifest; zero unless finalized.
     * @return deadline Unix time at which submissions closed.
     * @return state Open, Finalized or Aborted.
     * @return submissionCount Number of updates submitted.
     * @return openedBlock Block in which the round opened.
     * @return closedBlock Block in which it was finalized or aborted; zero while open.
     */
    function getRound(uint256 roundId)
        external
        view
        returns (
            bytes32 baseModel,
            bytes32 globalModel,
            bytes32 manifest,
            uint64 deadline,
            RoundState state,
            uint256 submissionCount,
            uint256 openedBlock,
            uint256 closedBlock
        )
    {
        Round storage round = _roundOrRevert(roundId);
        state = round.state;
        baseModel = round.baseRound == 0 ? _genesisModel : _rounds[round.baseRound].model;
        if (state == RoundState.Finalized) {
            globalModel = round.model;
            manifest = round.manifest;
        }
        deadline = round.deadline;
        submissionCount = round.submissionCount;
        openedBlock = round.openedBlock;
        closedBlock = round.closedBlock;
    }

    /**
     * @notice `participant`'s submission to round `roundId`; all zero when it did not submit.
     * @dev Reverts with {UnknownRound} for a round that was never opened.
     * @return update Digest of the submitted update.
     * @return numSamples Local training samples behind it.
     * @return epsilonMilli Differential-privacy epsilon spent, in thousandths.
     * @return score Contribution score; zero unless scored.
     * @return blockNumber Block in which it was submitted.
     * @return scored Whether the coordinator scored it when finalizing.
     */
    function getSubmission(uint256 roundId, address participant)
        external
        view
        returns (
            bytes32 update,
            uint64 numSamples,
            uint32 epsilonMilli,
            int32 score,
            uint256 blockNumber,
            bool scored
        )
    {
        _roundOrRevert(roundId);
        update = _updates[roundId][participant];
        if (update != bytes32(0)) {
            Submission storage submission = _submissions[roundId][update];
            (numSamples, epsilonMilli, score, blockNumber, scored) = (
                submission.numSamples,
                submission.epsilonMilli,
                submission.score,
                submission.blockNumber,
                submission.scored
            );
        }
    }

    /**
     * @notice The accounts that submitted to round `roundId`, in submission order.
     * @dev Reverts with {UnknownRound} for a round that was never opened.
     */
    function submitters(uint256 roundId) external view returns (address[] memory accounts) {
        Round storage round = _roundOrRevert(roundId);
        accounts = new address[](round.submissionCount);
        uint32 memberId = round.lastSubmitter;
        for (uint256 i = accounts.length; i > 0; --i) {
            address account = _participantList[memberId - 1];
            accounts[i - 1] = account;
            memberId = _submissions[roundId][_updates[roundId][account]].prevSubmitter;
        }
    }

    /// @notice The rounds `participant` submitted to, oldest first.
    function participantRounds(address participant) external view returns (uint256[] memory roundIds) {
        Member storage member = _members[participant];
        roundIds = new uint256[](member.submissionCount);
        uint256 roundId = member.lastRound;
        for (uint256 i = roundIds.length; i > 0; --i) {
            roundIds[i - 1] = roundId;
            roundId = _submissions[roundId][_updates[roundId][participant]].prevRound;
        }
    }

    /// @notice Sum of `participant`'s contribution scores over all rounds.
    function totalScore(address participant) external view returns (int64) {
        return _members[participant].totalScore;
    }

    /// @notice Sum of the differential-privacy epsilon `participant` spent, in thousandths.
    function totalEpsilonMilli(address participant) external view returns (uint64) {
        return _members[participant].totalEpsilonMilli;
    }

    function _recordScore(uint256 roundId, address participant, int32 score) private {
        bytes32 update = _updates[roundId][participant];
        if (update == bytes32(0)) revert NotSubmitter(roundId, participant);
        Submission storage submission = _submissions[roundId][update];
        if (submission.scored) revert AlreadyScored(roundId, participant);
        submission.scored = true;
        submission.score = score;
        _members[participant].totalScore += score;
        emit ContributionScored(roundId, participant, score);
    }

    function _roundOrRevert(uint256 roundId) private view returns (Round storage round) {
        round = _rounds[roundId];
        if (round.state == RoundState.None) revert UnknownRound(roundId);
    }
}
