"""Reading the ledger's events: topic filters on indexed parameters, block ranges read in pages.

Public nodes refuse large ``eth_getLogs`` ranges, so ranges are read in pages of
``page_size`` blocks, halved when the node refuses one as too large.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3 import Web3

from contracts import errors
from contracts.abi import Abi, topic_address, topic_uint
from contracts.records import LedgerEvent
from contracts.transport import Transport
from contracts.values import as_address, as_uint

DEFAULT_LOG_PAGE = 5_000  # blocks per eth_getLogs call; common public-node limits are 10k


class EventLog:
    """The events of one deployed ledger, decoded."""

    def __init__(self, transport: Transport, contract: Any, address: str, abi: Abi) -> None:
        self.transport = transport
        self.contract = contract
        self.address = address
        self.abi = abi

    def get_events(
        self,
        names: Sequence[str] | None = None,
        *,
        from_block: int = 0,
        to_block: int | None = None,
        round_id: int | None = None,
        participant: str | None = None,
        page_size: int = DEFAULT_LOG_PAGE,
    ) -> list[LedgerEvent]:
        """Decoded events of this ledger, oldest first.

        ``round_id`` / ``participant`` filter on the indexed parameters, so the node returns
        only matching logs; events without such a parameter are skipped when filtering by it.
        Block ranges are read in pages of ``page_size`` blocks (halved when the node refuses
        a range as too large).
        """
        wanted = list(names) if names is not None else list(self.abi.events)
        unknown = [n for n in wanted if n not in self.abi.events]
        if unknown:
            raise errors.InvalidArgument(
                f"unknown event name(s) {unknown}; FederationLedger emits {sorted(self.abi.events)}"
            )
        if to_block is None:
            to_block = self.transport.block_number()
        if from_block > to_block:
            return []
        # Events put roundId/participant at different topic positions: one filter per layout.
        layouts: dict[tuple[str | None, ...], list[bytes]] = {}
        for name in wanted:
            topics: list[str | None] = [None, None, None]
            skip = False
            for param, value in (("roundId", round_id), ("participant", participant)):
                if value is None:
                    continue
                pos = self.abi.indexed_position(name, param)
                if pos is None:
                    skip = True
                    break
                topics[pos - 1] = (
                    topic_uint(as_uint(value, 256, "round_id")) if param == "roundId"
                    else topic_address(as_address(value, "participant"))  # type: ignore[arg-type]
                )
            if not skip:
                layouts.setdefault(tuple(topics), []).append(self.abi.events[name]["topic"])
        raw: list[Any] = []
        for topics, topic0s in layouts.items():
            filter_topics: list[Any] = ["0x" + t.hex() for t in topic0s] if len(topic0s) > 1 else ["0x" + topic0s[0].hex()]
            if len(topic0s) > 1:
                filter_topics = [filter_topics]
            rest = list(topics)
            while rest and rest[-1] is None:
                rest.pop()
            raw.extend(self._paged_logs(filter_topics + rest, from_block, to_block, page_size))
        raw.sort(key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        return [self.decode_log(log) for log in raw]

    def _paged_logs(self, topics: list[Any], start: int, end: int, page: int) -> list[Any]:
        page = max(1, int(page))
        out: list[Any] = []
        block = start
        while block <= end:
            last = min(block + page - 1, end)
            try:
                with self.transport.rpc("eth_getLogs"):
                    logs = self.transport.w3.eth.get_logs(
                        {"address": self.address, "fromBlock": block, "toBlock": last, "topics": topics}
                    )
            except errors.RpcError as exc:
                text = str(exc).lower()
                if page > 1 and any(w in text for w in ("range", "limit", "too many", "exceed")):
                    page //= 2
                    continue
                raise
            out.extend(logs)
            block = last + 1
        return out

    def decode_log(self, log: Any) -> LedgerEvent:
        name = self.abi.topics[bytes(log["topics"][0])]
        decoded = self.contract.events[name]().process_log(log)
        return LedgerEvent(
            name=name,
            args=dict(decoded["args"]),
            block_number=int(log["blockNumber"]),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            log_index=int(log["logIndex"]),
        )

    def decode_receipt(self, receipt: Any) -> tuple[LedgerEvent, ...]:
        return tuple(
            self.decode_log(log)
            for log in receipt["logs"]
            if Web3.to_checksum_address(log["address"]) == self.address
            and log["topics"]
            and bytes(log["topics"][0]) in self.abi.topics
        )
