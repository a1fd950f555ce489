"""Error feedback: what the codec dropped this round is added to next round's delta.

Without it, top-k and int8 lose the small coordinates for good and the model
drifts; with it, every coordinate is eventually sent (Seide et al. 2014;
Lin et al., Deep Gradient Compression, 2018).  The residual lives only with
the participant and survives a restart via :meth:`ErrorFeedback.save`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.tensorfile import InvalidTensorFile, dump_tensors, load_tensors
from federation.updates import UpdateHeader, encode_update_with_reconstruction

STATE_FORMAT = "fedledger-error-feedback/1"


class ErrorFeedbackStateError(FedLedgerError):
    """The saved error-feedback state cannot be used (corrupt, or for another model)."""


class ErrorFeedback:
    """The participant's running residual for one model spec."""

    def __init__(self, spec: ModelSpec, residual: Mapping[str, np.ndarray] | None = None) -> None:
        self.spec = spec
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
        return ErrorFeedback(self.spec, self.residual)

    def residual_norm(self) -> float:
        return float(np.sqrt(sum(float(np.dot(r.ravel().astype(np.float64), r.ravel())) for r in self.residual.values())))

    def reset(self) -> None:
        """Forget the residual (e.g. when the federation's base model was replaced)."""
        for r in self.residual.values():
            r.fill(0.0)

    def to_bytes(self) -> bytes:
        return dump_tensors(self.residual, {"format": STATE_FORMAT, "spec_digest": self.spec.digest()})

    @classmethod
    def from_bytes(cls, data: bytes, spec: ModelSpec) -> ErrorFeedback:
        try:
            meta, tensors = load_tensors(data, max_bytes=(1 << 21) + 4 * spec.num_parameters())
        except InvalidTensorFile as exc:
            raise ErrorFeedbackStateError(f"error-feedback state is corrupt: {exc}", hint="delete it to start from zero") from None
        if meta != {"format": STATE_FORMAT, "spec_digest": spec.digest()}:
            raise ErrorFeedbackStateError(
                "error-feedback state belongs to another model spec or format",
                hint="delete the state file to start from a zero residual",
            )
        return cls(spec, tensors)

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a state."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(self.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, spec: ModelSpec) -> ErrorFeedback:
        """Load saved state; a missing file means a fresh (zero) residual."""
        path = Path(path)
        if not path.exists():
            return cls(spec)
        return cls.from_bytes(path.read_bytes(), spec)
