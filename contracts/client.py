"""Typed Python client of the FederationLedger contract.

Transactions are signed locally with eth-account keys and sent raw, so the same code runs
against anvil and any EVM JSON-RPC endpoint (no node-unlocked accounts). Every contract
revert surfaces as the matching :mod:`contracts.errors` exception with the decoded
arguments; an unreachable node, a key without funds and a wrong contract or chain each get
their own typed error.

    ledger = Ledger.deploy(url, admin_key, genesis_digest, min_updates=2)
    ledger.set_coordinator(coordinator.address)
    coord = ledger.with_account(coordinator_key)
    round_id = coord.open_round(ledger.latest_model(), deadline).round_id
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted, Web3RPCError
from web3.providers.rpc import HTTPProvider

from contracts import errors
from contracts.build import Artifact, load_artifact
from contracts.records import Deployed, LedgerEvent, RoundInfo, RoundOpened, RoundState, Submission, TxResult

__all__ = [
    "Deployed",
    "Ledger",
    "LedgerEvent",
    "RoundInfo",
    "RoundOpened",
    "RoundState",
    "Submission",
    "TxResult",
    "as_account",
    "forget_nonces",
]

DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_RECEIPT_TIMEOUT = 120.0
DEFAULT_LOG_PAGE = 5_000  # blocks per eth_getLogs call; common public-node limits are 10k
_FEE_QUOTE_TTL = 2.0  # seconds
_GAS_MARGIN = 1.2  # estimates can fall short when state changes between estimate and mining

_PANIC_SELECTOR = bytes.fromhex("4e487b71")
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")

KeyLike = LocalAccount | str | bytes


# --------------------------------------------------------------------- value checks


def as_account(key: KeyLike) -> LocalAccount:
    """An eth-account signer from a signer or a hex/bytes private key (never echoed)."""
    if isinstance(key, LocalAccount):
        return key
    try:
        return Account.from_key(key)
    except Exception:  # eth-keys raises several types for a bad key
        # `from None`: the original error may quote the key, and keys are never shown.
        raise errors.InvalidKey(
            "the private key is not a valid secp256k1 key (expected 32 bytes as 0x-prefixed hex)",
            hint="check the key file or environment variable it came from",
        ) from None


def as_bytes32(value: bytes | str, what: str) -> bytes:
    """A 32-byte digest from bytes or hex text."""
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise errors.InvalidArgument(f"{what} is not hex: {value!r}") from None
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise errors.InvalidArgument(
            f"{what} must be a 32-byte digest, got {size} bytes",
            hint="pass the sha2-256 digest of the content's root block",
        )
    return bytes(value)


def as_address(value: str, what: str) -> str:
    if not isinstance(value, str) or not Web3.is_address(value):
        raise errors.InvalidArgument(f"{what} is not an Ethereum address: {value!r}")
    return Web3.to_checksum_address(value)


def as_uint(value: int, bits: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise errors.InvalidArgument(f"{what} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def as_int(value: int, bits: int, what: str) -> int:
    limit = 2 ** (bits - 1)
    if not isinstance(value, int) or isinstance(value, bool) or not -limit <= value < limit:
        raise errors.InvalidArgument(f"{what} must be an integer in [-2^{bits - 1}, 2^{bits - 1}), got {value!r}")
    return value


# --------------------------------------------------------------------- nonces


@dataclass
class _NonceSlot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next: int | None = None


_nonce_slots: dict[tuple[str, int, str], _NonceSlot] = {}
_nonce_slots_lock = threading.Lock()


def forget_nonces() -> None:
    """Drop every cached nonce, e.g. after rewinding a dev chain with ``evm_revert``."""
    with _nonce_slots_lock:
        for slot in _nonce_slots.values():
            with slot.lock:
                slot.next = None


def _nonce_slot(rpc_url: str, chain_id: int, address: str) -> _NonceSlot:
    """One nonce counter per (endpoint, chain, sender), shared by every Ledger in the process,
    so threads sending from one key never reuse or skip a nonce."""
    key = (rpc_url, chain_id, address)
    with _nonce_slots_lock:
        return _nonce_slots.setdefault(key, _NonceSlot())


# --------------------------------------------------------------------- provider


class _CountingProvider(HTTPProvider):
    """HTTPProvider that counts requests by method (the audit tests check query costs)."""

    def __init__(self, url: str, timeout: float) -> None:
        # No silent retries: an unreachable node should fail fast with its URL named.
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.counts: Counter[str] = Counter()
        self.fee_quote: tuple[float, dict[str, int]] | None = None
        self._count_lock = threading.Lock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._count_lock:
            self.counts[str(method)] += 1
        return super().make_request(method, params)


# --------------------------------------------------------------------- ABI helpers


class _Abi:
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
            args = {n: _normalize(t, v) for n, t, v in zip(names, types, values, strict=True)}
            cls = errors.revert_classes().get(name, errors.UnknownRevert)
            return cls(function, args, tx_hash=tx_hash, error=name)
        if selector == _PANIC_SELECTOR and len(body) == 32:
            code = int.from_bytes(body, "big")
            return errors.UnknownRevert(function, {"code": hex(code)}, tx_hash=tx_hash, error="Panic")
        if selector == _ERROR_STRING_SELECTOR:
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


def _normalize(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    return value


def _topic_uint(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _topic_address(value: str) -> str:
    return "0x" + bytes.fromhex(value[2:]).rjust(32, b"\0").hex()


def _revert_data(exc: BaseException) -> bytes | None:
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


# --------------------------------------------------------------------- the client


class Ledger:
    """A connection to one deployed FederationLedger, optionally with a signing key.

    Build one with :meth:`deploy` or :meth:`attach`; :meth:`with_account` gives the same
    connection with another signer. Methods named like the contract's functions (in
    snake_case) send a transaction and return a :class:`TxResult`; views return plain
    values or frozen dataclasses.
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        chain_id: int,
        rpc_url: str,
        account: LocalAccount | None,
        *,
        artifact: Artifact,
        receipt_timeout: float,
        deployment: Deployed | None = None,
    ) -> None:
        self.w3 = w3
        self.address = address
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self._account = account
        self._artifact = artifact
        self._abi = _Abi(artifact)
        self._contract = w3.eth.contract(address=address, abi=artifact.abi)
        self.receipt_timeout = receipt_timeout
        self.deployment = deployment

    # ------------------------------------------------------------------ construction

    @classmethod
    def deploy(
        cls,
        rpc_url: str,
        account: KeyLike,
        genesis_model: bytes | str,
        min_updates: int,
        *,
        expected_chain_id: int | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        artifact: Artifact | None = None,
    ) -> Ledger:
        """Deploy a new ledger from the committed artifact; the deploying key becomes admin."""
        artifact = artifact or load_artifact()
        signer = as_account(account)
        genesis = as_bytes32(genesis_model, "genesis_model")
        min_updates = as_uint(min_updates, 32, "min_updates")
        w3, chain_id = _connect(rpc_url, request_timeout, expected_chain_id)
        placeholder = cls(
            w3, "0x" + "00" * 20, chain_id, rpc_url, signer, artifact=artifact, receipt_timeout=receipt_timeout
        )
        data = artifact.bytecode + abi_encode(["bytes32", "uint32"], [genesis, min_updates]).hex()
        result = placeholder._send("constructor", {"data": data}, signer)
        address = Web3.to_checksum_address(result.receipt["contractAddress"])
        deployed = Deployed(
            function="constructor",
            tx_hash=result.tx_hash,
            block_number=result.block_number,
            gas_used=result.gas_used,
            events=(),
            receipt=result.receipt,
            address=address,
        )
        ledger = cls(
            w3, address, chain_id, rpc_url, signer,
            artifact=artifact, receipt_timeout=receipt_timeout, deployment=deployed,
        )
        object.__setattr__(deployed, "events", ledger._decode_receipt_events(result.receipt))
        return ledger

    @classmethod
    def attach(
        cls,
        rpc_url: str,
        address: str,
        account: KeyLike | None = None,
        *,
        expected_chain_id: int | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        artifact: Artifact | None = None,
    ) -> Ledger:
        """Connect to an existing ledger; refuses a contract whose runtime code is not this
        artifact's, and a chain other than ``expected_chain_id``."""
        artifact = artifact or load_artifact()
        signer = as_account(account) if account is not None else None
        try:
            checksum = as_address(address, "ledger address")
        except errors.InvalidArgument as exc:
            raise errors.AttachRefused(str(exc), hint="pass the address printed when the ledger was deployed") from None
        w3, chain_id = _connect(rpc_url, request_timeout, expected_chain_id)
        ledger = cls(w3, checksum, chain_id, rpc_url, signer, artifact=artifact, receipt_timeout=receipt_timeout)
        with ledger._rpc("eth_getCode"):
            code = bytes(w3.eth.get_code(checksum))
        expected = bytes.fromhex(artifact.deployed_bytecode[2:])
        if not code:
            raise errors.AttachRefused(
                f"no contract at {checksum} on chain {chain_id} ({rpc_url})",
                hint="check the address and that you are on the chain the ledger was deployed to",
            )
        if code != expected:
            raise errors.AttachRefused(
                f"the contract at {checksum} on chain {chain_id} is not the FederationLedger of this build "
                f"(runtime code is {len(code)} bytes, expected {len(expected)} bytes"
                f"{', same length but different bytes' if len(code) == len(expected) else ''})",
                hint="attach to a ledger deployed from contracts/build/FederationLedger.json, or deploy a new one",
            )
        return ledger

    def with_account(self, account: KeyLike | None) -> Ledger:
        """The same connection and contract with another signer (or read-only with None)."""
        return Ledger(
            self.w3, self.address, self.chain_id, self.rpc_url,
            as_account(account) if account is not None else None,
            artifact=self._artifact, receipt_timeout=self.receipt_timeout, deployment=self.deployment,
        )

    @property
    def account(self) -> str | None:
        """The signer's address (the key itself is never exposed by the client)."""
        return self._account.address if self._account is not None else None

    @property
    def contract(self) -> Any:
        """The underlying web3 contract (for batching views with ``w3.batch_requests()``)."""
        return self._contract

    @property
    def request_counts(self) -> Counter[str]:
        """JSON-RPC requests made through this connection, by method."""
        provider = self.w3.provider
        return provider.counts if isinstance(provider, _CountingProvider) else Counter()

    # ------------------------------------------------------------------ transactions

    def set_coordinator(self, coordinator: str) -> TxResult:
        return self._transact("setCoordinator", as_address(coordinator, "coordinator"))

    def register_participant(self, participant: str, name: str) -> TxResult:
        if not isinstance(name, str):
            raise errors.InvalidArgument(f"participant name must be text, got {type(name).__name__}")
        return self._transact("registerParticipant", as_address(participant, "participant"), name)

    def remove_participant(self, participant: str) -> TxResult:
        return self._transact("removeParticipant", as_address(participant, "participant"))

    def transfer_admin(self, new_admin: str) -> TxResult:
        return self._transact("transferAdmin", as_address(new_admin, "new admin"))

    def accept_admin(self) -> TxResult:
        return self._transact("acceptAdmin")

    def open_round(self, base_model: bytes | str, deadline: int) -> RoundOpened:
        """Open the next round; ``deadline`` is a Unix time in seconds (chain clock)."""
        result = self._transact("openRound", as_bytes32(base_model, "base_model"), as_uint(deadline, 64, "deadline"))
        opened = [e for e in result.events if e.name == "RoundOpened"]
        if len(opened) != 1:
            raise errors.TransactionFailed(f"openRound tx {result.tx_hash} emitted no RoundOpened event")
        return RoundOpened(**{**result.__dict__, "round_id": int(opened[0].args["roundId"])})

    def submit_update(self, round_id: int, update: bytes | str, num_samples: int, epsilon_milli: int) -> TxResult:
        return self._transact(
            "submitUpdate",
            as_uint(round_id, 256, "round_id"),
            as_bytes32(update, "update"),
            as_uint(num_samples, 64, "num_samples"),
            as_uint(epsilon_milli, 32, "epsilon_milli"),
        )

    def finalize_round(
        self,
        round_id: int,
        global_model: bytes | str,
        manifest: bytes | str,
        participants: Sequence[str],
        scores: Sequence[int],
    ) -> TxResult:
        return self._transact(
            "finalizeRound",
            as_uint(round_id, 256, "round_id"),
            as_bytes32(global_model, "global_model"),
            as_bytes32(manifest, "manifest"),
            [as_address(p, f"participants[{i}]") for i, p in enumerate(participants)],
            [as_int(s, 32, f"scores[{i}]") for i, s in enumerate(scores)],
        )

    def abort_round(self, round_id: int) -> TxResult:
        return self._transact("abortRound", as_uint(round_id, 256, "round_id"))

    # ------------------------------------------------------------------ views

    def admin(self) -> str:
        return str(self._call("admin"))

    def pending_admin(self) -> str | None:
        value = str(self._call("pendingAdmin"))
        return None if int(value, 16) == 0 else value

    def coordinator(self) -> str | None:
        value = str(self._call("coordinator"))
        return None if int(value, 16) == 0 else value

    def genesis_model(self) -> bytes:
        return bytes(self._call("genesisModel"))

    def latest_model(self) -> bytes:
        return bytes(self._call("latestModel"))

    def latest_finalized_round(self) -> int:
        return int(self._call("latestFinalizedRound"))

    def current_round(self) -> int:
        return int(self._call("currentRound"))

    def min_updates(self) -> int:
        return int(self._call("minUpdates"))

    def is_participant(self, account: str) -> bool:
        return bool(self._call("isParticipant", as_address(account, "account")))

    def participant_name(self, account: str) -> str:
        return str(self._call("participantName", as_address(account, "account")))

    def participants(self) -> list[str]:
        return [str(a) for a in self._call("participants")]

    def get_round(self, round_id: int) -> RoundInfo:
        base, global_model, manifest, deadline, state, count, opened, closed = self._call(
            "getRound", as_uint(round_id, 256, "round_id")
        )
        state = RoundState(state)
        finalized = state is RoundState.FINALIZED
        return RoundInfo(
            round_id=round_id,
            base_model=bytes(base),
            global_model=bytes(global_model) if finalized else None,
            manifest=bytes(manifest) if finalized else None,
            deadline=int(deadline),
            state=state,
            submission_count=int(count),
            opened_block=int(opened),
            closed_block=int(closed) if state is not RoundState.OPEN else None,
        )

    def get_submission(self, round_id: int, participant: str) -> Submission | None:
        """The participant's submission to the round, or None when it did not submit."""
        address = as_address(participant, "participant")
        update, samples, epsilon, score, block, scored = self._call(
            "getSubmission", as_uint(round_id, 256, "round_id"), address
        )
        if int.from_bytes(update, "big") == 0:
            return None
        return Submission(
            round_id=round_id,
            participant=address,
            update=bytes(update),
            num_samples=int(samples),
            epsilon_milli=int(epsilon),
            score=int(score) if scored else None,
            block_number=int(block),
        )

    def submitters(self, round_id: int) -> list[str]:
        return [str(a) for a in self._call("submitters", as_uint(round_id, 256, "round_id"))]

    def participant_rounds(self, participant: str) -> list[int]:
        return [int(r) for r in self._call("participantRounds", as_address(participant, "participant"))]

    def total_score(self, participant: str) -> int:
        return int(self._call("totalScore", as_address(participant, "participant")))

    def total_epsilon_milli(self, participant: str) -> int:
        return int(self._call("totalEpsilonMilli", as_address(participant, "participant")))

    def block_number(self) -> int:
        with self._rpc("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    # ------------------------------------------------------------------ events

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
        wanted = list(names) if names is not None else list(self._abi.events)
        unknown = [n for n in wanted if n not in self._abi.events]
        if unknown:
            raise errors.InvalidArgument(
                f"unknown event name(s) {unknown}; FederationLedger emits {sorted(self._abi.events)}"
            )
        if to_block is None:
            to_block = self.block_number()
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
                pos = self._abi.indexed_position(name, param)
                if pos is None:
                    skip = True
                    break
                topics[pos - 1] = (
                    _topic_uint(as_uint(value, 256, "round_id")) if param == "roundId"
                    else _topic_address(as_address(value, "participant"))  # type: ignore[arg-type]
                )
            if not skip:
                layouts.setdefault(tuple(topics), []).append(self._abi.events[name]["topic"])
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
        return [self._decode_log(log) for log in raw]

    def _paged_logs(self, topics: list[Any], start: int, end: int, page: int) -> list[Any]:
        page = max(1, int(page))
        out: list[Any] = []
        block = start
        while block <= end:
            last = min(block + page - 1, end)
            try:
                with self._rpc("eth_getLogs"):
                    logs = self.w3.eth.get_logs(
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

    def _decode_log(self, log: Any) -> LedgerEvent:
        name = self._abi.topics[bytes(log["topics"][0])]
        decoded = self._contract.events[name]().process_log(log)
        return LedgerEvent(
            name=name,
            args=dict(decoded["args"]),
            block_number=int(log["blockNumber"]),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            log_index=int(log["logIndex"]),
        )

    def _decode_receipt_events(self, receipt: Any) -> tuple[LedgerEvent, ...]:
        return tuple(
            self._decode_log(log)
            for log in receipt["logs"]
            if Web3.to_checksum_address(log["address"]) == self.address
            and log["topics"]
            and bytes(log["topics"][0]) in self._abi.topics
        )

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _rpc(self, function: str) -> Iterator[None]:
        """Turn web3/requests failures into the project's typed errors."""
        try:
            yield
        except errors.LedgerError:
            raise
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ProviderConnectionError) as exc:
            raise errors.RpcUnavailable(self.rpc_url, _short(exc)) from None
        except ContractLogicError as exc:
            data = _revert_data(exc)
            raise self._abi.decode_revert(function, data or b"") from None
        except Web3RPCError as exc:
            self._raise_rpc_error(function, exc)

    def _raise_rpc_error(self, function: str, exc: Web3RPCError) -> NoReturn:
        message = _short(exc)
        data = _revert_data(exc)
        if data:
            raise self._abi.decode_revert(function, data) from None
        if "insufficient funds" in message.lower():
            sender = self.account or "the sender"
            balance = "unknown"
            try:
                balance = f"{self.w3.eth.get_balance(sender)} wei" if self.account else balance
            except Exception:  # the balance is only decoration for the message
                pass
            raise errors.InsufficientFunds(
                f"{function}: account {sender} cannot pay for gas on chain {self.chain_id} (balance {balance})",
                hint="fund the account, or sign with a key that holds ether on this chain",
            ) from None
        raise errors.RpcError(f"{function}: the node at {self.rpc_url} answered with an error: {message}") from None

    def _call(self, function: str, *args: Any) -> Any:
        with self._rpc(function):
            return self._contract.functions[function](*args).call()

    def _require_account(self, function: str) -> LocalAccount:
        if self._account is None:
            raise errors.InvalidKey(
                f"{function} sends a transaction, but this ledger connection has no signing key",
                hint="attach with account=... or use ledger.with_account(key)",
            )
        return self._account

    def _transact(self, function: str, *args: Any) -> TxResult:
        signer = self._require_account(function)
        data = self._contract.encode_abi(function, args=list(args))
        return self._send(function, {"to": self.address, "data": data}, signer)

    def _send(self, function: str, tx: dict[str, Any], signer: LocalAccount) -> TxResult:
        tx = {**tx, "from": signer.address, "value": 0, "chainId": self.chain_id}
        with self._rpc(function):
            # Reverts are caught here, decoded, before anything is signed or a nonce is used.
            estimate = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            tx["gas"] = int(estimate * _GAS_MARGIN) + 10_000
            tx.update(self._fees())
        slot = _nonce_slot(self.rpc_url, self.chain_id, signer.address)
        with slot.lock:
            for attempt in (1, 2):
                with self._rpc(function):
                    if slot.next is None:
                        slot.next = int(self.w3.eth.get_transaction_count(signer.address, "pending"))
                signed = signer.sign_transaction({k: v for k, v in tx.items() if k != "from"} | {"nonce": slot.next})
                try:
                    with self._rpc(function):
                        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except errors.RpcError as exc:
                    slot.next = None  # resynchronise from the node on the next send
                    if attempt == 1 and "nonce" in str(exc).lower():
                        continue  # another process used this key: retry once with a fresh nonce
                    raise
                except BaseException:
                    slot.next = None
                    raise
                slot.next += 1
                break
        try:
            return self._await(function, tx, "0x" + bytes(tx_hash).hex())
        except errors.ReceiptTimeout:
            # The node may have queued it behind a nonce gap (a rewound or restarted chain):
            # ask the node again before the next send instead of trusting the counter.
            slot.next = None
            raise

    def _fees(self) -> dict[str, int]:
        # A quote is reused for a couple of seconds: maxFeePerGas allows for the base fee to
        # double, which takes many full blocks, and it saves two round trips per transaction.
        provider = self.w3.provider
        cached = getattr(provider, "fee_quote", None)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _FEE_QUOTE_TTL:
            return dict(cached[1])
        block = self.w3.eth.get_block("latest")
        base = block.get("baseFeePerGas")
        if base is None:  # pre-London chain
            fees = {"gasPrice": int(self.w3.eth.gas_price)}
        else:
            tip = int(self.w3.eth.max_priority_fee)
            fees = {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip, "type": 2}
        if isinstance(provider, _CountingProvider):
            provider.fee_quote = (now, fees)
        return dict(fees)

    def _await(self, function: str, tx: dict[str, Any], tx_hash: str) -> TxResult:
        try:
            with self._rpc(function):
                receipt = self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.receipt_timeout, poll_latency=0.05  # type: ignore[arg-type]
                )
        except TimeExhausted:
            raise errors.ReceiptTimeout(
                f"{function}: transaction {tx_hash} was not mined within {self.receipt_timeout:.0f}s",
                hint="the node may not be mining; check it and look the transaction up later",
            ) from None
        if receipt["status"] != 1:
            self._explain_failure(function, tx, receipt, tx_hash)
        return TxResult(
            function=function,
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=self._decode_receipt_events(receipt) if function != "constructor" else (),
            receipt=receipt,
        )

    def _explain_failure(self, function: str, tx: dict[str, Any], receipt: Any, tx_hash: str) -> NoReturn:
        """A mined transaction reverted (state changed after the estimate): replay it to get the error.

        The replay runs on the state after its block, which includes whatever transaction got
        in first (the usual cause: two senders racing for the same round or digest)."""
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(call, block_identifier=int(receipt["blockNumber"]))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            data = _revert_data(exc)
            if data:
                raise self._abi.decode_revert(function, data, tx_hash=tx_hash) from None
        raise errors.TransactionFailed(
            f"{function}: transaction {tx_hash} failed in block {receipt['blockNumber']} "
            f"(gas used {receipt['gasUsed']} of {tx.get('gas')})",
            hint="it may have run out of gas; retry, or raise the gas margin",
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _connect(rpc_url: str, timeout: float, expected_chain_id: int | None) -> tuple[Web3, int]:
    if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
        raise errors.InvalidArgument(
            f"RPC URL must start with http:// or https://, got {rpc_url!r}",
            hint="e.g. http://127.0.0.1:8545",
        )
    w3 = Web3(_CountingProvider(rpc_url, timeout))
    # The validation middleware asks the node for eth_chainId before every call; the chain id
    # is checked once here and signed into every transaction, so that round trip is dropped.
    # ENS lookups are dropped too: addresses are always given in hex.
    w3.middleware_onion.remove("validation")
    w3.middleware_onion.remove("ens_name_to_address")
    try:
        chain_id = int(w3.eth.chain_id)
    except (requests.exceptions.RequestException, ProviderConnectionError, OSError) as exc:
        raise errors.RpcUnavailable(rpc_url, _short(exc)) from None
    except (Web3RPCError, ValueError) as exc:
        raise errors.RpcUnavailable(rpc_url, f"not an Ethereum JSON-RPC endpoint ({_short(exc)})") from None
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise errors.AttachRefused(
            f"{rpc_url} serves chain {chain_id}, expected chain {expected_chain_id}",
            hint="point at the network the ledger lives on, or fix the expected chain id",
        )
    return w3, chain_id
