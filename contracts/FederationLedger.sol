// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/**
 * @title FederationLedger
 * @notice The audit trail of a federated-learning consortium. From this contract's views
 * and events alone anyone can answer: who is a member and since when; each round's base
 * model, deadlines and state; every submitted update's digest, sample count and privacy
 * spend; each round's global model and manifest; each participant's contribution score per
 * round and in total; and the model lineage from genesis, rebases included.
 *
 * Every model, update, manifest and share bundle is referenced by the 32-byte sha2-256
 * digest of its content's root block in the content store. The federation descriptor (what
 * the federation trains and how rounds are derived) is bound at deployment by its digest.
 *
 * @dev Roles: one admin (two-step transfer), one coordinator appointed by the admin, and
 * registered participants. Rounds run one at a time: open -> (shares, in secure-aggregation
 * mode) -> submissions -> (reveals, in secure-aggregation mode) -> finalized or aborted.
 *
 * What the chain refuses, so a hostile coordinator cannot:
 * - finalize while submissions are open (before the deadline with eligible members still
 *   to submit), or with fewer scored (aggregated) participants than the quorum;
 * - abort a round whose submissions reached the quorum;
 * and an open round nobody closes can be aborted by any member, the admin or the
 * coordinator once its deadline plus the grace period has passed.
 *
 * Gas: each member owns one storage slot for its totals and two for its latest submission,
 * written non-zero at registration, so a submission only ever overwrites warm-able slots
 * (about 50,000 gas). The history of earlier submissions lives in the events: each
 * UpdateSubmitted names the block of the member's previous submission, so a member's history
 * is read back block by block, its cost growing only with the rounds it took part in.
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
        uint32 sinceRound; // the latest round opened before registration; eligible from the next one
        uint32 submissionCount;
        uint32 lastShareRound; // secure aggregation: the latest round it published shares in
        uint32 lastRevealRound; // secure aggregation: the latest round it revealed shares in
        int64 totalScore;
        uint64 totalEpsilonMilli;
    }

    // A member's latest submission: two slots, overwritten each round (earlier ones are in the events).
    struct Latest {
        bytes32 update;
        uint64 numSamples;
        uint32 epsilonMilli;
        int32 score;
        uint32 roundId; // 0 = none yet
        uint40 blockNumber;
        bool scored;
        bool initialized; // set at registration so every later write overwrites a non-zero slot
    }

    struct Round {
        // The round's global model once finalized.
        bytes32 model;
        bytes32 manifest;
        // packed into one slot:
        uint64 deadline;
        RoundState state;
        uint32 submissionCount;
        uint32 baseRound; // the round whose global model is this round's base; 0 = genesis
        uint32 eligible; // active members registered before the round opened
        uint40 openedBlock;
        uint40 closedBlock;
        // secure aggregation only (one more slot):
        uint64 shareDeadline;
        uint32 shareCount;
        uint32 revealCount;
    }

    // Read together by the coordinator's functions, so they share one slot.
    address private _coordinator;
    uint32 private _currentRound;
    uint32 private _latestFinalizedRound; // head of the lineage (a rebase may move it back)

    address private _admin;
    address private _pendingAdmin;

    bytes32 private immutable _genesisModel;
    bytes32 private immutable _descriptor;
    uint32 private immutable _minUpdates;
    uint64 private immutable _abortGrace;
    bool private immutable _secureAggregation;

    address[] private _active;
    mapping(address account => uint256 position) private _activeIndex; // 1-based position in _active
    mapping(address account => Member) private _members;
    mapping(address account => Latest) private _latest;
    mapping(address account => string) private _names;
    mapping(address account => bytes32 key) private _memberKeys;
    mapping(uint256 roundId => Round) private _rounds;

    // ---------------------------------------------------------------- events

    /// @notice `participant` became a member under `name`; it may submit from round `sinceRound + 1`.
    event ParticipantRegistered(address indexed participant, string name, uint256 sinceRound);
    /// @notice `participant` stopped being a member; its past submissions and scores remain.
    event ParticipantRemoved(address indexed participant);
    /// @notice `participant` bound the X25519 public key `key` to itself (secure aggregation).
    event MemberKeySet(address indexed participant, bytes32 key);
    /// @notice The coordinator changed from `previousCoordinator` to `newCoordinator`.
    event CoordinatorChanged(address indexed previousCoordinator, address indexed newCoordinator);
    /// @notice `currentAdmin` offered the admin role to `pendingAdmin`.
    event AdminTransferStarted(address indexed currentAdmin, address indexed pendingAdmin);
    /// @notice The admin role moved from `previousAdmin` to `newAdmin`.
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    /// @notice Round `roundId` opened on `baseModel` for `eligible` members; shares close at
    /// `shareDeadline` (0 outside secure aggregation) and submissions at `deadline`.
    event RoundOpened(uint256 indexed roundId, bytes32 indexed baseModel, uint64 deadline, uint64 shareDeadline, uint256 eligible);
    /// @notice `participant` published its share bundle `bundle` for round `roundId` (secure aggregation).
    event SharesPublished(uint256 indexed roundId, address indexed participant, bytes32 bundle);
    /// @notice `participant` submitted `update` for round `roundId`; its previous submission is in
    /// block `previousBlock` (0 = none).
    event UpdateSubmitted(
        uint256 indexed roundId,
        address indexed participant,
        bytes32 indexed update,
        uint64 numSamples,
        uint32 epsilonMilli,
        uint256 previousBlock
    );
    /// @notice `participant` revealed the shares it holds for round `roundId` as `reveal` (secure aggregation).
    event SharesRevealed(uint256 indexed roundId, address indexed participant, bytes32 reveal);
    /// @notice Round `roundId` produced `globalModel`, described by `manifest`.
    event RoundFinalized(
        uint256 indexed roundId,
        bytes32 indexed globalModel,
        bytes32 manifest,
        uint256 submissionCount,
        uint256 scoredCount
    );
    /// @notice Round `roundId` closed without a global model; `by` aborted it.
    event RoundAborted(uint256 indexed roundId, uint256 submissionCount, address indexed by);
    /// @notice `participant` earned `score` for its update in round `roundId`.
    event ContributionScored(uint256 indexed roundId, address indexed participant, int32 score);
    /// @notice The admin moved the lineage's head from round `fromRound` back to round `toRound`
    /// (0 = genesis): the next round starts from `model`.
    event LineageRebased(uint256 indexed fromRound, uint256 indexed toRound, bytes32 model);

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
    /// @notice A descriptor digest of zero was given.
    error EmptyDescriptor();
    /// @notice A manifest digest of zero was given.
    error EmptyManifest();
    /// @notice A member key of zero was given.
    error EmptyKey(address participant);
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
    /// @notice The share deadline must be given exactly in secure-aggregation mode and lie
    /// between now and the submission deadline.
    error InvalidShareDeadline(uint64 shareDeadline, uint64 deadline, bool secureAggregation);
    /// @notice Submissions to round `roundId` closed at `deadline` or when every eligible member submitted.
    error SubmissionsClosed(uint256 roundId, uint64 deadline);
    /// @notice Submissions to round `roundId` are still open: `submitted` of `eligible` before `deadline`.
    error SubmissionsStillOpen(uint256 roundId, uint64 deadline, uint256 submitted, uint256 eligible);
    /// @notice `participant` registered after round `roundId` opened; it takes part from the next round.
    error NotEligible(uint256 roundId, address participant);
    /// @notice An update digest of zero was given for round `roundId`.
    error EmptyUpdate(uint256 roundId);
    /// @notice An update must be trained on at least one sample.
    error NoSamples(uint256 roundId);
    /// @notice `participant` already submitted `update` to round `roundId`.
    error AlreadySubmitted(uint256 roundId, address participant, bytes32 update);
    /// @notice Round `roundId` has `have` scored participants and needs `need` to finalize.
    error QuorumNotReached(uint256 have, uint256 need);
    /// @notice Round `roundId` reached the quorum (`submissions` of `quorum`): the coordinator
    /// cannot abort it before `abortableAt`.
    error QuorumReached(uint256 roundId, uint256 submissions, uint256 quorum, uint256 abortableAt);
    /// @notice `account` may abort round `roundId` only from `abortableAt` (its deadline plus the grace period).
    error GraceNotOver(uint256 roundId, address account, uint256 abortableAt);
    /// @notice `participants` and `scores` must have equal lengths.
    error LengthMismatch(uint256 participants, uint256 scores);
    /// @notice `participant` did not submit to round `roundId`, so it cannot be scored.
    error NotSubmitter(uint256 roundId, address participant);
    /// @notice `participant` appears more than once in round `roundId`'s scores.
    error AlreadyScored(uint256 roundId, address participant);
    /// @notice This federation does not use secure aggregation.
    error NotSecureAggregation();
    /// @notice The share phase of round `roundId` closed at `shareDeadline` or when every eligible member shared.
    error SharePhaseClosed(uint256 roundId, uint64 shareDeadline);
    /// @notice The share phase of round `roundId` is still open until `shareDeadline`.
    error SharePhaseOpen(uint256 roundId, uint64 shareDeadline);
    /// @notice `participant` already published shares (or revealed) in round `roundId`.
    error AlreadyPublished(uint256 roundId, address participant);
    /// @notice `participant` did not publish shares in round `roundId`, so it cannot submit a masked update.
    error NotSharer(uint256 roundId, address participant);
    /// @notice Round `roundId` is not a finalized round the lineage can be moved back to.
    error NotRebaseTarget(uint256 roundId);
    /// @notice The paginated view was asked for `limit` entries, more than `maxLimit`.
    error PageTooLarge(uint256 limit, uint256 maxLimit);

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
     * @param genesis Digest of the initial model every first round must start from.
     * @param descriptorDigest Digest of the federation descriptor (model spec, strategy, limits).
     * @param quorum Scored updates a round needs to be finalized (at least 1).
     * @param grace Seconds after a round's deadline from which any member may abort it.
     * @param secure Whether rounds run the secure-aggregation phases.
     */
    constructor(bytes32 genesis, bytes32 descriptorDigest, uint32 quorum, uint64 grace, bool secure) {
        if (genesis == bytes32(0)) revert EmptyModel();
        if (descriptorDigest == bytes32(0)) revert EmptyDescriptor();
        if (quorum == 0) revert InvalidMinUpdates(quorum);
        _genesisModel = genesis;
        _descriptor = descriptorDigest;
        _minUpdates = quorum;
        _abortGrace = grace;
        _secureAggregation = secure;
        _admin = msg.sender;
        emit AdminTransferred(address(0), msg.sender);
    }

    // ---------------------------------------------------------------- governance

    /**
     * @notice Appoints `newCoordinator`, who alone opens and finalizes rounds.
     * @dev Admin only.
     */
    function setCoordinator(address newCoordinator) external onlyAdmin {
        if (newCoordinator == address(0)) revert ZeroAddress();
        address previous = _coordinator;
        _coordinator = newCoordinator;
        emit CoordinatorChanged(previous, newCoordinator);
    }

    /**
     * @notice Makes `participant` a member under `name`, eligible from the next round to open; a
     * removed member may be registered again and keeps its history and totals.
     * @dev Admin only.
     */
    function registerParticipant(address participant, string calldata name) external onlyAdmin {
        if (participant == address(0)) revert ZeroAddress();
        if (bytes(name).length == 0) revert EmptyName(participant);
        Member storage member = _members[participant];
        if (member.active) revert AlreadyRegistered(participant);
        member.active = true;
        uint32 since = _currentRound;
        member.sinceRound = since;
        _active.push(participant);
        _activeIndex[participant] = _active.length;
        Latest storage latest = _latest[participant];
        if (!latest.initialized) {
            latest.initialized = true;
            latest.update = bytes32(uint256(1)); // non-zero placeholder: never read before a submission
        }
        _names[participant] = name;
        emit ParticipantRegistered(participant, name, since);
    }

    /**
     * @notice Ends `participant`'s membership; its submissions and scores stay on record.
     * @dev Admin only. A round already open still waits for its deadline if the member had not submitted.
     */
    function removeParticipant(address participant) external onlyAdmin {
        Member storage member = _members[participant];
        if (!member.active) revert NotParticipant(participant);
        member.active = false;
        uint256 position = _activeIndex[participant];
        uint256 last = _active.length;
        if (position != last) {
            address moved = _active[last - 1];
            _active[position - 1] = moved;
            _activeIndex[moved] = position;
        }
        _active.pop();
        delete _activeIndex[participant];
        emit ParticipantRemoved(participant);
    }

    /**
     * @notice Binds the caller's X25519 public key for secure aggregation (replacing an earlier one).
     * @dev Registered participants only.
     */
    function setMemberKey(bytes32 key) external {
        if (!_members[msg.sender].active) revert NotParticipant(msg.sender);
        if (key == bytes32(0)) revert EmptyKey(msg.sender);
        _memberKeys[msg.sender] = key;
        emit MemberKeySet(msg.sender, key);
    }

    /**
     * @notice Offers the admin role to `newAdmin`, who must call {acceptAdmin}. Replaces any
     * pending offer; the zero address cancels it.
     * @dev Admin only.
     */
    function transferAdmin(address newAdmin) external onlyAdmin {
        // The zero address is allowed: it cancels a pending offer (docs/ledger.md, static analysis).
        // slither-disable-next-line missing-zero-check
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

    /**
     * @notice Moves the lineage's head back to finalized round `roundId` (0 = genesis), the governed
     * way back from a bad global model: the next round starts from that round's model.
     * @dev Admin only; no round may be open; `roundId` must be on the current lineage (the head or one of its
     * ancestors, up to 1,024 rounds back), so a model once rebased away cannot be brought back this way.
     */
    function rebaseLineage(uint256 roundId) external onlyAdmin {
        uint32 current = _currentRound;
        if (current != 0 && _rounds[current].state == RoundState.Open) revert RoundStillOpen(current);
        uint32 head = _latestFinalizedRound;
        if (!_onLineage(head, roundId)) revert NotRebaseTarget(roundId);
        _latestFinalizedRound = uint32(roundId);
        emit LineageRebased(head, roundId, latestModel());
    }

    // ---------------------------------------------------------------- rounds

    /**
     * @notice Opens the next round on `baseModel`, which must be {latestModel}.
     * @dev Coordinator only; no other round may be open.
     * @param baseModel Digest of the model participants train from.
     * @param shareDeadline Unix time at which the share phase closes (secure aggregation), else 0.
     * @param deadline Unix time (seconds) at which submissions close; must be in the future.
     * @return roundId The new round's id; ids start at 1.
     */
    function openRound(bytes32 baseModel, uint64 shareDeadline, uint64 deadline)
        external
        onlyCoordinator
        returns (uint256 roundId)
    {
        uint32 current = _currentRound;
        if (current != 0 && _rounds[current].state == RoundState.Open) revert RoundStillOpen(current);
        bytes32 latest = latestModel();
        if (baseModel != latest) revert BaseModelMismatch(latest, baseModel);
        // Deadlines are minutes apart; a proposer's few seconds of clock skew cannot matter (docs/ledger.md).
        // slither-disable-next-line timestamp
        if (deadline <= block.timestamp) revert DeadlineNotInFuture(deadline, block.timestamp);
        if (_secureAggregation ? (shareDeadline <= block.timestamp || shareDeadline >= deadline) : shareDeadline != 0) {
            revert InvalidShareDeadline(shareDeadline, deadline, _secureAggregation);
        }

        uint32 next = current + 1;
        _currentRound = next;
        Round storage round = _rounds[next];
        // Non-zero placeholders: finalizing then overwrites written slots (5,000 gas each) rather than
        // fresh ones (22,100). Neither is read before the round is finalized.
        round.model = bytes32(uint256(1));
        round.manifest = bytes32(uint256(1));
        round.deadline = deadline;
        round.state = RoundState.Open;
        round.baseRound = _latestFinalizedRound;
        uint32 eligible = uint32(_active.length);
        round.eligible = eligible;
        round.openedBlock = uint40(block.number);
        if (_secureAggregation) round.shareDeadline = shareDeadline;
        roundId = next;
        emit RoundOpened(roundId, baseModel, deadline, shareDeadline, eligible);
    }

    /**
     * @notice Publishes the caller's share bundle (encrypted shares for every peer) for round `roundId`.
     * @dev Secure aggregation only; eligible members, once per round, while the share phase is open.
     */
    function publishShares(uint256 roundId, bytes32 bundle) external {
        if (!_secureAggregation) revert NotSecureAggregation();
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        Member storage member = _eligibleMember(roundId);
        if (_sharePhaseClosed(round)) revert SharePhaseClosed(roundId, round.shareDeadline);
        if (bundle == bytes32(0)) revert EmptyUpdate(roundId);
        if (member.lastShareRound == roundId) revert AlreadyPublished(roundId, msg.sender);
        member.lastShareRound = uint32(roundId);
        round.shareCount += 1;
        emit SharesPublished(roundId, msg.sender, bundle);
    }

    /**
     * @notice Records the caller's update for the open round `roundId`.
     * @dev Eligible participants only; once per participant per round; while submissions are open
     * (before the deadline, and until every eligible member has submitted). In secure-aggregation
     * mode only members that published shares may submit, once the share phase has closed.
     * @param roundId The open round.
     * @param update Digest of the encoded update (the member's commitment: its bytes reach the
     * store only once submissions close); not zero.
     * @param numSamples Number of local training samples behind the update; at least 1.
     * @param epsilonMilli Differential-privacy epsilon spent on this update, in thousandths
     * (0 = no differential privacy).
     */
    function submitUpdate(uint256 roundId, bytes32 update, uint64 numSamples, uint32 epsilonMilli) external {
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        Member storage member = _eligibleMember(roundId);
        if (_secureAggregation) {
            if (!_sharePhaseClosed(round)) revert SharePhaseOpen(roundId, round.shareDeadline);
            if (member.lastShareRound != roundId) revert NotSharer(roundId, msg.sender);
        }
        if (_submissionsClosed(round)) revert SubmissionsClosed(roundId, round.deadline);
        if (update == bytes32(0)) revert EmptyUpdate(roundId);
        if (numSamples == 0) revert NoSamples(roundId);
        Latest storage latest = _latest[msg.sender];
        if (latest.roundId == roundId) revert AlreadySubmitted(roundId, msg.sender, latest.update);

        uint256 previousBlock = latest.roundId == 0 ? 0 : latest.blockNumber;
        latest.update = update;
        // An open round's id never exceeds _currentRound, so it fits in uint32.
        latest.numSamples = numSamples;
        latest.epsilonMilli = epsilonMilli;
        latest.score = 0;
        latest.roundId = uint32(roundId);
        latest.blockNumber = uint40(block.number);
        latest.scored = false;
        round.submissionCount += 1;
        member.submissionCount += 1;
        member.totalEpsilonMilli += epsilonMilli;
        emit UpdateSubmitted(roundId, msg.sender, update, numSamples, epsilonMilli, previousBlock);
    }

    /**
     * @notice Publishes the shares the caller holds, needed to remove the masks of round `roundId`.
     * @dev Secure aggregation only; members that submitted to the round, once, after submissions close.
     */
    function revealShares(uint256 roundId, bytes32 reveal) external {
        if (!_secureAggregation) revert NotSecureAggregation();
        Member storage member = _members[msg.sender];
        Round storage round = _roundOrRevert(roundId);
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        if (_latest[msg.sender].roundId != roundId) revert NotSubmitter(roundId, msg.sender);
        if (!_submissionsClosed(round)) {
            revert SubmissionsStillOpen(roundId, round.deadline, round.submissionCount, _expected(round));
        }
        if (reveal == bytes32(0)) revert EmptyUpdate(roundId);
        if (member.lastRevealRound == roundId) revert AlreadyPublished(roundId, msg.sender);
        member.lastRevealRound = uint32(roundId);
        round.revealCount += 1;
        emit SharesRevealed(roundId, msg.sender, reveal);
    }

    /**
     * @notice Closes round `roundId` with its global model and manifest, and records the score of
     * every participant whose update went into the model. {latestModel} becomes `globalModel`.
     * @dev Coordinator only; the round must be open with its submissions closed, and at least
     * {minUpdates} participants scored. Every scored participant must have submitted to this
     * round, at most once in `participants`. Submitters left out were not aggregated (rejected
     * or flagged, as the manifest says) and stay unscored.
     * @param roundId The open round.
     * @param globalModel Digest of the aggregated model; not zero.
     * @param manifest Digest of the round manifest (accepted and rejected updates, reasons,
     * aggregation parameters); not zero.
     * @param aggregated The aggregated submitters, in any order.
     * @param scores Contribution score of each entry of `aggregated`.
     */
    function finalizeRound(
        uint256 roundId,
        bytes32 globalModel,
        bytes32 manifest,
        address[] calldata aggregated,
        int32[] calldata scores
    ) external onlyCoordinator {
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        if (!_submissionsClosed(round)) {
            revert SubmissionsStillOpen(roundId, round.deadline, round.submissionCount, _expected(round));
        }
        if (aggregated.length != scores.length) revert LengthMismatch(aggregated.length, scores.length);
        if (aggregated.length < _minUpdates) revert QuorumNotReached(aggregated.length, _minUpdates);
        if (globalModel == bytes32(0)) revert EmptyModel();
        if (manifest == bytes32(0)) revert EmptyManifest();

        for (uint256 i = 0; i < aggregated.length; ++i) {
            _recordScore(roundId, aggregated[i], scores[i]);
        }

        round.model = globalModel;
        round.manifest = manifest;
        round.state = RoundState.Finalized;
        round.closedBlock = uint40(block.number);
        _latestFinalizedRound = uint32(roundId);
        emit RoundFinalized(roundId, globalModel, manifest, round.submissionCount, aggregated.length);
    }

    /**
     * @notice Closes round `roundId` without a global model; {latestModel} is unchanged and the
     * next round starts from it again.
     * @dev The coordinator may abort once submissions have closed short of the quorum. From the
     * deadline plus the grace period on, the coordinator, the admin or any member may abort, so an
     * abandoned round never halts the federation.
     */
    function abortRound(uint256 roundId) external {
        Round storage round = _rounds[roundId];
        if (round.state != RoundState.Open) revert RoundNotOpen(roundId);
        uint256 abortableAt = uint256(round.deadline) + _abortGrace;
        // slither-disable-next-line timestamp
        if (block.timestamp < abortableAt) {
            if (msg.sender != _coordinator) revert GraceNotOver(roundId, msg.sender, abortableAt);
            if (!_submissionsClosed(round)) {
                revert SubmissionsStillOpen(roundId, round.deadline, round.submissionCount, _expected(round));
            }
            if (round.submissionCount >= _minUpdates) {
                revert QuorumReached(roundId, round.submissionCount, _minUpdates, abortableAt);
            }
        } else if (msg.sender != _coordinator && msg.sender != _admin && !_members[msg.sender].active) {
            revert NotParticipant(msg.sender);
        }
        round.state = RoundState.Aborted;
        round.closedBlock = uint40(block.number);
        emit RoundAborted(roundId, round.submissionCount, msg.sender);
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

    /// @notice The digest of the federation descriptor this ledger was deployed for.
    function descriptor() external view returns (bytes32) {
        return _descriptor;
    }

    /// @notice Whether rounds run the secure-aggregation phases.
    function secureAggregation() external view returns (bool) {
        return _secureAggregation;
    }

    /// @notice Seconds after a round's deadline from which any member may abort it.
    function abortGrace() external view returns (uint64) {
        return _abortGrace;
    }

    /// @notice The global model of the lineage's head (the latest finalized round, unless rebased), or the genesis model.
    function latestModel() public view returns (bytes32) {
        uint32 head = _latestFinalizedRound;
        return head == 0 ? _genesisModel : _rounds[head].model;
    }

    /// @notice The round at the lineage's head, or 0 for genesis.
    function latestFinalizedRound() external view returns (uint256) {
        return _latestFinalizedRound;
    }

    /// @notice The id of the most recently opened round (open or closed), or 0 when none.
    function currentRound() external view returns (uint256) {
        return _currentRound;
    }

    /// @notice Quorum: scored updates a round needs to be finalized.
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

    /// @notice `participant`'s X25519 public key for secure aggregation, or zero.
    function memberKey(address participant) external view returns (bytes32) {
        return _memberKeys[participant];
    }

    /// @notice The number of current participants.
    function participantCount() external view returns (uint256) {
        return _active.length;
    }

    /// @notice The current participants (order changes on removal); see {participantsPage} for large federations.
    function participants() external view returns (address[] memory) {
        return _active;
    }

    /// @notice At most `limit` (up to 1,000) current participants from position `offset`.
    function participantsPage(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        if (limit > 1000) revert PageTooLarge(limit, 1000);
        uint256 total = _active.length;
        uint256 end = offset >= total ? offset : (total - offset < limit ? total : offset + limit);
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) {
            page[i - offset] = _active[i];
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
     * @notice Round `roundId`'s phases.
     * @return baseRound The round whose model it started from (0 = genesis).
     * @return eligible Members registered before it opened.
     * @return shareDeadline When its share phase closes (0 outside secure aggregation).
     * @return shareCount Share bundles published.
     * @return revealCount Reveals published.
     * @return submissionsClosed Whether submissions have closed (deadline passed or every expected member submitted).
     * @return abortableAt From when anyone may abort it while it is open.
     */
    function roundPhases(uint256 roundId)
        external
        view
        returns (
            uint256 baseRound,
            uint256 eligible,
            uint64 shareDeadline,
            uint256 shareCount,
            uint256 revealCount,
            bool submissionsClosed,
            uint256 abortableAt
        )
    {
        Round storage round = _roundOrRevert(roundId);
        return (
            round.baseRound,
            round.eligible,
            round.shareDeadline,
            round.shareCount,
            round.revealCount,
            _submissionsClosed(round),
            uint256(round.deadline) + _abortGrace
        );
    }

    /**
     * @notice `participant`'s submission to round `roundId`, if it is its latest: all zero when it
     * did not submit to that round, or submitted to a later one since (the events keep the history).
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
        Latest storage latest = _latest[participant];
        if (latest.roundId == roundId && roundId != 0) {
            (update, numSamples, epsilonMilli, score, blockNumber, scored) = (
                latest.update,
                latest.numSamples,
                latest.epsilonMilli,
                latest.score,
                latest.blockNumber,
                latest.scored
            );
        }
    }

    /**
     * @notice Where `participant`'s submissions are recorded: how many, and the round and block of the latest.
     * @dev Each UpdateSubmitted event names the block of the one before, so the history is read back from here.
     */
    function submissionHistory(address participant)
        external
        view
        returns (uint256 count, uint256 lastRound, uint256 lastBlock)
    {
        Latest storage latest = _latest[participant];
        return (_members[participant].submissionCount, latest.roundId, latest.roundId == 0 ? 0 : latest.blockNumber);
    }

    /// @notice Sum of `participant`'s contribution scores over all rounds.
    function totalScore(address participant) external view returns (int64) {
        return _members[participant].totalScore;
    }

    /// @notice Sum of the differential-privacy epsilon `participant` spent, in thousandths.
    function totalEpsilonMilli(address participant) external view returns (uint64) {
        return _members[participant].totalEpsilonMilli;
    }

    // ---------------------------------------------------------------- internals

    function _eligibleMember(uint256 roundId) private view returns (Member storage member) {
        member = _members[msg.sender];
        if (!member.active) revert NotParticipant(msg.sender);
        if (member.sinceRound >= roundId) revert NotEligible(roundId, msg.sender);
    }

    /// The submissions the round waits for: every eligible member, or (secure aggregation) every sharer.
    function _expected(Round storage round) private view returns (uint256) {
        return _secureAggregation ? round.shareCount : round.eligible;
    }

    function _sharePhaseClosed(Round storage round) private view returns (bool) {
        // slither-disable-next-line timestamp
        return block.timestamp >= round.shareDeadline || round.shareCount >= round.eligible;
    }

    function _submissionsClosed(Round storage round) private view returns (bool) {
        // slither-disable-next-line timestamp
        if (block.timestamp >= round.deadline) return true;
        if (_secureAggregation && !_sharePhaseClosed(round)) return false;
        return round.submissionCount >= _expected(round);
    }

    function _recordScore(uint256 roundId, address participant, int32 score) private {
        Latest storage latest = _latest[participant];
        if (latest.roundId != roundId) revert NotSubmitter(roundId, participant);
        if (latest.scored) revert AlreadyScored(roundId, participant);
        latest.scored = true;
        latest.score = score;
        _members[participant].totalScore += score;
        emit ContributionScored(roundId, participant, score);
    }

    /// Whether `roundId` (0 = genesis) is `head` or one of its ancestors, at most 1,024 rounds back.
    function _onLineage(uint32 head, uint256 roundId) private view returns (bool) {
        if (roundId == 0) return true;
        uint32 step = head;
        for (uint256 i = 0; i <= 1024 && step >= roundId && step != 0; ++i) {
            // Round ids, not balances or times: slither taints all of _rounds by its block-number fields.
            // slither-disable-next-line incorrect-equality
            if (step == roundId) return true;
            step = _rounds[step].baseRound;
        }
        return false;
    }

    function _roundOrRevert(uint256 roundId) private view returns (Round storage round) {
        round = _rounds[roundId];
        if (round.state == RoundState.None) revert UnknownRound(roundId);
    }
}
