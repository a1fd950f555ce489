"""Plain, typed values the ledger client returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RoundState(enum.IntEnum):
    """Mirror of ``FederationLedger.RoundState``."""

    NONE = 0
    OPEN = 1
    FINALIZED = 2
    ABORTED = 3


@dataclass(frozen=True)
class RoundInfo:
    """``getRound``: one round's on-chain record."""

    round_id: int
    base_model: bytes
    global_model: bytes | None  # None unless finalized
    manifest: bytes | None  # None unless finalized
    deadline: int
    state: RoundState
    submission_count: int
    opened_block: int
    closed_block: int | None  # None while open


@dataclass(frozen=True)
class RoundPhases:
    """``roundPhases``: where a round stands in its phases."""

    round_id: int
    base_round: int  # the round whose global model it started from; 0 = genesis
    eligible: int  # members registered before it opened
    share_deadline: int  # 0 outside secure aggregation
    share_count: int
    reveal_count: int
    submissions_closed: bool
    abortable_at: int  # from this time on anyone may abort it while it is open


@dataclass(frozen=True)
class Submission:
    """``getSubmission``: one participant's update in one round."""

    round_id: int
    participant: str
    update: bytes
    num_samples: int
    epsilon_milli: int
    score: int | None  # None when the coordinator did not score it
    block_number: int


@dataclass(frozen=True)
class LedgerEvent:
    """One decoded contract event. ``args`` maps the Solidity parameter names to values
    (addresses checksummed, ``bytes32`` as ``bytes``)."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    function: str
    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[LedgerEvent, ...] = ()
    receipt: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RoundOpened(TxResult):
    """``openRound``'s result: the transaction plus the new round's id."""

    round_id: int = 0


@dataclass(frozen=True)
class Deployed(TxResult):
    """The deployment transaction plus the new contract's address."""

    address: str = ""
