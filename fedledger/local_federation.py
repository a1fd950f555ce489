"""A federation in one process, without chain or store, for the simulation, benchmarks and the attack harness.

Everything but the transport is real: the descriptor, the update bytes members
produce (:func:`participant.update.produce_update`), their on-chain digests (the CID
the store would give), and the round derivation the coordinator and the audit run
(:func:`federation.rounds.derive.derive_round`), so the flags and scores a simulation
reports are the ones a real round would record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from federation.descriptor import Descriptor
from federation.flowset import flowset_bytes
from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model
from federation.rounds.defences import DefenceParams
from federation.rounds.derive import RoundInputs, RoundResult, derive_round
from federation.rounds.scoring import ScoringRule
from federation.rounds.secure import SecureInputs
from federation.rounds.validation import SubmissionInput
from federation.secagg import (
    RoundSecrets,
    SecureParams,
    SecureRound,
    check_bundle,
    deal,
    encode_masked,
    mask_vector,
    quantise_update,
    reveal,
)
from federation.updates import NO_LEDGER, UpdateHeader
from flows import FlowDataset
from ipfs import cid_to_digest, content_cid


def simulated_address(index: int, seed: int) -> str:
    """A stable, made-up address for simulated organisation ``index`` (no key behind it)."""
    return to_checksum_address("0x" + hashlib.sha256(f"fedledger-sim/{seed}/{index}".encode()).hexdigest()[:40])


def digest_of(blob: bytes) -> bytes:
    """The 32-byte digest the chain would record for ``blob`` (its root block's sha2-256)."""
    return cid_to_digest(content_cid(blob))


@dataclass
class LocalFederation:
    """The federation's fixed content and its running global model, kept in memory."""

    descriptor: Descriptor
    descriptor_cid: str
    validation: FlowDataset
    weights: dict[str, np.ndarray]
    state: bytes | None = None
    round_id: int = 0
    history: list[RoundResult] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        spec: ModelSpec,
        validation: FlowDataset,
        strategy: str = "fedavg",
        strategy_params: Mapping[str, Any] | None = None,
        scoring: ScoringRule | None = None,
        defences: DefenceParams | None = None,
        seed: int = 0,
        name: str = "simulation",
        privacy: Mapping[str, Any] | None = None,
        initial: Mapping[str, np.ndarray] | None = None,
    ) -> LocalFederation:
        """``seed`` draws the initial weights (as the simulation always has), not the descriptor's genesis;
        ``initial`` replaces them (a pretrained genesis)."""
        rule = scoring or ScoringRule()
        entry: dict[str, Any] = rule.to_dict()
        if defences is not None and defences != DefenceParams():
            entry["defences"] = defences.to_dict()
        desc = Descriptor(
            name=name, spec=spec, validation=content_cid(flowset_bytes(validation)), strategy=strategy,
            strategy_params=dict(strategy_params or {}), scoring=entry, seed=seed, privacy=dict(privacy or {"mode": "public"}),
        )  # fmt: skip
        weights = dict(initial) if initial is not None else init_model(spec, seed)
        return cls(desc, content_cid(desc.to_bytes()), validation, weights)

    @property
    def spec(self) -> ModelSpec:
        return self.descriptor.spec

    def base_model(self) -> tuple[bytes, bytes]:
        """(canonical bytes, on-chain digest) of the current global model, the next round's base."""
        data = save_model_bytes(self.spec, self.weights)
        return data, digest_of(data)

    def run_round(
        self,
        submissions: Sequence[tuple[str, bytes]],
        *,
        absent: Sequence[str] = (),
        score_contributions: bool = True,
        secure: SecureInputs | None = None,
    ) -> RoundResult:
        """Derive the next round from ``(participant, update bytes)`` in on-chain order; the model moves on.

        ``secure``: a secure-aggregation round's members and bundles (:class:`SecureCohort`).
        """
        from federation.updates import read_header

        self.round_id += 1
        base, _ = self.base_model()
        subs = []
        for address, blob in submissions:
            header = read_header(blob)  # the chain would record what the member claimed
            subs.append(SubmissionInput(address, digest_of(blob), header.num_samples, header.epsilon_milli, blob))
        previous = self.history[-1].aggregated_updates if self.history else []
        result = derive_round(
            RoundInputs(
                round_id=self.round_id, descriptor_cid=self.descriptor_cid, descriptor=self.descriptor, base_model=base,
                base_weights=self.weights, state_in=self.state, submissions=subs,
                eligible=[a for a, _ in submissions] + list(absent), validation=self.validation,
                base_round=self.round_id - 1, previous=previous, score_contributions=score_contributions, secure=secure,
            )
        )  # fmt: skip
        if len(self.history) >= 2:
            self.history[-2].accepted.clear()  # only the previous round's updates are ever compared with
        self.weights, self.state = result.weights, result.state_out
        self.history.append(result)
        return result


def members_of(result: RoundResult, planted: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """Per submitter: its planted attack, whether it was aggregated, its score and flags (simulation JSON)."""
    return [
        {"address": e["participant"], "attack": planted.get(e["participant"]),
         "accepted": e["status"] == "accepted" and e.get("aggregated", True),
         "score": e["score"], "flags": e.get("flags", [])}
        for e in result.manifest["submissions"]
    ]  # fmt: skip


def simulated_account(index: int, seed: int) -> LocalAccount:
    """A stable key for simulated organisation ``index``: secure aggregation signs its shares."""
    return Account.from_key(hashlib.sha256(f"fedledger-sim-key/{seed}/{index}".encode()).digest())


class SecureCohort:
    """Simulated members running the real secure-aggregation protocol in one process (no chain, no store).

    Every member deals, masks and reveals exactly as :mod:`participant.secure` does; the round
    is then derived by :func:`federation.rounds.derive.derive_round` from what the chain and
    the store would hold, so the simulated model is the one a real secure round would produce.
    """

    def __init__(self, accounts: Sequence[LocalAccount], params: SecureParams, *, chain_id: int = 0, ledger: str = NO_LEDGER):
        self.accounts = {a.address: a for a in accounts}
        self.keys = {a: X25519PrivateKey.generate() for a in self.accounts}
        self.params, self.chain_id, self.ledger = params, chain_id, ledger

    def round(self, round_id: int) -> SecureRound:
        members = {a: k.public_key().public_bytes_raw() for a, k in self.keys.items()}
        return SecureRound(self.chain_id, self.ledger, round_id, self.params, members)

    def run(self, round_id: int, base_digest: bytes, spec: ModelSpec, trained: Mapping[str, Any]) -> tuple[list[SubmissionInput], SecureInputs]:
        """``trained``: member -> participant.update.Trained (members missing from it drop after sharing)."""
        rnd = self.round(round_id)
        secrets = {a: RoundSecrets.fresh() for a in rnd.members}

        def signer(who: str):  # noqa: ANN202
            return lambda d: bytes(self.accounts[who].sign_message(encode_defunct(primitive=d)).signature)

        raw = {a: deal(rnd, a, secrets[a], self.keys[a], signer(a)).to_bytes() for a in rnd.members}
        peers = {a: check_bundle(rnd, a, b) for a, b in raw.items()}
        subs = []
        for a in rnd.members:
            if a not in trained:
                continue
            t = trained[a]
            masked = mask_vector(rnd, a, secrets[a], quantise_update(t.delta, spec, t.num_samples, self.params), peers)
            header = UpdateHeader(participant=a, round_id=round_id, base_model=base_digest.hex(), spec_digest=spec.digest(),
                                  num_samples=t.num_samples, epsilon_milli=t.epsilon_milli, dp=t.mechanism,
                                  chain_id=self.chain_id, ledger=self.ledger, masked=True)  # fmt: skip
            blob = encode_masked(header, masked)
            subs.append(SubmissionInput(a, digest_of(blob), t.num_samples, t.epsilon_milli, blob))
        committed = {s.participant for s in subs}
        reveals = {a: reveal(rnd, a, self.keys[a], peers, committed).to_bytes() for a in committed}
        cids = {a: content_cid(b) for a, b in raw.items()}
        return subs, SecureInputs(rnd, raw, cids, reveals, {a: content_cid(b) for a, b in reveals.items()})
