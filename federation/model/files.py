"""The canonical model file: what the chain's global-model digests are taken over.

safetensors bytes with sorted names, float32 little-endian and the spec JSON as
metadata (:mod:`federation.tensorfile` pins every layout choice), so the same
weights give the same bytes on any machine; reading checks every tensor against
the spec and refuses a file that is valid but not canonical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from faults import FedLedgerError
from federation.model.spec import MAX_PARAMETERS, InvalidModelSpec, ModelSpec
from federation.tensorfile import InvalidTensorFile, dump_tensors, load_tensors

MODEL_FILE_FORMAT = "fedledger-model/1"


class InvalidModelFile(FedLedgerError):
    """A model file whose bytes or tensors do not match what its spec requires."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "fetch the model again by its digest, or check the model spec")
        self.reason = reason


def check_weights(spec: ModelSpec, weights: Mapping[str, object]) -> None:
    """Raise :class:`InvalidModelFile` unless ``weights`` has exactly the spec's tensors, shapes and finite values."""
    shapes = spec.tensor_shapes()
    if set(weights) != set(shapes):
        missing, extra = sorted(set(shapes) - set(weights)), sorted(set(weights) - set(shapes))
        raise InvalidModelFile("tensor-names", f"weights do not match the model spec: missing {missing}, unexpected {extra}")
    for name, shape in shapes.items():
        arr = weights[name]
        got = tuple(arr.shape)  # type: ignore[attr-defined]
        if got != shape:
            raise InvalidModelFile("shape-mismatch", f"tensor {name!r} has shape {got}, the model spec says {shape}")
        if not np.all(np.isfinite(np.asarray(arr))):
            raise InvalidModelFile("non-finite", f"tensor {name!r} holds NaN or infinite values")


def save_model_bytes(spec: ModelSpec, state: Mapping[str, object]) -> bytes:
    """The canonical model file: safetensors, sorted names, float32 LE, metadata = spec JSON + format."""
    arrays = {
        # torch tensors are accepted without importing torch here (reading a model needs no torch)
        k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)).astype(np.float32, copy=False)
        for k, v in state.items()
    }
    check_weights(spec, arrays)
    return dump_tensors(arrays, {"format": MODEL_FILE_FORMAT, "spec": spec.to_json()})


def model_digest(data: bytes) -> str:
    """sha256 of canonical model bytes, as 64 hex characters."""
    return hashlib.sha256(data).hexdigest()


def load_model_bytes(data: bytes, spec: ModelSpec | None = None) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """Parse and validate a canonical model file.

    With ``spec`` given, the file's embedded spec must be identical to it.
    Raises :class:`InvalidModelFile` (with ``.reason``) on anything malformed.
    """
    limit = 8 + (1 << 20) + 4 * MAX_PARAMETERS if spec is None else 8 + (1 << 20) + 4 * spec.num_parameters()
    try:
        meta, tensors = load_tensors(data, max_bytes=limit)
    except InvalidTensorFile as exc:
        raise InvalidModelFile(exc.reason, f"model file: {exc}") from None
    if meta.get("format") != MODEL_FILE_FORMAT or set(meta) != {"format", "spec"}:
        raise InvalidModelFile("format", f"model file metadata {sorted(meta)} / format {meta.get('format')!r} is not {MODEL_FILE_FORMAT}")
    try:
        file_spec = ModelSpec.from_json(meta["spec"])
    except InvalidModelSpec as exc:
        raise InvalidModelFile("spec", f"model file carries an invalid spec: {exc}") from None
    if spec is not None and file_spec != spec:
        raise InvalidModelFile(
            "spec-mismatch",
            f"model file is for spec {file_spec.digest()[:12]}…, expected {spec.digest()[:12]}…",
            hint="this model belongs to another federation or model version",
        )
    if any(a.dtype != np.float32 for a in tensors.values()):
        raise InvalidModelFile("dtype", "model file tensors must be float32")
    check_weights(file_spec, tensors)
    # Re-serialising must give the same bytes: anything else (padding, key order) is not canonical.
    if dump_tensors(tensors, meta) != bytes(data):
        raise InvalidModelFile("not-canonical", "model file is valid safetensors but not in canonical form")
    return file_spec, tensors
