"""The artifact's ABI as lookups: error selectors, event topics, and decoding a revert into its typed error."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from web3 import Web3
from web3.exceptions import Web3RPCError

from contracts import errors
from contracts.build import Artifact

PANIC_SELECTOR = bytes.fromhex("4e487b71")
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")


class Abi:
    """Selectors and topics of the artifact's errors and events."""

    def __init__(self, artifact: Artifact) -> None:
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.topics: dict[bytes, str] = {}
        for item in artifact.abi:
            if item["type"] == "error":
                types = [i["type"] for i in item["inputs"]]
                selector = Web3.keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[bytes(selector)] = (item["name"], [i["name"] for i in item["inputs"]], types)
            elif item["type"] == "event":
                types = ",".join(i["type"] for i in item["inputs"])
                topic = bytes(Web3.keccak(text=f"{item['name']}({types})"))
                self.events[item["name"]] = {**item, "topic": topic}
                self.topics[topic] = item["name"]

    def indexed_position(self, event: str, param: str) -> int | None:
        """Topic index (1-3) of an indexed parameter, or None."""
        position = 0
        for item in self.events[event]["inputs"]:
            if item["indexed"]:
                position += 1
                if item["name"] == param:
                    return position
        return None

    def decode_revert(self, function: str, data: bytes, tx_hash: str | None = None) -> errors.LedgerRevert:
        selector, body = data[:4], data[4:]
        if selector in self.errors:
            name, names, types = self.errors[selector]
            try:
                values = abi_decode(types, body)
            except DecodingError:
                return errors.UnknownRevert(function, {"data": "0x" + data.hex()}, tx_hash=tx_hash, error=name)
            args = {n: normalize(t, v) for n, t, v in zip(names, types, values, strict=True)}
            cls = errors.revert_classes().get(name, errors.UnknownRevert)
            return cls(function, args, tx_hash=tx_hash, error=name)
        if selector == PANIC_SELECTOR and len(body) == 32:
            code = int.from_bytes(body, "big")
            return errors.UnknownRevert(function, {"code": hex(code)}, tx_hash=tx_hash, error="Panic")
        if selector == ERROR_STRING_SELECTOR:
            try:
                (reason,) = abi_decode(["string"], body)
                return errors.UnknownRevert(function, {"reason": reason}, tx_hash=tx_hash, error="Error")
            except DecodingError:
                pass
        shown = "0x" + data.hex() if data else "no data"
        return errors.UnknownRevert(
            function,
            {"data": shown},
            tx_hash=tx_hash,
            error="Revert",
            hint="the call ran out of gas or hit code other than FederationLedger" if not data else None,
        )


def normalize(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return value


def topic_uint(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def topic_address(value: str) -> str:
    return "0x" + bytes.fromhex(value[2:]).rjust(32, b"\0").hex()


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data web3 attached to a failed call, if any."""
    data: Any = getattr(exc, "data", None)
    if data is None and isinstance(exc, Web3RPCError):
        response = exc.rpc_response or {}
        data = (response.get("error") or {}).get("data") if isinstance(response, dict) else None
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    if isinstance(data, bytes):
        return data
    return None
