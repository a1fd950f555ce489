"""A small federation on its own anvil chain for the runtime tests: synthetic flows, three organisations.

Each test that uses it builds the federation on its own chain, so tests that stop or
restart the chain do not disturb anything else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from coordinator.service import CoordinatorService, CoordinatorSettings
from federation.flowset import flowset_bytes
from fedledger.deploy import Federation, create_federation
from flows.partition import partition
from flows.synthetic import generate
from ipfs import EmbeddedStore, digest_to_cid
from participant.service import ParticipantService
from participant.update import TrainingSettings

ROOT = Path(__file__).resolve().parents[2]
FAST = TrainingSettings(epochs=1, batch_size=256, lr=0.005, deadline_margin=0.5)


@dataclass
class Env:
    chain: LocalAnvil
    store: EmbeddedStore
    store_dir: Path
    fed: Federation
    orgs: list[LocalAccount]
    data: list
    tmp: Path

    @property
    def ledger(self) -> Ledger:
        return self.fed.ledger

    def participant(self, i: int, **kw) -> ParticipantService:
        return ParticipantService(
            self.ledger.with_account(self.orgs[i]), self.store, self.fed.descriptor, self.data[i],
            state_dir=self.tmp / f"org{i}", settings=kw.pop("settings", FAST), **kw,
        )  # fmt: skip

    def coordinator(self, **kw) -> CoordinatorService:
        settings = kw.pop("settings", CoordinatorSettings(round_seconds=60, fetch_timeout=3.0, poll_seconds=0.2))
        return CoordinatorService(self.ledger, self.store, self.fed.descriptor_cid, settings=settings, **kw)

    def flows_file(self, i: int) -> Path:
        p = self.tmp / f"org{i}.flowset"
        if not p.exists():
            p.write_bytes(flowset_bytes(self.data[i]))
        return p

    def cli_env(self, i: int | None) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if i is not None:
            env["FEDLEDGER_PRIVATE_KEY"] = self.orgs[i].key.hex()
        return env

    def common_args(self) -> list[str]:
        return [
            "--rpc-url", self.chain.rpc_url, "--ledger", self.ledger.address, "--chain-id", str(self.chain.chain_id),
            "--store", str(self.store_dir), "--descriptor", self.fed.descriptor_cid,
        ]  # fmt: skip


def make_env(tmp_path: Path, chain: LocalAnvil, *, participants: int = 3, min_updates: int = 2) -> Env:
    store_dir = tmp_path / "store"
    store = EmbeddedStore(store_dir)
    admin, *orgs = chain.accounts[: participants + 1]
    train = generate(4000, 11)
    parts = partition(train.labels, participants, "dirichlet:1.0", 3, classes=train.classes)
    fed = create_federation(
        rpc_url=chain.rpc_url, admin=admin, store=store, name="test", validation=generate(800, 12),
        hidden=(16,), min_updates=min_updates, seed=5, expected_chain_id=chain.chain_id,
    )  # fmt: skip
    for i, acct in enumerate(orgs):
        fed.ledger.register_participant(acct.address, f"org-{i}")
    return Env(chain, store, store_dir, fed, list(orgs), [train.subset(p) for p in parts], tmp_path)


def run_round(env: Env, members: list[int], coordinator: CoordinatorService | None = None):
    coord = coordinator or env.coordinator()
    assert coord.step(None) == "opened"
    for i in members:
        assert env.participant(i).step() is not None
    return coord.close_round(env.ledger.current_round())


def manifest_of(env: Env, round_id: int) -> dict:
    info = env.ledger.get_round(round_id)
    return json.loads(env.store.get(digest_to_cid(info.manifest)))
