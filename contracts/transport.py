"""Talking to the chain: the HTTP provider, typed RPC errors, and sending signed transactions.

Transactions are signed locally with eth-account keys and sent raw, so the same code runs
against anvil and any EVM JSON-RPC endpoint. Sending estimates gas first (a revert is
decoded before anything is signed or a nonce used), quotes fees (reused for a couple of
seconds), takes the next nonce from :mod:`contracts.nonces`, waits for the receipt and,
if the mined transaction reverted anyway, replays it to name the error.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import requests
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3RPCError,
)
from web3.providers.rpc import HTTPProvider

from contracts import errors
from contracts.abi import Abi, revert_data
from contracts.nonces import nonce_slot
from contracts.records import LedgerEvent, TxResult
from faults import remaining

DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_RECEIPT_TIMEOUT = 120.0
_FEE_QUOTE_TTL = 2.0  # seconds
_GAS_MARGIN = 1.2  # estimates can fall short when state changes between estimate and mining


class CountingProvider(HTTPProvider):
    """HTTPProvider that counts requests by method (the audit tests check query costs)."""

    def __init__(self, url: str, timeout: float) -> None:
        # No silent retries: an unreachable node should fail fast with its URL named.
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.timeout = timeout
        self.counts: Counter[str] = Counter()
        self.fee_quote: tuple[float, dict[str, int]] | None = None
        self._count_lock = threading.Lock()

    def get_request_kwargs(self) -> dict[str, Any]:  # type: ignore[override]
        # Each request waits at most what the caller's deadline leaves (faults.deadline).
        kwargs = dict(super().get_request_kwargs())
        kwargs["timeout"] = max(0.05, remaining(self.timeout))
        return kwargs

    def make_request(self, method: Any, params: Any) -> Any:
        with self._count_lock:
            self.counts[str(method)] += 1
        return super().make_request(method, params)


class Transport:
    """One endpoint and chain: maps failures to typed errors and sends signed transactions."""

    def __init__(
        self,
        w3: Web3,
        rpc_url: str,
        chain_id: int,
        abi: Abi,
        *,
        receipt_timeout: float,
        decode_events: Callable[[Any], tuple[LedgerEvent, ...]],
        sender: str | None = None,
    ) -> None:
        self.w3 = w3
        self.rpc_url = rpc_url
        self.chain_id = chain_id
        self.abi = abi
        self.receipt_timeout = receipt_timeout
        self.decode_events = decode_events
        self.sender = sender

    def block_number(self) -> int:
        with self.rpc("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    @contextmanager
    def rpc(self, function: str) -> Iterator[None]:
        """Turn web3/requests failures into the project's typed errors."""
        try:
            yield
        except errors.LedgerError:
            raise
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ProviderConnectionError) as exc:
            raise errors.RpcUnavailable(self.rpc_url, short(exc)) from None
        except ContractLogicError as exc:
            data = revert_data(exc)
            raise self.abi.decode_revert(function, data or b"") from None
        except Web3RPCError as exc:
            self._raise_rpc_error(function, exc)

    def _raise_rpc_error(self, function: str, exc: Web3RPCError) -> NoReturn:
        message = short(exc)
        data = revert_data(exc)
        if data:
            raise self.abi.decode_revert(function, data) from None
        if "insufficient funds" in message.lower():
            sender = self.sender or "the sender"
            balance = "unknown"
            try:
                balance = f"{self.w3.eth.get_balance(sender)} wei" if self.sender else balance
            except Exception:  # the balance is only decoration for the message
                pass
            raise errors.InsufficientFunds(
                f"{function}: account {sender} cannot pay for gas on chain {self.chain_id} (balance {balance})",
                hint="fund the account, or sign with a key that holds ether on this chain",
            ) from None
        raise errors.RpcError(f"{function}: the node at {self.rpc_url} answered with an error: {message}") from None

    def send(self, function: str, tx: dict[str, Any], signer: LocalAccount) -> TxResult:
        tx = {**tx, "from": signer.address, "value": 0, "chainId": self.chain_id}
        with self.rpc(function):
            # Reverts are caught here, decoded, before anything is signed or a nonce is used.
            estimate = int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
            tx["gas"] = int(estimate * _GAS_MARGIN) + 10_000
            tx.update(self._fees())
        slot = nonce_slot(self.rpc_url, self.chain_id, signer.address)
        with slot.lock:
            for attempt in (1, 2):
                with self.rpc(function):
                    if slot.next is None:
                        slot.next = int(self.w3.eth.get_transaction_count(signer.address, "pending"))
                signed = signer.sign_transaction({k: v for k, v in tx.items() if k != "from"} | {"nonce": slot.next})
                try:
                    with self.rpc(function):
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
        if isinstance(provider, CountingProvider):
            provider.fee_quote = (now, fees)
        return dict(fees)

    def _await(self, function: str, tx: dict[str, Any], tx_hash: str) -> TxResult:
        try:
            with self.rpc(function):
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
            events=self.decode_events(receipt) if function != "constructor" else (),
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
            data = revert_data(exc)
            if data:
                raise self.abi.decode_revert(function, data, tx_hash=tx_hash) from None
        raise errors.TransactionFailed(
            f"{function}: transaction {tx_hash} failed in block {receipt['blockNumber']} "
            f"(gas used {receipt['gasUsed']} of {tx.get('gas')})",
            hint="it may have run out of gas; retry, or raise the gas margin",
        )


def short(exc: BaseException) -> str:
    """What went wrong, in words: the socket's reason for a network failure (not urllib3's repr), else the text."""
    reason = network_reason(exc)
    if reason is not None:
        return reason
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def network_reason(exc: BaseException) -> str | None:
    """"connection refused", "host name not found", "timed out"…: the OS-level cause buried in requests/urllib3 wrappers."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 20:
        e = todo.pop(0)
        if any(e is seen for seen in chain):
            continue
        chain.append(e)
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args) if isinstance(x, BaseException)]
    for e in reversed(chain):  # the deepest cause says it best
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not found"
        if isinstance(e, TimeoutError):
            return "timed out"
        if isinstance(e, OSError) and type(e).__module__ == "builtins" and e.strerror:
            return e.strerror[0].lower() + e.strerror[1:]
    if any(isinstance(e, requests.exceptions.Timeout) for e in chain):
        return "timed out"
    return None


# The largest chain id the federation's documents hold exactly: manifests and share bundles are
# RFC 8785 JSON, whose numbers are doubles (EIP-2294 bounds chain ids lower still).
MAX_CHAIN_ID = 2**53 - 1


def connect(rpc_url: str, timeout: float, expected_chain_id: int | None) -> tuple[Web3, int]:
    if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
        raise errors.InvalidArgument(
            f"RPC URL must start with http:// or https://, got {rpc_url!r}",
            hint="e.g. http://127.0.0.1:8545",
        )
    w3 = Web3(CountingProvider(rpc_url, timeout))
    # The validation middleware asks the node for eth_chainId before every call; the chain id
    # is checked once here and signed into every transaction, so that round trip is dropped.
    # ENS lookups are dropped too: addresses are always given in hex.
    w3.middleware_onion.remove("validation")
    w3.middleware_onion.remove("ens_name_to_address")
    try:
        chain_id = int(w3.eth.chain_id)
    except (requests.exceptions.RequestException, ProviderConnectionError, OSError) as exc:
        raise errors.RpcUnavailable(rpc_url, short(exc)) from None
    except (Web3RPCError, ValueError) as exc:
        raise errors.RpcUnavailable(rpc_url, f"not an Ethereum JSON-RPC endpoint ({short(exc)})") from None
    if chain_id > MAX_CHAIN_ID:
        raise errors.AttachRefused(
            f"{rpc_url} serves chain {chain_id}, above 2^53-1: the federation's manifests (RFC 8785 JSON, "
            "whose numbers are doubles) cannot record it exactly",
            hint="run the federation on a chain whose id is at most 9007199254740991, as EIP-2294 asks of every chain",
        )
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise errors.AttachRefused(
            f"{rpc_url} serves chain {chain_id}, expected chain {expected_chain_id}",
            hint="point at the network the ledger lives on, or fix the expected chain id",
        )
    return w3, chain_id
