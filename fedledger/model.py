"""The detection model: its spec, the torch MLP built from it, and the canonical model file.

The spec's digest goes into the federation's genesis, and the global model's
on-chain digest is over :func:`save_model_bytes` output, so both are canonical
(sorted keys, no whitespace, float32 little-endian, nothing time- or
machine-dependent).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedledger.errors import FedLedgerError
from fedledger.tensorfile import InvalidTensorFile, dump_tensors, load_tensors

SPEC_VERSION = 1
MODEL_FILE_FORMAT = "fedledger-model/1"
ACTIVATIONS = ("relu", "tanh")
# A bound on what we are willing to load: 256M parameters is far above any
# flow classifier and keeps a hostile file from exhausting memory.
MAX_PARAMETERS = 256 * 1024 * 1024


class InvalidModelSpec(FedLedgerError):
    """A model spec that is malformed or does not fit the data it is used with."""


class InvalidModelFile(FedLedgerError):
    """A model file whose bytes or tensors do not match what its spec requires."""

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "fetch the model again by its digest, or check the model spec")
        self.reason = reason


@dataclass(frozen=True)
class ModelSpec:
    """What a federation trains: input width, hidden layer sizes and output classes."""

    schema_id: str
    input_dim: int
    hidden: tuple[int, ...]
    classes: tuple[str, ...]
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "classes", tuple(self.classes))
        if not isinstance(self.schema_id, str) or not self.schema_id:
            raise InvalidModelSpec("model spec: schema_id must be a non-empty string", hint="e.g. 'nsl-kdd/v1'")
        if type(self.input_dim) is not int or not 1 <= self.input_dim <= 1_000_000:
            raise InvalidModelSpec(f"model spec: input_dim must be an integer in 1..1e6, got {self.input_dim!r}")
        if not all(type(h) is int and 1 <= h <= 1_000_000 for h in self.hidden) or len(self.hidden) > 16:
            raise InvalidModelSpec(f"model spec: hidden must be up to 16 positive integers, got {self.hidden!r}")
        if len(self.classes) < 2 or not all(isinstance(c, str) and c for c in self.classes):
            raise InvalidModelSpec(f"model spec: classes must be at least two names, got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidModelSpec(f"model spec: class names repeat: {self.classes!r}")
        if self.activation not in ACTIVATIONS:
            raise InvalidModelSpec(
                f"model spec: unknown activation {self.activation!r}", hint=f"use one of {', '.join(ACTIVATIONS)}"
            )
        if self.num_parameters() > MAX_PARAMETERS:
            raise InvalidModelSpec(f"model spec: {self.num_parameters()} parameters is over the limit {MAX_PARAMETERS}")

    @classmethod
    def for_dataset(cls, data: object, hidden: tuple[int, ...] = (64, 32), activation: str = "relu") -> ModelSpec:
        """The spec for a ``FlowDataset`` (uses its schema id, feature width and classes)."""
        features = data.features  # type: ignore[attr-defined]
        return cls(
            schema_id=data.schema_id,  # type: ignore[attr-defined]
            input_dim=int(features.shape[1]),
            hidden=tuple(hidden),
            classes=tuple(data.classes),  # type: ignore[attr-defined]
            activation=activation,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "version": SPEC_VERSION,
            "schema_id": self.schema_id,
            "input_dim": self.input_dim,
            "hidden": list(self.hidden),
            "classes": list(self.classes),
            "activation": self.activation,
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no whitespace, ASCII only."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def digest(self) -> str:
        """sha256 of :meth:`to_json`, as 64 hex characters."""
        return hashlib.sha256(self.to_json().encode("ascii")).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidModelSpec(f"model spec is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidModelSpec("model spec must be a JSON object")
        expected = {"version", "schema_id", "input_dim", "hidden", "classes", "activation"}
        if set(obj) != expected:
            raise InvalidModelSpec(
                f"model spec keys are {sorted(obj)}, expected {sorted(expected)}",
                hint="write the spec with ModelSpec.to_json()",
            )
        if obj["version"] != SPEC_VERSION:
            raise InvalidModelSpec(f"model spec version {obj['version']!r} is not supported (this build reads {SPEC_VERSION})")
        if not isinstance(obj["hidden"], list) or not isinstance(obj["classes"], list):
            raise InvalidModelSpec("model spec: hidden and classes must be lists")
        return cls(
            schema_id=obj["schema_id"],
            input_dim=obj["input_dim"],
            hidden=tuple(obj["hidden"]),
            classes=tuple(obj["classes"]),
            activation=obj["activation"],
        )

    def layer_sizes(self) -> tuple[int, ...]:
        return (self.input_dim, *self.hidden, len(self.classes))

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter, in sorted-name order (the order of files and updates)."""
        sizes = self.layer_sizes()
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"layers.{i:02d}.bias"] = (fan_out,)
            shapes[f"layers.{i:02d}.weight"] = (fan_out, fan_in)
        return dict(sorted(shapes.items()))

    def num_parameters(self) -> int:
        sizes = self.layer_sizes()
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


class FlowMLP(nn.Module):
    """A plain MLP over encoded flow features; logits over the spec's classes."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        sizes = spec.layer_sizes()
        # Zero-padded indices keep parameter names in the same order as sorted() does.
        self.layers = nn.ModuleDict(
            {f"{i:02d}": nn.Linear(a, b) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
        )
        self._act = nn.ReLU() if spec.activation == "relu" else nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self.layers.values())
        for layer in layers[:-1]:
            x = self._act(layer(x))
        return layers[-1](x)


def build_model(spec: ModelSpec) -> FlowMLP:
    """A fresh (randomly initialised from torch's global RNG) model for ``spec``."""
    return FlowMLP(spec)


def get_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters as float32 numpy arrays, in sorted-name order."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in sorted(model.state_dict().items())}


def set_weights(model: FlowMLP, weights: Mapping[str, np.ndarray]) -> FlowMLP:
    """Load ``weights`` into ``model`` after checking names and shapes against its spec."""
    check_weights(model.spec, weights)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32).copy()) for k, v in weights.items()})
    return model


def model_from_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> FlowMLP:
    return set_weights(build_model(spec), weights)


def init_model(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """Deterministic initial weights for ``spec`` (torch's default Linear init under ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_weights(build_model(spec))


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


def save_model_bytes(spec: ModelSpec, state: Mapping[str, np.ndarray | torch.Tensor]) -> bytes:
    """The canonical model file: safetensors, sorted names, float32 LE, metadata = spec JSON + format."""
    arrays = {
        k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)).astype(np.float32, copy=False)
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
