"""The update file: what a participant uploads each round, and how anyone decodes it.

- :mod:`federation.updates.header`: the fixed binary header and its DP section;
- :mod:`federation.updates.codec`: the payload (top-k, int8, float32) of a delta;
- :mod:`federation.updates.frames`: the zstd frame's structure, checked before decompressing;
- :mod:`federation.updates.format`: the whole file, encoded and decoded.
"""

from federation.updates.codec import (
    QUANT_CODES,
    CodecParams,
    check_tensors,
    compress_delta,
    payload_size,
)
from federation.updates.errors import InvalidUpdate
from federation.updates.format import (
    decode_update,
    encode_update,
    encode_update_with_reconstruction,
    max_update_bytes,
)
from federation.updates.header import (
    DP_SECTION_SIZE,
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    NO_LEDGER,
    UpdateHeader,
    read_header,
)

__all__ = [
    "DP_SECTION_SIZE",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "NO_LEDGER",
    "QUANT_CODES",
    "CodecParams",
    "InvalidUpdate",
    "UpdateHeader",
    "check_tensors",
    "compress_delta",
    "decode_update",
    "encode_update",
    "encode_update_with_reconstruction",
    "max_update_bytes",
    "payload_size",
    "read_header",
]
