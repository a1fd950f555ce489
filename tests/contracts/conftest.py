"""Fixtures of the contract tests beyond the shared ones: a federation with any quorum, abort
grace and secure-aggregation mode, and helpers that move a round through its phases on the
chain clock (never by sleeping)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from eth_account.signers.local import LocalAccount

from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from contracts.nonces import forget_nonces
from tests.conftest import Federation


def digest() -> bytes:
    return os.urandom(32)


@pytest.fixture
def custom_federation(anvil: LocalAnvil, accounts: list[LocalAccount]) -> Callable[..., Federation]:
    """``custom_federation(participants=3, min_updates=1, abort_grace=3600, secure=False)``."""

    def make(participants: int = 3, min_updates: int = 1, abort_grace: int = 3600, secure: bool = False) -> Federation:
        admin = Ledger.deploy(
            anvil.rpc_url, accounts[0], digest(), min_updates, descriptor=digest(), abort_grace=abort_grace,
            secure_aggregation=secure, expected_chain_id=anvil.chain_id,
        )  # fmt: skip
        admin.set_coordinator(accounts[1].address)
        members = []
        for i, account in enumerate(accounts[2 : 2 + participants]):
            admin.register_participant(account.address, f"org-{i}")
            members.append(admin.with_account(account))
        return Federation(anvil, admin, admin.with_account(accounts[1]), members)

    return make


@pytest.fixture
def secure_federation(custom_federation: Callable[..., Federation]) -> Federation:
    """Three members in secure-aggregation mode, quorum of two."""
    return custom_federation(participants=3, min_updates=2, secure=True)


def open_secure_round(fed: Federation, share_seconds: int = 600, seconds: int = 3600) -> int:
    now = fed.chain.block_timestamp()
    return fed.coordinator.open_round(fed.admin.latest_model(), now + seconds, share_deadline=now + share_seconds).round_id


def pass_deadline(fed: Federation, round_id: int, extra: int = 0) -> None:
    """Move the chain clock to the round's deadline (plus ``extra`` seconds)."""
    deadline = fed.admin.get_round(round_id).deadline
    fed.chain.increase_time(max(1, deadline - fed.chain.block_timestamp() + extra))


def pass_share_deadline(fed: Federation, round_id: int) -> None:
    """Move the chain clock to the round's share deadline (secure aggregation)."""
    share_deadline = fed.admin.round_phases(round_id).share_deadline
    fed.chain.increase_time(max(1, share_deadline - fed.chain.block_timestamp()))


def pass_grace(fed: Federation, round_id: int) -> None:
    """Move the chain clock to the round's deadline plus the abort grace."""
    abortable_at = fed.admin.round_phases(round_id).abortable_at
    fed.chain.increase_time(max(1, abortable_at - fed.chain.block_timestamp()))


def two_rounds_in_one_block(fed: Federation, anvil: LocalAnvil) -> int:
    """In one block: the federation's only member submits to a new round (closing it), the
    coordinator finalises it and opens the next, and the member submits to that one too.
    Sent raw with fixed gas (the client estimates each call on the latest block, where the
    later calls would still revert). Returns the first round's id."""
    member, coordinator = fed.participants[0], fed.coordinator
    first = fed.open_round()
    model = os.urandom(32)
    calls = [
        (member, "submitUpdate", [first, os.urandom(32), 1, 0]),
        (coordinator, "finalizeRound", [first, model, os.urandom(32), [member.account], [1]]),
        (coordinator, "openRound", [model, 0, fed.chain.block_timestamp() + 3600]),
        (member, "submitUpdate", [first + 1, os.urandom(32), 1, 0]),
    ]
    keys = {a.address: a for a in anvil.accounts}
    nonces: dict[str, int] = {}
    hashes = []
    anvil.rpc("evm_setAutomine", [False])
    try:
        for handle, function, args in calls:
            sender = handle.account
            if sender not in nonces:
                nonces[sender] = int(anvil.rpc("eth_getTransactionCount", [sender, "pending"]), 16)
            tx = {"to": fed.admin.address, "data": handle.contract.encode_abi(function, args=args), "value": 0,
                  "chainId": anvil.chain_id, "gas": 500_000, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9,
                  "type": 2, "nonce": nonces[sender]}  # fmt: skip
            nonces[sender] += 1
            raw = keys[sender].sign_transaction(tx).raw_transaction
            hashes.append(anvil.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", [True])
        forget_nonces()  # the raw sends used nonces behind the client's back
    receipts = [anvil.rpc("eth_getTransactionReceipt", [h]) for h in hashes]
    assert [int(r["status"], 16) for r in receipts] == [1, 1, 1, 1]
    assert len({r["blockNumber"] for r in receipts}) == 1
    return first
