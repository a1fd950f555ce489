"""What every round manifest records, public or secure: the round's header and one entry per submission."""

from __future__ import annotations

from typing import Any

from ipfs import content_cid


def round_header(inputs: Any, strategy: Any, global_bytes: bytes, state_out: bytes | None, manifest_format: str) -> dict[str, Any]:
    """The fields that bind a manifest to its federation, chain, round, base and result."""
    return {
        "format": manifest_format,
        "federation": inputs.descriptor_cid,
        "chain_id": inputs.chain_id,
        "ledger": inputs.ledger,
        "round": inputs.round_id,
        "base_round": inputs.base_round,
        "quorum": inputs.quorum,
        "privacy": inputs.descriptor.privacy_mode,
        "base_model": content_cid(inputs.base_model),
        "global_model": content_cid(global_bytes),
        "strategy": {"name": strategy.name, "params": strategy.params()},
        "state_in": content_cid(inputs.state_in) if inputs.state_in else None,
        "state_out": content_cid(state_out) if state_out else None,
    }


def submission_entry(s: Any, v: Any, score: int, **extra: Any) -> dict[str, Any]:
    """One submission as the manifest lists it; ``privacy`` only for DP updates, so other manifests keep their bytes."""
    return {
        "participant": s.participant,
        "update": s.cid,
        "num_samples": s.num_samples,
        "epsilon_milli": s.epsilon_milli,
        "weight": v.weight,
        "status": "accepted" if v.accepted else "rejected",
        "reason": v.reason,
        "detail": v.detail,
        "score": score,
        **extra,
        **({"privacy": v.privacy} if v.privacy is not None else {}),
    }
