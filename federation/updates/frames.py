"""Checking a zstd frame's structure without decompressing it.

Why by hand: the zstandard bindings decompress or report frame parameters, but do
not say where a frame ends. Walking the block headers (RFC 8878, section 3.1.1.2)
finds it in a few lines, so trailing bytes and skippable frames are refused before
any decompression.
"""

from __future__ import annotations

import zstandard

from federation.updates.errors import InvalidUpdate

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_frame_end(body: memoryview) -> int:
    """Byte length of the zstd frame at the start of ``body`` (walks the block headers; never decompresses)."""
    if bytes(body[:4]) != ZSTD_MAGIC:
        # Also refuses skippable frames, which a decoder would silently step over.
        raise InvalidUpdate("zstd", f"update payload does not start with a zstd frame (starts with {bytes(body[:4])!r})")
    try:
        pos = zstandard.frame_header_size(bytes(body[:18]))
        params = zstandard.get_frame_parameters(bytes(body[:18]))
    except zstandard.ZstdError as exc:
        raise InvalidUpdate("zstd", f"update payload is not a zstd frame: {exc}") from None
    while True:
        if pos + 3 > len(body):
            raise InvalidUpdate("zstd", "update payload ends inside a zstd block header")
        bh = int.from_bytes(body[pos : pos + 3], "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        if btype == 3:
            raise InvalidUpdate("zstd", "update payload has a reserved zstd block type")
        pos += 3 + (1 if btype == 1 else bsize)
        if last:
            break
    if params.has_checksum:
        pos += 4
    if pos > len(body):
        raise InvalidUpdate("zstd", "update payload ends inside a zstd block")
    return pos
