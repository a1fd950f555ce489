"""Audit queries over a FederationLedger: what the chain says, assembled per question.

Each query starts from the contract's views, which point at the exact blocks involved (a
submission's block, a round's opening and closing blocks), and then reads the events there
with topic filters on ``roundId`` / ``participant``. So the cost of a question about one
participant grows only with the rounds it took part in, and the cost of a question about one
round only with that round's submissions — never with the number of other rounds.
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
class Lineage:
    genesis_model: bytes
    steps: tuple[LineageStep, ...]  # finalized rounds, oldest first

    @property
    def latest_model(self) -> bytes:
        return self.steps[-1].global_model if self.steps else self.genesis_model


_ROUND_EVENTS = ("RoundOpened", "UpdateSubmitted", "ContributionScored", "RoundFinalized", "RoundAborted")


def round_record(ledger: Ledger, round_id: int, *, page_size: int = DEFAULT_LOG_PAGE) -> RoundRecord:
    """Everything the chain holds about one round (raises ``UnknownRound`` for a bad id)."""
    info = ledger.get_round(round_id)
    to_block = info.closed_block if info.closed_block is not None else ledger.block_number()
    events = ledger.get_events(
        _ROUND_EVENTS, from_block=info.opened_block, to_block=to_block, round_id=round_id, page_size=page_size
    )
    submitted = {e.args["participant"]: e for e in events if e.name == "UpdateSubmitted"}
    scored = {e.args["participant"]: int(e.args["score"]) for e in events if e.name == "ContributionScored"}
    records = []
    for participant in ledger.submitters(round_id):
        event = submitted.get(participant)
        if event is None:
            raise LedgerError(
                f"no UpdateSubmitted log for {participant} in round {round_id} "
                f"(blocks {info.opened_block}..{to_block}), though the contract lists it",
                hint="the node may be pruning logs or still syncing; query an archive node",
            )
        records.append(
            SubmissionRecord(
                round_id=round_id,
                participant=participant,
                update=bytes(event.args["update"]),
                num_samples=int(event.args["numSamples"]),
                epsilon_milli=int(event.args["epsilonMilli"]),
                score=scored.get(participant),
                block_number=event.block_number,
                tx_hash=event.tx_hash,
            )
        )
    opened = next((e for e in events if e.name == "RoundOpened"), None)
    if opened is None or set(submitted) != {r.participant for r in records}:
        raise LedgerError(
            f"the node's logs for round {round_id} (blocks {info.opened_block}..{to_block}) do not match "
            "the contract's views",
            hint="the node may be pruning logs or still syncing; query an archive node",
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
    """A participant's rounds, digests, sample counts, privacy spend and scores."""
    address = as_address(participant, "participant")
    records = []
    latest: int | None = None
    for round_id in ledger.participant_rounds(address):
        submission = ledger.get_submission(round_id, address)
        if submission is None:  # cannot happen on a consistent node; say so rather than skip
            raise LedgerError(f"ledger lists round {round_id} for {address} but has no submission there")
        info = ledger.get_round(round_id)
        if info.closed_block is not None:
            to_block = info.closed_block
        else:
            latest = latest if latest is not None else ledger.block_number()
            to_block = latest
        events = ledger.get_events(
            ("UpdateSubmitted", "ContributionScored"),
            from_block=submission.block_number,
            to_block=to_block,
            round_id=round_id,
            participant=address,
            page_size=page_size,
        )
        submitted = next((e for e in events if e.name == "UpdateSubmitted"), None)
        if submitted is None:
            raise LedgerError(
                f"no UpdateSubmitted log for {address} in round {round_id} at block {submission.block_number}",
                hint="the node may be pruning logs or still syncing; query an archive node",
            )
        score = next((int(e.args["score"]) for e in events if e.name == "ContributionScored"), None)
        records.append(
            SubmissionRecord(
                round_id=round_id,
                participant=address,
                update=bytes(submitted.args["update"]),
                num_samples=int(submitted.args["numSamples"]),
                epsilon_milli=int(submitted.args["epsilonMilli"]),
                score=score,
                block_number=submitted.block_number,
                tx_hash=submitted.tx_hash,
            )
        )
    return ParticipantHistory(
        participant=address,
        name=ledger.participant_name(address),
        active=ledger.is_participant(address),
        total_score=ledger.total_score(address),
        total_epsilon_milli=ledger.total_epsilon_milli(address),
        submissions=tuple(records),
    )


def lineage(ledger: Ledger) -> Lineage:
    """The chain of global models from genesis to the latest, checked link by link."""
    genesis = ledger.genesis_model()
    steps: list[LineageStep] = []
    previous = genesis
    for round_id in range(1, ledger.current_round() + 1):
        info = ledger.get_round(round_id)
        if info.state is not RoundState.FINALIZED:
            continue
        assert info.global_model is not None and info.manifest is not None and info.closed_block is not None
        if info.base_model != previous:
            raise LineageBroken(
                f"round {round_id} started from 0x{info.base_model.hex()} but the previous global model "
                f"is 0x{previous.hex()}",
                hint="the ledger contract enforces this link; a mismatch means the node's answers are inconsistent",
            )
        steps.append(LineageStep(round_id, info.base_model, info.global_model, info.manifest, info.closed_block))
        previous = info.global_model
    latest = ledger.latest_model()
    if latest != previous:
        raise LineageBroken(f"latestModel() is 0x{latest.hex()} but the lineage ends at 0x{previous.hex()}")
    return Lineage(genesis, tuple(steps))
