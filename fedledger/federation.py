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

import numpy as np

from fedledger.data import FlowDataset
from fedledger.errors import FedLedgerError
from fedledger.model import ModelSpec, init_model, save_model_bytes
from fedledger.tensorfile import InvalidTensorFile, dump_tensors, load_tensors

DESCRIPTOR_FORMAT = "fedledger-federation/1"
FLOWSET_FORMAT = "fedledger-flowset/1"


class InvalidDescriptor(FedLedgerError):
    """A federation descriptor or validation set that is malformed or does not match the chain."""


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding whose digest we sign or publish: sorted keys, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


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
    # statistics (``fedledger.data.schema.Normaliser.to_dict``); None when members hold encoded flow sets.
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


def flowset_bytes(data: FlowDataset) -> bytes:
    """A flow set as a canonical tensor file: the public validation set, or one organisation's flows.

    Labels are small integers, exact in float32 (the tensor file holds floats only).
    """
    meta = {
        "format": FLOWSET_FORMAT,
        "schema_id": data.schema_id,
        "classes": json.dumps(list(data.classes)),
        "feature_names": json.dumps(list(data.feature_names)),
    }
    return dump_tensors({"features": data.features, "labels": data.labels.astype(np.float32)}, meta)


def load_flowset(blob: bytes, spec: ModelSpec | None = None) -> FlowDataset:
    """Parse a flow set file and, with ``spec``, check that it fits the model."""
    try:
        meta, tensors = load_tensors(blob)
    except InvalidTensorFile as exc:
        raise InvalidDescriptor(f"flow set: {exc}") from None
    if meta.get("format") != FLOWSET_FORMAT or set(tensors) != {"features", "labels"}:
        raise InvalidDescriptor("the file is not a fedledger flow set")
    labels = tensors["labels"]
    if not np.array_equal(labels, np.round(labels)):
        raise InvalidDescriptor("flow set labels are not integers")
    try:
        data = FlowDataset(
            features=tensors["features"],
            labels=labels.astype(np.int64),
            classes=tuple(json.loads(meta["classes"])),
            schema_id=meta["schema_id"],
            feature_names=tuple(json.loads(meta["feature_names"])),
        )
    except FedLedgerError as exc:
        raise InvalidDescriptor(f"flow set: {exc}") from None
    if spec is None:
        return data
    if data.schema_id != spec.schema_id or data.classes != spec.classes or data.features.shape[1] != spec.input_dim:
        raise InvalidDescriptor(
            f"flow set ({data.schema_id}, {data.features.shape[1]} features, {len(data.classes)} classes) "
            f"does not fit the model spec ({spec.schema_id}, {spec.input_dim} features, {len(spec.classes)} classes)"
        )
    return data
