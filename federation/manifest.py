"""The round manifest as a type: what a finalised round's manifest says, read back with every field checked.

The round derivation writes the manifest as canonical JSON (its digest goes on chain);
everyone who reads one back (the coordinator for the strategy state it carries, the
audit, the explorer, a participant checking a round) goes through :meth:`Manifest.parse`,
which refuses anything that is not exactly the shape the derivation writes, in bounded
time and memory, with an error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faults import FedLedgerError
from federation.canonical import canonical_json, parse_bounded_json

MANIFEST_FORMAT = "fedledger-manifest/1"
# A manifest lists each submission once with a few short fields; 50 members take ~30 KB.
MAX_MANIFEST_BYTES = 16 << 20
MAX_MANIFEST_DEPTH = 16
STATUSES = ("accepted", "rejected")


class InvalidManifest(FedLedgerError):
    """A round manifest that is not the shape the round derivation writes."""

    def __init__(self, message: str) -> None:
        super().__init__(f"round manifest: {message}", hint="the manifest in the store was not written by this round's derivation")


def _field(obj: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], where: str = "") -> Any:
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if key not in obj:
        raise InvalidManifest(f"{where}{key!r} is missing")
    value = obj[key]
    # bool is an int in Python; a manifest never means true where it says a number.
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = "/".join(k.__name__ for k in allowed)
        raise InvalidManifest(f"{where}{key!r} should be {names}, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class SubmissionEntry:
    """One submission as the manifest records it."""

    participant: str
    update: str  # CID
    num_samples: int
    epsilon_milli: int
    weight: float
    status: str  # "accepted" or "rejected"
    reason: str | None
    detail: str | None
    score: int
    flags: tuple[dict[str, str], ...] = ()
    aggregated: bool = True
    privacy: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @classmethod
    def parse(cls, obj: Any, i: int) -> SubmissionEntry:
        where = f"submissions[{i}]."
        if not isinstance(obj, dict):
            raise InvalidManifest(f"submissions[{i}] should be an object, got {type(obj).__name__}")
        status = _field(obj, "status", str, where)
        if status not in STATUSES:
            raise InvalidManifest(f"{where}status {status!r} is not one of {STATUSES}")
        flags = obj.get("flags", [])
        if not isinstance(flags, list) or not all(
            isinstance(f, dict) and isinstance(f.get("reason"), str) and isinstance(f.get("detail"), str) for f in flags
        ):
            raise InvalidManifest(f"{where}flags should be a list of {{reason, detail}}")
        privacy = obj.get("privacy")
        if privacy is not None and not isinstance(privacy, dict):
            raise InvalidManifest(f"{where}privacy should be an object")
        aggregated = obj.get("aggregated", True)
        if not isinstance(aggregated, bool):
            raise InvalidManifest(f"{where}aggregated should be a boolean")
        reason = obj.get("reason")
        detail = obj.get("detail")
        if reason is not None and not isinstance(reason, str) or detail is not None and not isinstance(detail, str):
            raise InvalidManifest(f"{where}reason and detail should be text or null")
        return cls(
            participant=_field(obj, "participant", str, where),
            update=_field(obj, "update", str, where),
            num_samples=_field(obj, "num_samples", int, where),
            epsilon_milli=_field(obj, "epsilon_milli", int, where),
            weight=float(_field(obj, "weight", (int, float), where)),
            status=status,
            reason=reason,
            detail=detail,
            score=_field(obj, "score", int, where),
            flags=tuple(flags),
            aggregated=aggregated,
            privacy=privacy,
        )


@dataclass(frozen=True)
class Manifest:
    """A parsed round manifest; ``raw`` is the exact JSON object it was read from."""

    federation: str  # the descriptor's CID
    chain_id: int
    ledger: str
    round_id: int
    base_round: int
    quorum: int
    privacy: str
    base_model: str
    global_model: str
    strategy: dict[str, Any]
    state_in: str | None
    state_out: str | None
    submissions: tuple[SubmissionEntry, ...]
    absent: tuple[str, ...]
    aggregation_order: tuple[str, ...]
    bounds: dict[str, Any]
    scoring: dict[str, Any]
    scored_on: str
    validation: str
    metrics: dict[str, Any]
    raw: dict[str, Any]
    # secure aggregation: the members whose reveal bundles the unmasking used (None in public mode)
    secure_reveals: tuple[str, ...] | None = None

    def to_bytes(self) -> bytes:
        return canonical_json(self.raw)

    def submission(self, participant: str) -> SubmissionEntry | None:
        low = participant.lower()
        return next((s for s in self.submissions if s.participant.lower() == low), None)

    @classmethod
    def parse(cls, data: bytes, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
        """Read a manifest from its bytes; :class:`InvalidManifest` names the first thing wrong."""
        try:
            obj = parse_bounded_json(data, max_bytes=max_bytes, max_depth=MAX_MANIFEST_DEPTH)
        except ValueError as exc:
            raise InvalidManifest(str(exc)) from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> Manifest:
        if not isinstance(obj, dict):
            raise InvalidManifest(f"should be a JSON object, got {type(obj).__name__}")
        if obj.get("format") != MANIFEST_FORMAT:
            raise InvalidManifest(f"format {obj.get('format')!r} is not {MANIFEST_FORMAT}")
        subs = _field(obj, "submissions", list)
        absent = _field(obj, "absent", list)
        order = _field(obj, "aggregation_order", list)
        if not all(isinstance(a, str) for a in absent) or not all(isinstance(a, str) for a in order):
            raise InvalidManifest("absent and aggregation_order should list addresses")
        strategy = _field(obj, "strategy", dict)
        if not isinstance(strategy.get("name"), str) or not isinstance(strategy.get("params"), dict):
            raise InvalidManifest("strategy should be {name, params}")
        state_in, state_out = obj.get("state_in"), obj.get("state_out")
        if not all(v is None or isinstance(v, str) for v in (state_in, state_out)):
            raise InvalidManifest("state_in and state_out should be CIDs or null")
        return cls(
            federation=_field(obj, "federation", str),
            chain_id=_field(obj, "chain_id", int),
            ledger=_field(obj, "ledger", str),
            round_id=_field(obj, "round", int),
            base_round=_field(obj, "base_round", int),
            quorum=_field(obj, "quorum", int),
            privacy=_field(obj, "privacy", str),
            base_model=_field(obj, "base_model", str),
            global_model=_field(obj, "global_model", str),
            strategy=strategy,
            state_in=state_in,
            state_out=state_out,
            submissions=tuple(SubmissionEntry.parse(s, i) for i, s in enumerate(subs)),
            absent=tuple(absent),
            aggregation_order=tuple(order),
            bounds=_field(obj, "bounds", dict),
            scoring=_field(obj, "scoring", dict),
            scored_on=_field(obj, "scored_on", str),
            validation=_field(obj, "validation", str),
            metrics=_field(obj, "metrics", dict),
            raw=obj,
            secure_reveals=_secure_reveals(obj),
        )


def _secure_reveals(obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "secure_aggregation" not in obj:
        return None
    sec = _field(obj, "secure_aggregation", dict)
    members = _field(sec, "members", list, "secure_aggregation.")
    out = []
    for i, m in enumerate(members):
        where = f"secure_aggregation.members[{i}]."
        if not isinstance(m, dict):
            raise InvalidManifest(f"{where[:-1]} should be an object")
        who = _field(m, "participant", str, where)
        reveal = m.get("reveal")
        if reveal is not None and not isinstance(reveal, str):
            raise InvalidManifest(f"{where}reveal should be a CID or null")
        if reveal is not None:
            out.append(who)
    return tuple(out)
