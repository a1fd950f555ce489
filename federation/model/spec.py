"""The model spec: what a federation trains (input width, hidden layers, classes, activation).

Its canonical JSON and digest go into the federation descriptor and every update
header, so the spec is plain data with one encoding (sorted keys, no whitespace,
ASCII); it needs no torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from faults import FedLedgerError

SPEC_VERSION = 1
ACTIVATIONS = ("relu", "tanh")
# A bound on what we are willing to load: 256M parameters is far above any
# flow classifier and keeps a hostile file from exhausting memory.
MAX_PARAMETERS = 256 * 1024 * 1024


class InvalidModelSpec(FedLedgerError):
    """A model spec that is malformed or does not fit the data it is used with."""


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
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidModelSpec(f"model spec is not JSON: {exc}") from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: object) -> ModelSpec:
        """A spec from its parsed JSON object, every field checked."""
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
        if not isinstance(obj["hidden"], list) or not isinstance(obj["classes"], list) or len(obj["classes"]) > 1000:
            raise InvalidModelSpec("model spec: hidden and classes must be lists (at most 1,000 classes)")
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
