"""Validating one submission: its bytes against its on-chain record, never raising for bad content.

Every way an update can be wrong becomes a :class:`Verdict` with a reason code (the
manifest records it): not fetched, not decodable (:class:`federation.updates.InvalidUpdate`
reasons), a header that disagrees with the chain (sender, round, base, samples,
epsilon), or an epsilon its declared DP mechanism does not cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from federation.model import ModelSpec
from federation.privacy import check_claim, declared_mechanism_problem
from federation.updates import InvalidUpdate, UpdateHeader, decode_update
from ipfs import digest_to_cid


@dataclass(frozen=True)
class SubmissionInput:
    """One on-chain submission and what the coordinator could fetch for it."""

    participant: str  # checksummed address
    digest: bytes  # the 32-byte digest on chain
    num_samples: int
    epsilon_milli: int
    data: bytes | None  # the update's bytes, verified against the digest; None when they could not be fetched
    fetch_error: str | None = None  # why ``data`` is None: a reason code such as "unavailable" or "corrupt"

    @property
    def cid(self) -> str:
        return digest_to_cid(self.digest)


@dataclass
class Verdict:
    participant: str
    accepted: bool
    reason: str | None = None
    detail: str | None = None
    weight: float = 0.0
    privacy: dict[str, Any] | None = None  # the update's declared DP mechanism, when it has one


@dataclass(frozen=True)
class Binding:
    """What every update of a round must bind: the chain, the ledger, the round and its base."""

    chain_id: int
    ledger: str  # checksummed address
    round_id: int
    base_digest_hex: str


def validate_submission(
    sub: SubmissionInput, binding: Binding, spec: ModelSpec, max_bytes: int
) -> tuple[Verdict, dict[str, np.ndarray] | None]:
    """Decode and check one update against its on-chain record; never raises.

    Anything that goes wrong while validating one update, expected (a malformed update) or
    not (an accountant that runs out of memory on a hostile DP section), becomes that
    update's recorded rejection: one member's bytes can never crash the round.
    """
    try:
        return _validate(sub, binding, spec, max_bytes)
    except Exception as exc:  # noqa: BLE001 - by design: a hostile update must not end the round
        detail = f"validating the update failed: {type(exc).__name__}: {str(exc)[:300]}"
        return Verdict(sub.participant, False, "validation-error", detail), None


def header_problem(header: UpdateHeader, binding: Binding, participant: str, num_samples: int, epsilon_milli: int) -> tuple[str, str] | None:
    """(reason, detail) if the header disagrees with the chain's record of the submission, else None."""
    checks = (
        ("chain-mismatch", header.chain_id == binding.chain_id,
         f"header is for chain {header.chain_id}, the ledger is on chain {binding.chain_id}"),
        ("ledger-mismatch", header.ledger.lower() == binding.ledger.lower(),
         f"header is for ledger {header.ledger}, not {binding.ledger}"),
        ("sender-mismatch", header.participant.lower() == participant.lower(),
         f"header names {header.participant}, the chain's sender is {participant}"),
        ("round-mismatch", header.round_id == binding.round_id, f"header is for round {header.round_id}, not {binding.round_id}"),
        ("base-mismatch", header.base_model == binding.base_digest_hex,
         f"header's base model {header.base_model[:12]}… is not this round's base {binding.base_digest_hex[:12]}…"),
        ("samples-mismatch", header.num_samples == num_samples,
         f"header claims {header.num_samples} samples, the chain records {num_samples}"),
        ("epsilon-mismatch", header.epsilon_milli == epsilon_milli,
         f"header claims epsilon {header.epsilon_milli / 1000:g}, the chain records {epsilon_milli / 1000:g}"),
    )  # fmt: skip
    for reason, ok, detail in checks:
        if not ok:
            return reason, detail
    return None


def privacy_problem(header: UpdateHeader) -> tuple[str, str] | None:
    """(reason, detail) if the header's DP claim is out of bounds or not what its mechanism costs, else None."""
    if header.dp is not None:
        # What an untrusted header may declare is bounded before any accountant sees it.
        problem = declared_mechanism_problem(header.dp, header.num_samples)
        if problem is not None:
            return "dp-section", f"update's DP section: {problem}"
    # The claimed epsilon must be what the declared DP mechanism costs (recomputed with the same accountant).
    problem = check_claim(header.dp, header.epsilon_milli)
    if problem is not None:
        return "epsilon-inconsistent", f"update {problem}"
    return None


def privacy_record(header: UpdateHeader) -> dict[str, Any] | None:
    return None if header.dp is None else {**header.dp.to_dict(), "epsilon_milli": header.epsilon_milli}


def _validate(
    sub: SubmissionInput, binding: Binding, spec: ModelSpec, max_bytes: int
) -> tuple[Verdict, dict[str, np.ndarray] | None]:
    if sub.data is None:
        reason = sub.fetch_error or "unavailable"
        return Verdict(sub.participant, False, reason, f"update {sub.cid} could not be fetched ({reason})"), None
    try:
        header, delta = decode_update(sub.data, spec, max_bytes=max_bytes)
    except InvalidUpdate as exc:
        return Verdict(sub.participant, False, exc.reason, str(exc)), None
    problem = header_problem(header, binding, sub.participant, sub.num_samples, sub.epsilon_milli) or privacy_problem(header)
    if problem is not None:
        return Verdict(sub.participant, False, *problem), None
    return Verdict(sub.participant, True, privacy=privacy_record(header)), delta
