"""The federation descriptor: what a federation is, fixed when it is created.

The descriptor is canonical JSON in the store, and its digest is bound into the ledger at
deployment (``descriptor()``), so every member, the coordinator and the auditor check that
the descriptor they hold is the one the chain names. It fixes the model spec, the public
validation set and the scoring hold-outs (by CID), the aggregation strategy and its
parameters, the scoring rule and the defences, the limits every update must respect, the
privacy mode, the round timing, and for raw flow files the feature normaliser. The genesis
model is derived from it (:mod:`federation.genesis`: weights drawn from a seed taken from the
descriptor's bytes, optionally pretrained on a public flow set by a recipe, or a parent
federation's global model), and the ledger's genesis digest must match.

Reading one is bounded: a descriptor comes from the store and is untrusted until its digest
has been checked against the chain, so size, nesting depth and every field's type are
checked, NaN and Infinity refused, and the bytes must be canonical.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faults import FedLedgerError
from federation.canonical import canonical_json, parse_bounded_json
from federation.genesis import Genesis, GenesisError, parse_genesis
from federation.model import InvalidModelSpec, ModelSpec
from federation.secagg.params import MODE as SECURE_MODE
from federation.secagg.params import InvalidSecureParams, SecureParams

if TYPE_CHECKING:
    from ipfs import ContentStore

DESCRIPTOR_FORMAT = "fedledger-federation/2"
MAX_DESCRIPTOR_BYTES = 16 << 20  # a normaliser for a few hundred features is tens of KB
MAX_DESCRIPTOR_DEPTH = 12
PRIVACY_MODES = ("public", "secure-aggregation")
DEFAULT_TIMING = {"reveal_seconds": 30, "abort_grace": 3600}
DEFAULT_SCORING = {"rule": "leave-one-out", "metric": "macro_f1", "scale": 10000}
MAX_HOLDOUTS = 10_000


class InvalidDescriptor(FedLedgerError):
    """A federation descriptor or validation set that is malformed or does not match the chain."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "re-create the federation with `fedledger deploy`, or fetch the descriptor the ledger names")


@dataclass(frozen=True)
class Descriptor:
    """Everything the coordinator and the auditor must agree on, besides the chain."""

    name: str
    spec: ModelSpec
    validation: str  # CID of the public validation set file
    strategy: str = "fedavg"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SCORING))
    max_update_bytes: int = 64 << 20
    seed: int = 0
    # Feature normalisation for raw flow files, fixed from the members' merged aggregate
    # statistics (``flows.schema.Normaliser.to_dict``); None when members hold encoded flow sets.
    normaliser: dict[str, Any] | None = None
    # "public", or "secure-aggregation" with its parameters (federation.secagg)
    privacy: dict[str, Any] = field(default_factory=lambda: {"mode": "public"})
    # CIDs of the scoring hold-outs: committed here, revealed by the coordinator after each round closes
    holdouts: tuple[str, ...] = ()
    timing: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMING))
    # How the genesis model is made (federation.genesis); None: seeded. Absent from the bytes when None,
    # so a seeded federation's descriptor is the same document it always was.
    genesis: Genesis | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "holdouts", tuple(self.holdouts))
        problems = _check(self)
        if self.genesis is not None:
            try:  # a hand-built entry is checked as strictly as one read from the store
                raw = self.genesis if isinstance(self.genesis, dict) else self.genesis.to_dict()
                object.__setattr__(self, "genesis", parse_genesis(raw))
            except (GenesisError, AttributeError) as exc:
                problems.append(str(exc).splitlines()[0])
        if problems:
            raise InvalidDescriptor("federation descriptor: " + "; ".join(problems))

    @property
    def privacy_mode(self) -> str:
        return str(self.privacy.get("mode", "public"))

    @property
    def reveal_seconds(self) -> int:
        return int(self.timing["reveal_seconds"])

    @property
    def abort_grace(self) -> int:
        return int(self.timing["abort_grace"])

    def holdout_for(self, round_id: int) -> str | None:
        """The hold-out that scores round ``round_id`` (they rotate), or None without hold-outs."""
        return self.holdouts[(round_id - 1) % len(self.holdouts)] if self.holdouts else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DESCRIPTOR_FORMAT,
            "name": self.name,
            "model_spec": self.spec.to_dict(),
            "validation": self.validation,
            "strategy": {"name": self.strategy, "params": dict(sorted(self.strategy_params.items()))},
            "scoring": self.scoring,
            "max_update_bytes": self.max_update_bytes,
            "seed": self.seed,
            "normaliser": self.normaliser,
            "privacy": self.privacy,
            "holdouts": list(self.holdouts),
            "timing": self.timing,
        } | ({"genesis": self.genesis.to_dict()} if self.genesis is not None else {})

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Descriptor:
        """Parse a descriptor from untrusted bytes; :class:`InvalidDescriptor` names the first thing wrong."""
        try:
            obj = parse_bounded_json(data, max_bytes=MAX_DESCRIPTOR_BYTES, max_depth=MAX_DESCRIPTOR_DEPTH)
        except ValueError as exc:
            raise InvalidDescriptor(f"federation descriptor: {exc}") from None
        desc = cls.from_dict(obj)
        if desc.to_bytes() != bytes(data):
            raise InvalidDescriptor("federation descriptor is not in canonical form")
        return desc

    @classmethod
    def from_dict(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidDescriptor(f"federation descriptor should be a JSON object, got {type(obj).__name__}")
        if obj.get("format") != DESCRIPTOR_FORMAT:
            raise InvalidDescriptor(f"not a federation descriptor (format {obj.get('format')!r}, expected {DESCRIPTOR_FORMAT})")
        expected = {"format", "name", "model_spec", "validation", "strategy", "scoring", "max_update_bytes", "seed",
                    "normaliser", "privacy", "holdouts", "timing"}  # fmt: skip
        if set(obj) - {"genesis"} != expected:
            raise InvalidDescriptor(
                f"federation descriptor fields {sorted((set(obj) - {'genesis'}) ^ expected)} are missing or unexpected"
            )
        strategy = obj["strategy"]
        if not isinstance(strategy, dict) or set(strategy) != {"name", "params"}:
            raise InvalidDescriptor("federation descriptor: strategy should be {name, params}")
        try:
            spec = ModelSpec.from_dict(obj["model_spec"])
        except InvalidModelSpec as exc:
            raise InvalidDescriptor(f"federation descriptor: {exc}") from None
        holdouts = obj["holdouts"]
        if not isinstance(holdouts, list):
            raise InvalidDescriptor("federation descriptor: holdouts should be a list of CIDs")
        return cls(
            name=obj["name"], spec=spec, validation=obj["validation"], strategy=strategy["name"],
            strategy_params=strategy["params"], scoring=obj["scoring"], max_update_bytes=obj["max_update_bytes"],
            seed=obj["seed"], normaliser=obj["normaliser"], privacy=obj["privacy"], holdouts=tuple(holdouts),
            timing=obj["timing"], genesis=obj.get("genesis"),
        )  # fmt: skip

    def digest(self) -> bytes:
        """What the ledger records for this descriptor: the root digest of its bytes in the store."""
        from ipfs import cid_to_digest, content_cid

        return cid_to_digest(content_cid(self.to_bytes()))

    def genesis_seed(self) -> int:
        """The seed of the genesis weights: the first 8 bytes of sha256(descriptor)."""
        return int.from_bytes(hashlib.sha256(self.to_bytes()).digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF

    def genesis_model(self, store: ContentStore | None = None) -> bytes:
        """The canonical bytes of the genesis model this descriptor commits to.

        A pretrained genesis is re-derived by re-running its recipe on the public flow set
        (read from ``store``), a parent's is read from ``store``; a seeded one needs no store.
        """
        from federation.genesis import genesis_model

        return genesis_model(self, store)


def _is_int(v: object) -> bool:
    return type(v) is int


def _check(d: Descriptor) -> list[str]:
    """Every field's type and range, so no consumer meets a surprise later (a TypeError deep in a round)."""
    bad: list[str] = []
    if not isinstance(d.name, str) or not d.name or len(d.name) > 200:
        bad.append("name should be 1-200 characters of text")
    if not isinstance(d.spec, ModelSpec):
        bad.append("model_spec is not a model spec")
    for what, cid in (("validation", d.validation), *((f"holdouts[{i}]", h) for i, h in enumerate(d.holdouts))):
        if not isinstance(cid, str) or not 1 <= len(cid) <= 100:
            bad.append(f"{what} should be a CID")
    if len(d.holdouts) > MAX_HOLDOUTS:
        bad.append(f"more than {MAX_HOLDOUTS} hold-outs")
    if not isinstance(d.strategy, str) or not isinstance(d.strategy_params, dict):
        bad.append("strategy should be a name and a parameter object")
    elif not all(isinstance(k, str) and (v is None or isinstance(v, (int, float))) for k, v in d.strategy_params.items()):
        bad.append("strategy parameters should be numbers or null")
    if not isinstance(d.scoring, dict) or not isinstance(d.scoring.get("rule"), str):
        bad.append("scoring should be an object naming its rule")
    if not _is_int(d.max_update_bytes) or not 1024 <= d.max_update_bytes <= 1 << 32:
        bad.append("max_update_bytes should be an integer in 1 KiB..4 GiB")
    if not _is_int(d.seed) or not 0 <= d.seed < 2**53:  # canonical JSON holds integers exactly up to 2^53-1
        bad.append("seed should be an integer in 0..2^53-1")
    if d.normaliser is not None and not isinstance(d.normaliser, dict):
        bad.append("normaliser should be an object or null")
    elif d.normaliser is not None and not _finite_numbers(d.normaliser):
        bad.append("normaliser holds a value that is not a finite number or text")
    if not isinstance(d.privacy, dict) or d.privacy.get("mode") not in PRIVACY_MODES:
        bad.append(f"privacy mode should be one of {PRIVACY_MODES}")
    elif d.privacy["mode"] == SECURE_MODE:
        bad.extend(_secure_problems(d))
    elif d.privacy != {"mode": "public"}:
        bad.append("public mode takes no privacy parameters")
    elif isinstance(d.scoring, dict) and d.scoring.get("rule") == "sample-share":
        bad.append("sample-share scores secure-aggregation rounds only")
    if not isinstance(d.timing, dict) or set(d.timing) != set(DEFAULT_TIMING) or not all(
        _is_int(v) and 0 <= v <= 30 * 86400 for v in d.timing.values()
    ):
        bad.append(f"timing should be {sorted(DEFAULT_TIMING)} as whole seconds up to 30 days")
    return bad


SUM_STRATEGIES = ("fedavg", "fedavgm", "fedadam")  # the rules that need only the weighted sum of the updates


def _secure_problems(d: Descriptor) -> list[str]:
    """What secure aggregation needs of the rest of the descriptor: a rule on sums, and scores from sample counts."""
    bad = []
    try:
        SecureParams.from_privacy(d.privacy)
    except InvalidSecureParams as exc:
        bad.append(str(exc))
    if d.strategy not in SUM_STRATEGIES:
        bad.append(f"strategy {d.strategy!r} needs every update, but secure aggregation reveals only their sum: "
                   f"use one of {', '.join(SUM_STRATEGIES)}")  # fmt: skip
    elif isinstance(d.strategy_params, dict) and "clip_norm" in d.strategy_params:
        bad.append("clip_norm needs every update's norm, but secure aggregation reveals only their sum: the clip range bounds them")
    if isinstance(d.scoring, dict) and d.scoring.get("rule") != "sample-share":
        bad.append("secure aggregation scores by sample-share (no update is ever seen alone)")
    return bad


def _finite_numbers(obj: Any) -> bool:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return True
    if isinstance(obj, (int, float)):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_numbers(v) for v in obj)
    return False
