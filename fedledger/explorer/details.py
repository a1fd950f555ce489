"""The reads a page makes on demand, each bounded in time (``faults.deadline``) and bytes.

A round's events and transactions, a member's history, an update's header, a model's or a
manifest's bytes: read when a page asks, remembered while they cannot change (a closed
round's record, a transaction's receipt), and every store read checked against the digest
the chain records before anything is shown or served.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from contracts.client import Ledger
from contracts.errors import InvalidArgument, UnknownRound
from contracts.history import (
    ParticipantHistory,
    RoundRecord,
    participant_history,
    round_record,
)
from faults import DeadlineExceeded, FedLedgerError, deadline
from federation.updates import read_header
from fedledger.explorer.errors import BadRequest, NotFound, NotVerified, Unavailable
from ipfs import (
    ContentNotFound,
    ContentStore,
    CorruptBlock,
    StoreError,
    content_cid,
    digest_to_cid,
)

T = TypeVar("T")
MEMO_ENTRIES = 512
MAX_MODEL_BYTES = 1 << 30  # a model file over a GiB is not one of this federation's MLPs


class _Memo:
    """A small LRU of values that cannot change once read."""

    def __init__(self, size: int = MEMO_ENTRIES) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


@contextmanager
def bounded(seconds: float, what: str) -> Iterator[None]:
    """Run a read under a deadline; the project's errors become the explorer's (with an HTTP status)."""
    try:
        with deadline(seconds):
            yield
    except (BadRequest, NotFound, NotVerified, Unavailable):
        raise
    except InvalidArgument as exc:
        raise BadRequest(str(exc)) from None
    except (UnknownRound, ContentNotFound) as exc:
        raise NotFound(f"{what}: {exc}") from None
    except CorruptBlock as exc:
        raise NotVerified(f"{what}: {exc}") from None
    except DeadlineExceeded as exc:
        raise Unavailable(f"{what}: {exc}") from None
    except FedLedgerError as exc:
        if type(exc).transient or isinstance(exc, StoreError):
            raise Unavailable(f"{what}: {exc}") from None
        raise


class ChainDetails:
    def __init__(self, ledger: Ledger, store: ContentStore, *, read_timeout: float = 10.0) -> None:
        self.ledger = ledger
        self.store = store
        self.read_timeout = read_timeout
        self._memo = _Memo()

    def round_record(self, round_id: int, key: str, closed: bool) -> RoundRecord:
        """The round's submissions with their transactions, and its decoded events."""
        def read() -> RoundRecord:
            with bounded(self.read_timeout, f"round {round_id}"):
                return round_record(self.ledger, round_id)

        return self._memo.get(("round", key), read) if closed else read()

    def gas_used(self, tx_hashes: list[str]) -> dict[str, int | None]:
        """gasUsed of each transaction from its receipt; None where the node does not say in time."""
        out: dict[str, int | None] = {}
        for tx in tx_hashes:
            out[tx] = self._memo.get(("gas", tx), lambda tx=tx: self._receipt_gas(tx))
        return out

    def _receipt_gas(self, tx: str) -> int | None:
        try:
            with deadline(min(self.read_timeout, 5.0)):
                return int(self.ledger.w3.eth.get_transaction_receipt(tx)["gasUsed"])
        except Exception:  # gas is decoration: a node without receipts still shows the round
            return None

    def history(self, address: str, version: int) -> ParticipantHistory:
        """A member's rounds, digests, samples, epsilon and on-chain scores (re-read when the federation moved on)."""
        def read() -> ParticipantHistory:
            with bounded(self.read_timeout, f"member {address}"):
                return participant_history(self.ledger, address)

        return self._memo.get(("history", address, version), read)

    def content(self, digest: bytes, what: str, *, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
        """The bytes behind an on-chain digest, re-hashed to the digest's CID before they are returned."""
        cid = digest_to_cid(digest)
        with bounded(self.read_timeout, what):
            chunks, size = [], 0
            for chunk in self.store.iter_bytes(cid):
                size += len(chunk)
                if size > max_bytes:
                    raise NotVerified(f"{what} {cid} is over {max_bytes} bytes; not served")
                chunks.append(bytes(chunk))
            data = b"".join(chunks)
        if content_cid(data) != cid:
            raise NotVerified(f"{what}: the store's bytes for {cid} hash to {content_cid(data)}; not served")
        return data

    def update_header(self, digest: bytes, max_bytes: int) -> dict[str, Any]:
        """The header an update's bytes carry (who, round, base, samples, codec, DP mechanism), verified."""
        def read() -> dict[str, Any]:
            data = self.content(digest, "update", max_bytes=max_bytes)
            try:
                return {"bytes": len(data), **asdict(read_header(data, max_bytes=max_bytes))}
            except FedLedgerError as exc:
                return {"bytes": len(data), "error": str(exc)}

        return self._memo.get(("header", digest), read)
