"""The federation descriptor: what a federation is, fixed when it is created.

The descriptor is canonical JSON in the store. It names the model spec, the public
validation set (by CID), the aggregation strategy and its parameters, the scoring
rule and the limits every update must respect. The chain cannot hold it (the
constructor takes only the genesis model's digest), so the genesis model commits to
it instead: its weights are drawn from a seed derived from the descriptor's bytes.
An auditor holding a descriptor recomputes the genesis model and compares its digest
with the chain's; a descriptor changed afterwards no longer matches the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from faults import FedLedgerError
from federation.canonical import canonical_json
from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model

DESCRIPTOR_FORMAT = "fedledger-federation/1"


class InvalidDescriptor(FedLedgerError):
    """A federation descriptor or validation set that is malformed or does not match the chain."""


@dataclass(frozen=True)
class Descriptor:
    """Everything the coordinator and the auditor must agree on, besides the chain."""

    name: str
    spec: ModelSpec
    validation: str  # CID of the public validation set file
    strategy: str = "fedavg"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=lambda: {"rule": "leave-one-out", "metric": "macro_f1", "scale": 10000})
    max_update_bytes: int = 64 << 20
    seed: int = 0
    # Feature normalisation for raw flow files, fixed from the members' merged aggregate
    # statistics (``flows.schema.Normaliser.to_dict``); None when members hold encoded flow sets.
    normaliser: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": DESCRIPTOR_FORMAT,
            "name": self.name,
            "model_spec": json.loads(self.spec.to_json()),
            "validation": self.validation,
            "strategy": {"name": self.strategy, "params": dict(sorted(self.strategy_params.items()))},
            "scoring": self.scoring,
            "max_update_bytes": self.max_update_bytes,
            "seed": self.seed,
            "normaliser": self.normaliser,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Descriptor:
        try:
            obj = json.loads(data)
            if obj.get("format") != DESCRIPTOR_FORMAT:
                raise InvalidDescriptor(f"not a federation descriptor (format {obj.get('format')!r})")
            desc = cls(
                name=str(obj["name"]),
                spec=ModelSpec.from_json(json.dumps(obj["model_spec"])),
                validation=str(obj["validation"]),
                strategy=str(obj["strategy"]["name"]),
                strategy_params=dict(obj["strategy"]["params"]),
                scoring=dict(obj["scoring"]),
                max_update_bytes=int(obj["max_update_bytes"]),
                seed=int(obj["seed"]),
                normaliser=obj["normaliser"],
            )
        except InvalidDescriptor:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidDescriptor(f"federation descriptor is malformed: {type(exc).__name__}: {exc}") from None
        if desc.to_bytes() != bytes(data):
            raise InvalidDescriptor("federation descriptor is not in canonical form", hint="re-create it with `fedledger deploy`")
        return desc

    def genesis_seed(self) -> int:
        """The seed of the genesis weights: the first 8 bytes of sha256(descriptor)."""
        return int.from_bytes(hashlib.sha256(self.to_bytes()).digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF

    def genesis_model(self) -> bytes:
        """The canonical bytes of the genesis model this descriptor commits to."""
        return save_model_bytes(self.spec, init_model(self.spec, self.genesis_seed()))
