"""The whole update file: header, optional DP section, one zstd frame holding the payload.

Encoding is deterministic (single-threaded zstd with content size and checksum);
decoding validates everything against the federation's model spec and never
allocates more than the spec's payload size, never loops on hostile input.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import zstandard

from federation.model import ModelSpec
from federation.updates.codec import (
    CodecParams,
    compress_delta,
    parse_payload,
    payload_size,
)
from federation.updates.errors import InvalidUpdate
from federation.updates.frames import zstd_frame_end
from federation.updates.header import (
    DP_SECTION_SIZE,
    HEADER_SIZE,
    UpdateHeader,
    read_header,
)

# zstd's window bounds the decoder's memory regardless of what a frame claims.
MAX_WINDOW = 1 << 27


def max_update_bytes(spec: ModelSpec, codec: CodecParams | None = None) -> int:
    """An upper bound on an honest update's size (dense float32 when ``codec`` is None)."""
    raw = payload_size(spec, codec or CodecParams())
    return HEADER_SIZE + DP_SECTION_SIZE + raw + raw // 128 + 4096  # zstd's worst case is a stored block per 128 KiB plus a frame header


def encode_update(header: UpdateHeader, delta: Mapping[str, np.ndarray], spec: ModelSpec | None = None) -> bytes:
    """Encode ``delta`` under ``header.codec``; the same inputs give the same bytes.

    The payload layout follows the sorted tensor names and shapes, taken from
    ``spec`` when given (and then checked against ``header.spec_digest``),
    else from ``delta`` itself; the decoder checks them against its spec.
    """
    data, _ = encode_update_with_reconstruction(header, delta, spec)
    return data


def encode_update_with_reconstruction(
    header: UpdateHeader, delta: Mapping[str, np.ndarray], spec: ModelSpec | None = None
) -> tuple[bytes, dict[str, np.ndarray]]:
    """Like :func:`encode_update`, also returning what the receiver will decode (for error feedback)."""
    if spec is not None:
        if header.spec_digest != spec.digest():
            raise InvalidUpdate("spec-mismatch", "header.spec_digest is not the digest of the given model spec")
        shapes = spec.tensor_shapes()
    else:
        shapes = {name: tuple(np.shape(delta[name])) for name in delta}
    raw, recon = compress_delta(shapes, header.codec, delta)
    # Single-threaded, with content size and checksum: deterministic bytes, and the
    # decoder can check the size before allocating anything.
    cctx = zstandard.ZstdCompressor(
        level=header.codec.zstd_level, write_checksum=True, write_content_size=True, threads=0
    )
    return header.pack() + cctx.compress(raw), recon


def decode_update(
    data: bytes, spec: ModelSpec, *, max_bytes: int | None = None
) -> tuple[UpdateHeader, dict[str, np.ndarray]]:
    """Validate and decode an update against ``spec``; returns the header and the dense float32 delta.

    Raises :class:`InvalidUpdate` with a reason code for anything malformed; never
    allocates more than the spec's payload size, never loops on hostile input.
    """
    data = bytes(data)
    limit = max_update_bytes(spec, None)  # dense float32 is the largest honest encoding
    if max_bytes is not None:
        limit = min(limit, max_bytes)
    header = read_header(data, max_bytes=limit)
    if header.masked:
        raise InvalidUpdate("masked", "a masked update (secure aggregation) only means something in the sum of its round")
    if header.spec_digest != spec.digest():
        raise InvalidUpdate(
            "spec-mismatch",
            f"update is for model spec {header.spec_digest[:12]}…, this federation's is {spec.digest()[:12]}…",
        )
    codec = header.codec
    expected = payload_size(spec, codec)
    body = memoryview(data)[header.size :]
    end = zstd_frame_end(body)
    if end != len(body):
        raise InvalidUpdate("trailing-bytes", f"update has {len(body) - end} bytes after its zstd frame")
    params = zstandard.get_frame_parameters(bytes(body[:18]))
    if params.content_size != expected:
        raise InvalidUpdate(
            "size-mismatch",
            f"update payload declares {params.content_size} bytes; spec and codec require exactly {expected}",
        )
    try:
        raw = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompress(bytes(body), max_output_size=expected)
    except zstandard.ZstdError as exc:
        raise InvalidUpdate("zstd", f"update payload does not decompress: {exc}") from None
    if len(raw) != expected:
        raise InvalidUpdate("size-mismatch", f"update payload is {len(raw)} bytes; spec and codec require {expected}")
    return header, parse_payload(spec, codec, memoryview(raw))
