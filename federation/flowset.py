"""Flow sets: encoded flows as a canonical tensor file (the public validation set, or one organisation's flows)."""

from __future__ import annotations

import json

import numpy as np

from faults import FedLedgerError
from federation.descriptor import InvalidDescriptor
from federation.model import ModelSpec
from federation.tensorfile import InvalidTensorFile, dump_tensors, load_tensors
from flows import FlowDataset

FLOWSET_FORMAT = "fedledger-flowset/1"


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
    if spec is not None:
        check_fits(data, spec)
    return data


def check_fits(data: FlowDataset, spec: ModelSpec) -> None:
    """Raise unless ``data`` has the schema, width and classes of the model ``spec``."""
    if data.schema_id != spec.schema_id or data.classes != spec.classes or data.features.shape[1] != spec.input_dim:
        raise InvalidDescriptor(
            f"flow set ({data.schema_id}, {data.features.shape[1]} features, {len(data.classes)} classes) "
            f"does not fit the model spec ({spec.schema_id}, {spec.input_dim} features, {len(spec.classes)} classes)"
        )
