"""Error feedback: what the codec dropped this round is added to next round's delta.

Without it, top-k and int8 lose the small coordinates for good and the model
drifts; with it, every coordinate is eventually sent (Seide et al. 2014;
Lin et al., Deep Gradient Compression, 2018).  The residual lives only with
the participant and survives a restart via :meth:`ErrorFeedback.save`.

A residual belongs to one federation and one training mode: what plain training left
behind must never be added, un-noised, into a DP update, nor one federation's residual into
another's. Each is saved with its ``context`` (the federation and the mode) and a residual
saved under another context is dropped, not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.tensorfile import InvalidTensorFile, dump_tensors, load_tensors
from federation.updates import UpdateHeader, encode_update_with_reconstruction
from participant.statefiles import write_private

STATE_FORMAT = "fedledger-error-feedback/2"


class ErrorFeedbackStateError(FedLedgerError):
    """The saved error-feedback state cannot be used (corrupt, or for another model)."""


class ErrorFeedback:
    """The participant's running residual for one model spec."""

    def __init__(self, spec: ModelSpec, residual: Mapping[str, np.ndarray] | None = None, *, context: str = "") -> None:
        self.spec = spec
        self.context = context
        shapes = spec.tensor_shapes()
        if residual is None:
            self.residual = {k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}
        else:
            if set(residual) != set(shapes) or any(tuple(residual[k].shape) != s for k, s in shapes.items()):
                raise ErrorFeedbackStateError("error-feedback residual does not match the model spec's tensors")
            self.residual = {k: np.asarray(residual[k], dtype=np.float32).copy() for k in shapes}

    def encode(self, header: UpdateHeader, delta: Mapping[str, np.ndarray]) -> bytes:
        """Encode ``delta`` plus the carried residual; keep what the encoding lost as the new residual."""
        corrected = {k: np.asarray(delta[k], dtype=np.float32) + self.residual[k] for k in self.residual}
        data, sent = encode_update_with_reconstruction(header, corrected, self.spec)
        self.residual = {k: corrected[k] - sent[k] for k in corrected}
        return data

    def copy(self) -> ErrorFeedback:
        return ErrorFeedback(self.spec, self.residual, context=self.context)

    def residual_norm(self) -> float:
        return float(np.sqrt(sum(float(np.dot(r.ravel().astype(np.float64), r.ravel())) for r in self.residual.values())))

    def reset(self) -> None:
        """Forget the residual (e.g. when the federation's base model was replaced)."""
        for r in self.residual.values():
            r.fill(0.0)

    def to_bytes(self) -> bytes:
        return dump_tensors(
            self.residual, {"format": STATE_FORMAT, "spec_digest": self.spec.digest(), "context": self.context}
        )

    @classmethod
    def from_bytes(cls, data: bytes, spec: ModelSpec, context: str = "") -> ErrorFeedback:
        """The saved residual; a zero one when it was saved for another federation or mode."""
        try:
            meta, tensors = load_tensors(data, max_bytes=(1 << 21) + 4 * spec.num_parameters())
        except InvalidTensorFile as exc:
            raise ErrorFeedbackStateError(f"error-feedback state is corrupt: {exc}", hint="delete it to start from zero") from None
        if meta.get("format") != STATE_FORMAT or meta.get("spec_digest") != spec.digest() or set(meta) != {"format", "spec_digest", "context"}:
            return cls(spec, context=context)  # another model or format: nothing of it can be carried over
        if meta["context"] != context:
            return cls(spec, context=context)
        return cls(spec, tensors, context=context)

    def save(self, path: str | Path) -> None:
        """Write atomically, readable by the owner only (the residual is a function of private flows)."""
        write_private(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path, spec: ModelSpec, context: str = "") -> ErrorFeedback:
        """Load saved state; a missing file, or one saved under another context, means a fresh (zero) residual."""
        path = Path(path)
        if not path.exists():
            return cls(spec, context=context)
        return cls.from_bytes(path.read_bytes(), spec, context)
