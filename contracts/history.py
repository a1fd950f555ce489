"""Audit queries over a FederationLedger: what the chain says, assembled per question.

Each query starts from the contract's views, which point at the exact blocks involved (a
member's latest submission, a round's opening and closing blocks), and then reads the events
there with topic filters on ``roundId`` / ``participant``; each UpdateSubmitted event names the
block of the member's previous submission. So the cost of a question about one participant
grows only with the rounds it took part in, and the cost of a question about one round only
with that round's blocks — never with the number of other rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.client import DEFAULT_LOG_PAGE, Ledger, as_address
from contracts.errors import LedgerError
from contracts.records import LedgerEvent, RoundInfo, RoundState


class LineageBroken(LedgerError):
    """A finalized round did not start from the previous finalized round's global model."""


@dataclass(frozen=True)
class SubmissionRecord:
    """One update as the audit trail records it."""

    round_id: int
    participant: str
    update: bytes
    num_samples: int
    epsilon_milli: int
    score: int | None  # None when the coordinator did not score it (e.g. rejected)
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class ParticipantHistory:
    participant: str
    name: str
    active: bool
    total_score: int
    total_epsilon_milli: int
    submissions: tuple[SubmissionRecord, ...]  # oldest round first


@dataclass(frozen=True)
class RoundRecord:
    info: RoundInfo
    submissions: tuple[SubmissionRecord, ...]  # in submission order
    opened_tx: str
    closed_tx: str | None  # None while open
    events: tuple[LedgerEvent, ...]


@dataclass(frozen=True)
class LineageStep:
    round_id: int
    base_model: bytes
    global_model: bytes
    manifest: bytes
    closed_block: int


@dataclass(frozen=True)
class Rebase:
    """The admin moved the lineage's head from one finalized round back to another."""

    from_round: int
    to_round: int  # 0 = genesis
    model: bytes
    block_number: int


@dataclass(frozen=True)
class Lineage:
    genesis_model: bytes
    steps: tuple[LineageStep, ...]  # the finalized rounds of the current lineage, oldest first
    rebases: tuple[Rebase, ...] = ()

    @property
    def latest_model(self) -> bytes:
        return self.steps[-1].global_model if self.steps else self.genesis_model


_ROUND_EVENTS = (
    "RoundOpened", "SharesPublished", "UpdateSubmitted", "SharesRevealed", "ContributionScored", "RoundFinalized",
    "RoundAborted",
)  # fmt: skip


def _record(event: LedgerEvent, score: int | None) -> SubmissionRecord:
    return SubmissionRecord(
        round_id=int(event.args["roundId"]),
        participant=event.args["participant"],
        update=bytes(event.args["update"]),
        num_samples=int(event.args["numSamples"]),
        epsilon_milli=int(event.args["epsilonMilli"]),
        score=score,
        block_number=event.block_number,
        tx_hash=event.tx_hash,
    )


def _pruned(what: str) -> LedgerError:
    return LedgerError(what, hint="the node may be pruning logs or still syncing; query an archive node")


def round_record(ledger: Ledger, round_id: int, *, page_size: int = DEFAULT_LOG_PAGE) -> RoundRecord:
    """Everything the chain holds about one round (raises ``UnknownRound`` for a bad id)."""
    info = ledger.get_round(round_id)
    to_block = info.closed_block if info.closed_block is not None else ledger.block_number()
    events = ledger.get_events(
        _ROUND_EVENTS, from_block=info.opened_block, to_block=to_block, round_id=round_id, page_size=page_size
    )
    scored = {e.args["participant"]: int(e.args["score"]) for e in events if e.name == "ContributionScored"}
    records = [_record(e, scored.get(e.args["participant"])) for e in events if e.name == "UpdateSubmitted"]
    opened = next((e for e in events if e.name == "RoundOpened"), None)
    if opened is None or len(records) != info.submission_count:
        raise _pruned(
            f"the node's logs for round {round_id} (blocks {info.opened_block}..{to_block}) hold {len(records)} "
            f"submissions, the contract counts {info.submission_count}"
        )
    closed = next((e for e in events if e.name in ("RoundFinalized", "RoundAborted")), None)
    return RoundRecord(
        info=info,
        submissions=tuple(records),
        opened_tx=opened.tx_hash,
        closed_tx=closed.tx_hash if closed else None,
        events=tuple(events),
    )


def participant_history(ledger: Ledger, participant: str, *, page_size: int = DEFAULT_LOG_PAGE) -> ParticipantHistory:
    """A participant's rounds, digests, samples, privacy spend and scores (walked back block by block)."""
    address = as_address(participant, "participant")
    latest: int | None = None
    records: list[SubmissionRecord] = []
    for event in ledger.submission_events(address):
        block = event.block_number
        round_id = int(event.args["roundId"])
        info = ledger.get_round(round_id)
        if info.closed_block is not None:
            to_block = info.closed_block
        else:
            latest = latest if latest is not None else ledger.block_number()
            to_block = latest
        scored = ledger.get_events(
            ("ContributionScored",), from_block=block, to_block=to_block, round_id=round_id, participant=address,
            page_size=page_size,
        )  # fmt: skip
        records.append(_record(event, int(scored[0].args["score"]) if scored else None))
    return ParticipantHistory(
        participant=address,
        name=ledger.participant_name(address),
        active=ledger.is_participant(address),
        total_score=ledger.total_score(address),
        total_epsilon_milli=ledger.total_epsilon_milli(address),
        submissions=tuple(records),
    )


def lineage(ledger: Ledger) -> Lineage:
    """The chain of global models from genesis to the lineage's head, checked link by link.

    Walks back from the head through each round's base round, so a rebase (the admin moving
    the head back to an earlier round) is followed: rounds left off the current lineage are
    not steps of it. The rebases themselves are in :attr:`Lineage.rebases`.
    """
    genesis = ledger.genesis_model()
    steps: list[LineageStep] = []
    head = ledger.latest_finalized_round()
    seen: set[int] = set()
    round_id = head
    while round_id:
        if round_id in seen:
            raise LineageBroken(f"round {round_id} appears twice in the lineage", hint="the node's answers are inconsistent")
        seen.add(round_id)
        info = ledger.get_round(round_id)
        if info.state is not RoundState.FINALIZED:
            raise LineageBroken(f"round {round_id} is on the lineage but is {info.state.name.lower()}")
        assert info.global_model is not None and info.manifest is not None and info.closed_block is not None
        steps.append(LineageStep(round_id, info.base_model, info.global_model, info.manifest, info.closed_block))
        round_id = ledger.round_phases(round_id).base_round
    steps.reverse()
    previous = genesis
    for step in steps:
        if step.base_model != previous:
            raise LineageBroken(
                f"round {step.round_id} started from 0x{step.base_model.hex()} but the previous global model "
                f"is 0x{previous.hex()}",
                hint="the ledger contract enforces this link; a mismatch means the node's answers are inconsistent",
            )
        previous = step.global_model
    latest = ledger.latest_model()
    if latest != previous:
        raise LineageBroken(f"latestModel() is 0x{latest.hex()} but the lineage ends at 0x{previous.hex()}")
    rebases = tuple(
        Rebase(int(e.args["fromRound"]), int(e.args["toRound"]), bytes(e.args["model"]), e.block_number)
        for e in ledger.get_events(("LineageRebased",))
    )
    return Lineage(genesis, tuple(steps), rebases)


def eligible_members(ledger: Ledger, round_id: int, *, page_size: int = DEFAULT_LOG_PAGE) -> list[str]:
    """The members the chain counted eligible when round ``round_id`` opened, replayed from the events.

    A member is eligible if it was active at the moment the round opened and registered before
    an earlier round (or none) had opened; the count is checked against the round's own record.
    """
    info = ledger.get_round(round_id)
    events = ledger.get_events(
        ("ParticipantRegistered", "ParticipantRemoved"), from_block=0, to_block=info.opened_block, page_size=page_size
    )
    opened = ledger.get_events(("RoundOpened",), from_block=info.opened_block, to_block=info.opened_block, round_id=round_id)
    if len(opened) != 1:
        raise _pruned(f"no RoundOpened log for round {round_id} in block {info.opened_block}")
    cut = (opened[0].block_number, opened[0].log_index)
    active: dict[str, int] = {}
    for e in events:
        if (e.block_number, e.log_index) > cut:
            break
        if e.name == "ParticipantRegistered":
            active[e.args["participant"]] = int(e.args["sinceRound"])
        else:
            active.pop(e.args["participant"], None)
    eligible = sorted(a for a, since in active.items() if since < round_id)
    expected = ledger.round_phases(round_id).eligible
    if len(eligible) != expected:
        raise _pruned(f"replaying the membership events gives {len(eligible)} members eligible for round {round_id}, the contract counts {expected}")
    return eligible


def secure_round_members(ledger: Ledger, round_id: int, *, page_size: int = DEFAULT_LOG_PAGE) -> dict[str, bytes]:
    """The members of secure-aggregation round ``round_id``: eligible when it opened, with an X25519 key bound
    before it opened (the latest such key of each), replayed from the chain's events."""
    eligible = set(eligible_members(ledger, round_id, page_size=page_size))
    info = ledger.get_round(round_id)
    opened = ledger.get_events(("RoundOpened",), from_block=info.opened_block, to_block=info.opened_block, round_id=round_id)
    cut = (opened[0].block_number, opened[0].log_index)
    keys: dict[str, bytes] = {}
    for e in ledger.get_events(("MemberKeySet",), from_block=0, to_block=info.opened_block, page_size=page_size):
        if (e.block_number, e.log_index) < cut and e.args["participant"] in eligible:
            keys[e.args["participant"]] = bytes(e.args["key"])
    return keys


def secure_round_bundles(ledger: Ledger, round_id: int, *, page_size: int = DEFAULT_LOG_PAGE) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(member -> digest of its share bundle, member -> digest of its reveal bundle) as round ``round_id``'s events say."""
    info = ledger.get_round(round_id)
    to_block = info.closed_block if info.closed_block is not None else ledger.block_number()
    shares: dict[str, bytes] = {}
    reveals: dict[str, bytes] = {}
    for e in ledger.get_events(("SharesPublished", "SharesRevealed"), from_block=info.opened_block, to_block=to_block,
                               round_id=round_id, page_size=page_size):  # fmt: skip
        target = shares if e.name == "SharesPublished" else reveals
        target.setdefault(e.args["participant"], bytes(e.args["bundle" if e.name == "SharesPublished" else "reveal"]))
    return shares, reveals


def submissions_closed_at(ledger: Ledger, round_id: int) -> int:
    """When round ``round_id`` stopped taking submissions: the block time of the submission that completed it
    (every member it waited for was in), else its deadline."""
    info = ledger.get_round(round_id)
    phases = ledger.round_phases(round_id)
    expected = phases.share_count if phases.share_deadline else phases.eligible
    subs = ledger.submissions(round_id)
    if expected and len(subs) >= expected:
        when = int(ledger.w3.eth.get_block(subs[expected - 1].block_number)["timestamp"])
        return min(when, info.deadline)
    return info.deadline
