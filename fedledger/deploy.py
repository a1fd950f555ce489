"""Creating a federation: descriptor, validation set, hold-outs and genesis model; the ledger on chain.

The ledger binds the descriptor's digest (so every member and auditor checks the descriptor
it holds against the chain) and the genesis model the descriptor commits to. The public
validation set goes into the store; the scoring hold-outs do not: only their CIDs are in the
descriptor, and their bytes go to the coordinator, which reveals one after each round closes,
so no member can train on the data its contribution is scored on.

The genesis model is seeded, or pretrained on a public flow set (``pretrain``: the set goes
into the store and the recipe into the descriptor, so the audit re-runs it), or the global
model of a parent federation (``parent``: :func:`parent_genesis` checks it on the parent's
chain, and its normaliser carries over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount

from contracts.client import DEFAULT_ABORT_GRACE, Ledger
from faults import FedLedgerError
from federation import recipe
from federation.descriptor import DEFAULT_TIMING, MAX_DESCRIPTOR_BYTES, Descriptor
from federation.flowset import flowset_bytes
from federation.genesis import ParentModel, Pretraining
from federation.model import ModelSpec
from flows import FlowDataset
from ipfs import ContentStore, cid_to_digest, content_cid, digest_to_cid

DEFAULT_HOLDOUTS = 5


class DeployError(FedLedgerError):
    """A federation that cannot be created as asked."""


@dataclass(frozen=True)
class Federation:
    ledger: Ledger
    descriptor: Descriptor
    descriptor_cid: str
    genesis_cid: str
    validation_cid: str
    deploy_gas: int
    holdout_cids: tuple[str, ...] = ()
    holdout_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def split_holdouts(pool: FlowDataset, holdouts: int, seed: int) -> tuple[FlowDataset, list[FlowDataset]]:
    """(public validation set, ``holdouts`` scoring hold-outs): ``holdouts + 1`` stratified, disjoint parts of ``pool``."""
    parts: list[list[int]] = [[] for _ in range(holdouts + 1)]
    rng = np.random.default_rng(seed)
    for label in np.unique(pool.labels):
        idx = rng.permutation(np.flatnonzero(pool.labels == label))
        for i, j in enumerate(idx):
            parts[i % len(parts)].append(int(j))
    subsets = [pool.subset(np.sort(np.asarray(p, dtype=np.int64))) for p in parts]
    return subsets[0], subsets[1:]


def create_federation(
    *,
    rpc_url: str,
    admin: LocalAccount,
    store: ContentStore,
    name: str,
    validation: FlowDataset,
    coordinator: str,
    hidden: tuple[int, ...] = (64, 32),
    strategy: str | None = None,
    strategy_params: dict[str, Any] | None = None,
    min_updates: int = 1,
    seed: int = 0,
    expected_chain_id: int | None = None,
    normaliser: dict[str, Any] | None = None,
    scoring: str = "leave-one-out",
    holdouts: int = DEFAULT_HOLDOUTS,
    holdout_dir: Path | None = None,
    privacy: dict[str, Any] | None = None,
    reveal_seconds: int = DEFAULT_TIMING["reveal_seconds"],
    abort_grace: int = DEFAULT_ABORT_GRACE,
    defences: dict[str, Any] | None = None,
    pretrain: FlowDataset | None = None,
    pretrain_recipe: dict[str, Any] | None = None,
    parent: ParentModel | None = None,
) -> Federation:
    """Put the federation's fixed content in the store, the hold-outs in ``holdout_dir``, and deploy its ledger.

    ``validation`` is the pool the public validation set and the hold-outs are drawn from
    (``holdouts=0``: all of it is public, and contributions are scored on public data).
    ``strategy`` None is the default recipe's (:mod:`federation.recipe`).
    ``pretrain`` is a public flow set the genesis is trained on (``pretrain_recipe``: the
    :class:`~federation.genesis.Pretraining` fields to change); ``parent`` a global model of
    another federation (from :func:`parent_genesis`) to start from instead.
    """
    from federation.rounds.defences import DefenceParams
    from federation.rounds.scoring import ScoringRule

    if holdouts < 0:
        raise DeployError(f"the number of hold-outs must be 0 or more, got {holdouts}")
    if holdouts and holdout_dir is None:
        raise DeployError("hold-outs need a directory to be written to", hint="pass --holdout-dir (kept by the coordinator)")
    spec = ModelSpec.for_dataset(validation, hidden=hidden)
    secure = (privacy or {}).get("mode") == "secure-aggregation"
    strategy = strategy or recipe.default_strategy((privacy or {}).get("mode"))
    if secure and scoring == "leave-one-out":
        scoring = "sample-share"  # no update is seen alone: scores come from the sample counts of the members in the sum
    if secure and defences:
        raise DeployError("secure aggregation reveals only the sum of the updates: the copy and free-rider defences cannot run")
    entry = ScoringRule.from_dict({"rule": scoring}).to_dict()  # validates the name before anything is deployed
    if defences:
        entry["defences"] = DefenceParams.from_dict(defences).to_dict()
    if pretrain is not None and parent is not None:
        raise DeployError("a genesis is either pretrained or a parent's model, not both")
    genesis: Pretraining | ParentModel | None = parent
    if pretrain is not None:
        import torch

        pretrain_cid = store.put(flowset_bytes(pretrain))
        store.pin(pretrain_cid)
        fields = {"seed": seed, **(pretrain_recipe or {})}
        genesis = Pretraining(dataset=pretrain_cid, torch=torch.__version__, **fields)
    public, shards = split_holdouts(validation, holdouts, seed) if holdouts else (validation, [])
    if len(public) == 0 or any(len(s) == 0 for s in shards):
        raise DeployError(f"a validation pool of {len(validation)} flows is too small for {holdouts} hold-outs")
    validation_cid = store.put(flowset_bytes(public))
    store.pin(validation_cid)
    holdout_cids = []
    for shard in shards:
        data = flowset_bytes(shard)
        cid = content_cid(data)
        assert holdout_dir is not None
        holdout_dir.mkdir(parents=True, exist_ok=True)
        (holdout_dir / cid).write_bytes(data)
        holdout_cids.append(cid)
    descriptor = Descriptor(
        name=name, spec=spec, validation=validation_cid, strategy=strategy,
        strategy_params=dict(strategy_params or {}), seed=seed, normaliser=normaliser, scoring=entry,
        privacy=privacy or {"mode": "public"}, holdouts=tuple(holdout_cids),
        timing={"reveal_seconds": int(reveal_seconds), "abort_grace": int(abort_grace)}, genesis=genesis,
    )  # fmt: skip
    descriptor_cid = store.put(descriptor.to_bytes())
    store.pin(descriptor_cid)
    genesis_cid = store.put(descriptor.genesis_model(store))
    store.pin(genesis_cid)
    ledger = Ledger.deploy(
        rpc_url, admin, cid_to_digest(genesis_cid), min_updates, descriptor=cid_to_digest(descriptor_cid),
        abort_grace=descriptor.abort_grace, secure_aggregation=descriptor.privacy_mode == "secure-aggregation",
        expected_chain_id=expected_chain_id,
    )  # fmt: skip
    gas = ledger.deployment.gas_used if ledger.deployment else 0
    ledger.set_coordinator(coordinator)
    return Federation(
        ledger, descriptor, descriptor_cid, genesis_cid, validation_cid, gas, tuple(holdout_cids), holdout_dir
    )


def parent_genesis(parent: Ledger, store: ContentStore, round_id: int | None = None) -> tuple[ParentModel, Descriptor]:
    """The genesis entry for starting from round ``round_id`` (default: the latest finalised) of ``parent``.

    Checks on the parent's chain that the round is finalised and what its global model is,
    and that the parent's descriptor (the one its ledger binds) is in ``store``; returns the
    entry and the parent's descriptor, whose model spec and normaliser the child must share.
    """
    latest = parent.latest_finalized_round()
    round_id = latest if round_id is None else round_id
    if round_id < 1 or round_id > parent.current_round():
        raise DeployError(
            f"ledger {parent.address} has no finalised round {round_id} to start from"
            + (f" (its latest finalised round is {latest})" if latest else " (it has finalised none)"),
            hint="pass --parent-round with a finalised round of the parent federation",
        )
    info = parent.get_round(round_id)
    if info.global_model is None:
        raise DeployError(f"round {round_id} of ledger {parent.address} is {info.state.name.lower()}: it has no global model")
    descriptor_cid = digest_to_cid(parent.descriptor_digest())
    desc = Descriptor.from_bytes(store.get(descriptor_cid, max_bytes=MAX_DESCRIPTOR_BYTES))
    model_cid = digest_to_cid(info.global_model)
    store.pin(model_cid)  # the child's genesis: keep it however the parent's store is pruned
    return ParentModel(parent.chain_id, parent.address, round_id, model_cid), desc
