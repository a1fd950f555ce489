"""Which global model scores the flows, checked against the chain, and the record of it.

:func:`resolve_model` takes a model only from what the ledger records: the latest
global model, the global model of a named finalised round, or a model CID that some
finalised round (or the genesis) published. It checks that the descriptor belongs to
the ledger (the genesis model the descriptor commits to is the chain's), fetches the
model by its on-chain digest (the store re-hashes every block; the root CID is checked
again here), and loads it against the descriptor's model spec. The :class:`Provenance`
it returns goes into every alert and every shared object, so a recipient can find the
round on chain and audit it (``fedledger audit round N``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from contracts.client import Ledger, RoundState
from federation.descriptor import Descriptor
from federation.model import ModelSpec, load_model_bytes
from fedledger.intel.errors import AuditRefused, ModelNotOnChain
from ipfs import ContentStore, cid_to_digest, content_cid, digest_to_cid

MAX_DESCRIPTOR_BYTES = 64 << 20


@dataclass(frozen=True)
class Provenance:
    """Where a model comes from: enough for anyone to find it on chain and audit its round."""

    chain_id: int
    ledger: str
    round: int  # 0 = the genesis model
    model: str  # CID of the global model
    descriptor: str  # CID of the federation descriptor
    federation: str  # the descriptor's name
    schema_id: str
    audited: bool = False  # the round's audit was run, and passed, by whoever scored or shares

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        return cls(
            chain_id=int(d["chain_id"]), ledger=str(d["ledger"]), round=int(d["round"]), model=str(d["model"]),
            descriptor=str(d["descriptor"]), federation=str(d["federation"]), schema_id=str(d["schema_id"]),
            audited=bool(d.get("audited", False)),
        )  # fmt: skip


def verify_command(prov: Provenance) -> str:
    """The command with which anyone holding a node of the chain and the federation's store
    audits the round that produced the model."""
    return (f"fedledger audit --rpc-url RPC_URL --chain-id {prov.chain_id} --ledger {prov.ledger} "
            f"--descriptor {prov.descriptor} --ipfs-api STORE round {prov.round}")  # fmt: skip


@dataclass(frozen=True)
class VerifiedModel:
    """A global model whose bytes match the chain, with the descriptor it belongs to."""

    spec: ModelSpec
    weights: dict[str, np.ndarray]
    descriptor: Descriptor
    provenance: Provenance


def resolve_model(
    ledger: Ledger,
    store: ContentStore,
    descriptor_cid: str,
    *,
    round_id: int | None = None,
    model_cid: str | None = None,
) -> VerifiedModel:
    """The global model the chain records (latest, of ``round_id``, or ``model_cid``), verified."""
    desc = _descriptor(ledger, store, descriptor_cid)
    round_no, digest = _on_chain(ledger, round_id, model_cid)
    cid = digest_to_cid(digest)
    limit = 8 + (1 << 20) + 4 * desc.spec.num_parameters()
    blob = _bounded_get(store, cid, limit, "global model")
    if content_cid(blob) != cid:
        raise ModelNotOnChain(
            f"the store returned content for {cid} whose CID is {content_cid(blob)}",
            hint="the store is corrupt or not the federation's: fetch the model from another node",
        )
    spec, weights = load_model_bytes(blob, desc.spec)
    prov = Provenance(
        chain_id=ledger.chain_id, ledger=ledger.address, round=round_no, model=cid, descriptor=descriptor_cid,
        federation=desc.name, schema_id=desc.spec.schema_id,
    )  # fmt: skip
    return VerifiedModel(spec, weights, desc, prov)


def require_audit(model: VerifiedModel, ledger: Ledger, store: ContentStore, *, fetch_timeout: float = 10.0) -> VerifiedModel:
    """Run the audit of the model's round; refuse the model unless it passes."""
    from fedledger.audit import Auditor  # the audit pulls in the whole round derivation

    prov = model.provenance
    auditor = Auditor(ledger, store, descriptor_cid=prov.descriptor, fetch_timeout=fetch_timeout)
    if prov.round == 0:
        problems = auditor.check_genesis()
    else:
        report = auditor.audit([prov.round])
        verdict = next((v for v in report.rounds if v.round_id == prov.round), None)
        problems = list(report.mismatches) + (verdict.mismatches if verdict else [f"round {prov.round} was not audited"])
        if verdict is not None and not verdict.ok and not verdict.mismatches:
            problems.append(f"round {prov.round} did not pass its audit")
    if problems:
        raise AuditRefused(
            f"the audit of round {prov.round} failed: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint=f"see `fedledger audit round {prov.round}`; do not act on this model's alerts",
        )
    return VerifiedModel(model.spec, model.weights, model.descriptor, Provenance(**{**prov.to_dict(), "audited": True}))


def _descriptor(ledger: Ledger, store: ContentStore, descriptor_cid: str) -> Descriptor:
    desc = Descriptor.from_bytes(_bounded_get(store, descriptor_cid, MAX_DESCRIPTOR_BYTES, "federation descriptor"))
    if desc.digest() != ledger.descriptor_digest():
        raise ModelNotOnChain(
            f"descriptor {descriptor_cid} does not belong to ledger {ledger.address}: the ledger was deployed for "
            f"descriptor {digest_to_cid(ledger.descriptor_digest())}",
            hint="pass the federation's own descriptor (--descriptor, or [federation] descriptor in its TOML)",
        )
    return desc


def _on_chain(ledger: Ledger, round_id: int | None, model_cid: str | None) -> tuple[int, bytes]:
    """(round, global-model digest) of the model asked for; 0 is the genesis model."""
    current = ledger.current_round()
    if round_id is not None:
        if round_id < 0 or round_id > current:
            raise ModelNotOnChain(
                f"round {round_id} does not exist on ledger {ledger.address} (it has rounds 1..{current})"
                if current else f"round {round_id} does not exist: ledger {ledger.address} has run no round yet",
                hint="omit --round for the latest global model, or pass --round 0 for the genesis model",
            )
        if round_id == 0:
            digest = ledger.genesis_model()
        else:
            info = ledger.get_round(round_id)
            if info.state != RoundState.FINALIZED or info.global_model is None:
                raise ModelNotOnChain(
                    f"round {round_id} is {info.state.name.lower()}, not finalised: it has no global model",
                    hint=f"the latest finalised round is {ledger.latest_finalized_round()}; omit --round for it",
                )
            digest = info.global_model
        if model_cid is not None and cid_to_digest(model_cid) != digest:
            raise ModelNotOnChain(
                f"model {model_cid} is not the global model of round {round_id} (that is {digest_to_cid(digest)})",
                hint="pass either --round or --model, or the two that belong together",
            )
        return round_id, digest
    if model_cid is not None:
        digest = cid_to_digest(model_cid)
        for r in range(current, 0, -1):
            info = ledger.get_round(r)
            if info.state == RoundState.FINALIZED and info.global_model == digest:
                return r, digest
        if digest == ledger.genesis_model():
            return 0, digest
        raise ModelNotOnChain(
            f"model {model_cid} is not a global model of ledger {ledger.address}: no finalised round published it",
            hint="score only with a model the chain records: omit --model for the latest one",
        )
    latest = ledger.latest_finalized_round()
    digest = ledger.latest_model()
    if latest and ledger.get_round(latest).global_model != digest:  # pragma: no cover - the contract keeps these equal
        raise ModelNotOnChain(f"the ledger's latest model is not round {latest}'s global model")
    return latest, digest


def _bounded_get(store: ContentStore, cid: str, limit: int, what: str) -> bytes:
    buf = bytearray()
    for piece in store.iter_bytes(cid):
        buf += piece
        if len(buf) > limit:
            raise ModelNotOnChain(f"the {what} {cid} is larger than {limit:,} bytes", hint="this is not the federation's content")
    return bytes(buf)
