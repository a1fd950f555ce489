"""A masked update: the usual header (who, which round and base, samples, privacy spent), then d + 1 masked words.

The header stays in the clear and binds the update as in public mode; only the payload,
the member's fixed-point update and weight plus its masks, is hidden.
"""

from __future__ import annotations

import numpy as np

from federation.model import ModelSpec
from federation.secagg.quantise import vector_length
from federation.updates import InvalidUpdate, UpdateHeader, read_header


def encode_masked(header: UpdateHeader, masked: np.ndarray) -> bytes:
    if not header.masked:
        raise ValueError("a masked update needs a header marked masked")
    return header.pack() + np.ascontiguousarray(masked, dtype="<u4").tobytes()


def masked_size(spec: ModelSpec, header_size: int) -> int:
    return header_size + 4 * vector_length(spec)


def decode_masked(data: bytes, spec: ModelSpec) -> tuple[UpdateHeader, np.ndarray]:
    """The header and the masked words; :class:`InvalidUpdate` names what is wrong."""
    limit = masked_size(spec, 512)
    header = read_header(data, max_bytes=limit)
    if not header.masked:
        raise InvalidUpdate("not-masked", "a secure-aggregation round takes masked updates only")
    if header.spec_digest != spec.digest():
        raise InvalidUpdate("spec-mismatch", f"update is for model spec {header.spec_digest[:12]}…, not {spec.digest()[:12]}…")
    expected = masked_size(spec, header.size)
    if len(data) != expected:
        raise InvalidUpdate("size-mismatch", f"masked update is {len(data)} bytes; the model needs exactly {expected}")
    return header, np.frombuffer(data, dtype="<u4", offset=header.size).astype(np.uint32)
