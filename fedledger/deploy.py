"""Creating a federation: descriptor, public validation set and genesis model in the store, ledger on chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from contracts.client import Ledger
from federation.descriptor import Descriptor
from federation.flowset import flowset_bytes
from federation.model import ModelSpec
from flows import FlowDataset
from ipfs import ContentStore, cid_to_digest


@dataclass(frozen=True)
class Federation:
    ledger: Ledger
    descriptor: Descriptor
    descriptor_cid: str
    genesis_cid: str
    validation_cid: str
    deploy_gas: int


def create_federation(
    *,
    rpc_url: str,
    admin: LocalAccount,
    store: ContentStore,
    name: str,
    validation: FlowDataset,
    hidden: tuple[int, ...] = (64, 32),
    strategy: str = "fedavg",
    strategy_params: dict[str, Any] | None = None,
    min_updates: int = 1,
    seed: int = 0,
    coordinator: str | None = None,
    expected_chain_id: int | None = None,
    normaliser: dict[str, Any] | None = None,
    scoring: str = "leave-one-out",
) -> Federation:
    """Put the federation's fixed content in the store and deploy its ledger.

    The ledger's genesis model is the one the descriptor commits to, so an auditor
    holding the descriptor can check the whole federation from round one.
    """
    from federation.rounds.scoring import ScoringRule

    spec = ModelSpec.for_dataset(validation, hidden=hidden)
    rule = ScoringRule.from_dict({"rule": scoring})  # validates the name before anything is deployed
    validation_cid = store.put(flowset_bytes(validation))
    store.pin(validation_cid)
    descriptor = Descriptor(
        name=name, spec=spec, validation=validation_cid, strategy=strategy,
        strategy_params=dict(strategy_params or {}), seed=seed, normaliser=normaliser, scoring=rule.to_dict(),
    )  # fmt: skip
    descriptor_cid = store.put(descriptor.to_bytes())
    store.pin(descriptor_cid)
    genesis_cid = store.put(descriptor.genesis_model())
    store.pin(genesis_cid)
    ledger = Ledger.deploy(rpc_url, admin, cid_to_digest(genesis_cid), min_updates, expected_chain_id=expected_chain_id)
    gas = ledger.deployment.gas_used if ledger.deployment else 0
    ledger.set_coordinator(coordinator or admin.address)
    return Federation(ledger, descriptor, descriptor_cid, genesis_cid, validation_cid, gas)
