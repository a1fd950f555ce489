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
    coordinator_key: LocalAccount | None = None

    ROUND_SECONDS = 60

    @property
    def ledger(self) -> Ledger:
        return self.fed.ledger

    def participant(self, i: int, **kw) -> ParticipantService:
        return ParticipantService(
            self.ledger.with_account(self.orgs[i]), self.store, self.fed.descriptor, self.data[i],
            state_dir=self.tmp / f"org{i}", descriptor_cid=self.fed.descriptor_cid, settings=kw.pop("settings", FAST), **kw,
        )  # fmt: skip

    @property
    def coordinator_ledger(self) -> Ledger:
        return self.ledger.with_account(self.coordinator_key)

    def coordinator(self, **kw) -> CoordinatorService:
        settings = kw.pop(
            "settings",
            CoordinatorSettings(round_seconds=self.ROUND_SECONDS, fetch_timeout=3.0, poll_seconds=0.2,
                                holdout_dir=self.fed.holdout_dir),
        )  # fmt: skip
        return CoordinatorService(self.coordinator_ledger, self.store, self.fed.descriptor_cid, settings=settings, **kw)

    def close_submissions(self, round_id: int) -> None:
        """Move the chain's clock past the round's deadline, unless every eligible member already submitted."""
        if not self.ledger.round_phases(round_id).submissions_closed:
            info = self.ledger.get_round(round_id)
            self.chain.increase_time(max(1, info.deadline - self.chain.block_timestamp() + 1))

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
    admin, coordinator_key, *orgs = chain.accounts[: participants + 2]
    train = generate(4000, 11)
    parts = partition(train.labels, participants, "dirichlet:1.0", 3, classes=train.classes)
    fed = create_federation(
        rpc_url=chain.rpc_url, admin=admin, store=store, name="test", validation=generate(1200, 12),
        coordinator=coordinator_key.address, hidden=(16,), min_updates=min_updates, seed=5,
        expected_chain_id=chain.chain_id, holdout_dir=tmp_path / "holdouts", reveal_seconds=3, abort_grace=120,
    )  # fmt: skip
    for i, acct in enumerate(orgs):
        fed.ledger.register_participant(acct.address, f"org-{i}")
    return Env(chain, store, store_dir, fed, list(orgs), [train.subset(p) for p in parts], tmp_path, coordinator_key)


def run_round(env: Env, members: list[int], coordinator: CoordinatorService | None = None, *, reveal: list[int] | None = None):
    """Open a round, let ``members`` commit, close submissions, let ``reveal`` (default: all of them) reveal, close it."""
    coord = coordinator or env.coordinator()
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    for i in members:
        assert env.participant(i).step() is not None
    env.close_submissions(round_id)
    for i in members if reveal is None else reveal:
        env.participant(i).step()  # submissions have closed: the member reveals its bytes
    return coord.close_round(round_id)


def manifest_of(env: Env, round_id: int) -> dict:
    info = env.ledger.get_round(round_id)
    return json.loads(env.store.get(digest_to_cid(info.manifest)))
