"""Shared chain fixtures: one real anvil per test session, a fresh ledger per test.

Every test that needs a chain uses ``anvil`` (session-wide, 20 funded dev accounts) and
deploys its own FederationLedger from the committed artifact (``deploy_ledger`` or the
ready-made ``federation``), so tests never see each other's state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from contracts.anvil import LocalAnvil
from contracts.client import Ledger

DEV_ACCOUNTS = 20


@pytest.fixture(scope="session")
def anvil() -> Iterator[LocalAnvil]:
    """A real anvil chain on a free 127.0.0.1 port for the whole session."""
    with LocalAnvil(accounts=DEV_ACCOUNTS) as chain:
        yield chain


@pytest.fixture(scope="session")
def accounts(anvil: LocalAnvil) -> list[LocalAccount]:
    """Funded dev accounts: [0] deploys (admin), [1] coordinates, [2:] take part."""
    return anvil.accounts


def random_digest() -> bytes:
    return os.urandom(32)


@pytest.fixture
def deploy_ledger(anvil: LocalAnvil, accounts: list[LocalAccount]) -> Callable[..., Ledger]:
    """``deploy_ledger(min_updates=1, genesis=None, admin=accounts[0])`` → a fresh ledger."""

    def deploy(min_updates: int = 1, genesis: bytes | None = None, admin: LocalAccount | None = None) -> Ledger:
        return Ledger.deploy(
            anvil.rpc_url,
            admin or accounts[0],
            genesis if genesis is not None else random_digest(),
            min_updates,
            expected_chain_id=anvil.chain_id,
        )

    return deploy


@dataclass
class Federation:
    """A deployed ledger with its coordinator appointed and participants registered."""

    chain: LocalAnvil
    admin: Ledger  # signs as accounts[0]
    coordinator: Ledger  # signs as accounts[1]
    participants: list[Ledger]  # each signs as its own participant

    @property
    def addresses(self) -> list[str]:
        return [p.account for p in self.participants]  # type: ignore[misc]

    def open_round(self, seconds: int = 3600) -> int:
        deadline = self.chain.block_timestamp() + seconds
        return self.coordinator.open_round(self.admin.latest_model(), deadline).round_id


@pytest.fixture
def make_federation(
    anvil: LocalAnvil, accounts: list[LocalAccount], deploy_ledger: Callable[..., Ledger]
) -> Callable[..., Federation]:
    """``make_federation(participants=3, min_updates=1)`` → a ready federation."""

    def make(participants: int = 3, min_updates: int = 1) -> Federation:
        if participants > len(accounts) - 2:
            raise ValueError(f"at most {len(accounts) - 2} participants on this chain")
        admin = deploy_ledger(min_updates=min_updates)
        admin.set_coordinator(accounts[1].address)
        members = []
        for i, account in enumerate(accounts[2 : 2 + participants]):
            admin.register_participant(account.address, f"org-{i}")
            members.append(admin.with_account(account))
        return Federation(anvil, admin, admin.with_account(accounts[1]), members)

    return make


@pytest.fixture
def federation(make_federation: Callable[..., Federation]) -> Federation:
    """Three registered participants, quorum of one."""
    return make_federation()


@pytest.fixture
def chain(tmp_path):  # noqa: ANN001, ANN201
    """An anvil chain of the test's own, for tests that stop, restart or rewind it."""
    with LocalAnvil(accounts=8) as c:
        yield c


@pytest.fixture
def env(tmp_path, chain):  # noqa: ANN001, ANN201
    """A small federation (three organisations, quorum two) on the test's own chain."""
    from tests.helpers.runtime import make_env

    return make_env(tmp_path, chain)
