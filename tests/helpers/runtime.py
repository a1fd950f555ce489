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
from ipfs import EmbeddedStore, cid_to_digest, digest_to_cid
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


def make_env(
    tmp_path: Path, chain: LocalAnvil, *, participants: int = 3, min_updates: int = 2, split: str = "dirichlet:1.0",
    **federation: object,
) -> Env:
    store_dir = tmp_path / "store"
    store = EmbeddedStore(store_dir)
    admin, coordinator_key, *orgs = chain.accounts[: participants + 2]
    train = generate(4000, 11)
    parts = partition(train.labels, participants, split, 3, classes=train.classes)
    options = dict(
        rpc_url=chain.rpc_url, admin=admin, store=store, name="test", validation=generate(1200, 12),
        coordinator=coordinator_key.address, hidden=(16,), min_updates=min_updates, seed=5,
        expected_chain_id=chain.chain_id, holdout_dir=tmp_path / "holdouts", reveal_seconds=3, abort_grace=120,
    )  # fmt: skip
    options.update(federation)
    fed = create_federation(**options)  # type: ignore[arg-type]
    for i, acct in enumerate(orgs):
        fed.ledger.register_participant(acct.address, f"org-{i}")
    return Env(chain, store, store_dir, fed, list(orgs), [train.subset(p) for p in parts], tmp_path, coordinator_key)


def delete_content(env: Env, cid: str) -> None:
    """Remove every block of ``cid`` from the store directory (a member with write access to it)."""
    from ipfs.reader import BlockRef, links_of

    root = BlockRef("dag-pb", cid_to_digest(cid))
    for ref in [*links_of(root, env.store.read_block(root)), root]:
        env.store._block_path(ref.multihash).unlink()


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


def trained_update(env: Env, i: int, round_id: int, *, sender: str | None = None, scale: float = 1.0, samples: int | None = None,
                   settings: TrainingSettings = FAST, **header: object) -> tuple[bytes, object]:
    """Member ``i``'s honest delta for the open round (trained as its service would with ``settings``), encoded
    under a header of the test's choosing (for attacks)."""
    from federation.model import load_model_bytes
    from federation.training import train_local
    from federation.updates import UpdateHeader, encode_update

    info = env.ledger.get_round(round_id)
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), env.fed.descriptor.spec)
    s = settings
    res = train_local(env.fed.descriptor.spec, base, env.data[i], epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=1,
                      class_weights=s.class_weights, absent_class_scale=s.absent_class_scale,  # type: ignore[arg-type]
                      logit_calibration=s.logit_calibration)  # fmt: skip
    delta = {k: (v * scale).astype("float32") for k, v in res.delta.items()}
    fields = dict(
        participant=sender or env.orgs[i].address, round_id=round_id, base_model=info.base_model.hex(),
        spec_digest=env.fed.descriptor.spec.digest(), num_samples=samples or res.num_samples,
        chain_id=env.ledger.chain_id, ledger=env.ledger.address,
    )  # fmt: skip
    fields.update(header)
    h = UpdateHeader(**fields)  # type: ignore[arg-type]
    return encode_update(h, delta, env.fed.descriptor.spec), h


def commit(env: Env, i: int, round_id: int, blob: bytes, num_samples: int, epsilon_milli: int = 0) -> str:
    """Member ``i`` commits to ``blob`` on chain without putting it in the store; returns its CID."""
    from ipfs import content_cid

    cid = content_cid(blob)
    env.ledger.with_account(env.orgs[i]).submit_update(round_id, cid_to_digest(cid), num_samples, epsilon_milli)
    return cid
