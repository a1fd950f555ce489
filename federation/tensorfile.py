"""Canonical tensor files: safetensors bytes that depend only on the tensors.

The global model's on-chain digest is taken over these bytes, so the same
weights must give the same bytes on any machine and with any library version.
The ``safetensors`` package writes a valid file, but its header layout (key
order of the metadata map, padding) is an implementation detail that has
changed between releases; we therefore write the (tiny, documented) format
ourselves with every choice pinned, and read it back with strict checks so a
hostile file gets a typed error instead of a crash.  The output stays a plain
safetensors file: ``safetensors.numpy.load`` reads it (a test checks this).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping

import numpy as np

from faults import FedLedgerError

# Header bytes we accept before even parsing JSON; a model spec plus a few
# hundred tensor entries is a few KiB.
MAX_HEADER_BYTES = 1 << 20
_ALIGN = 8
_DTYPES: dict[str, np.dtype] = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}


class InvalidTensorFile(FedLedgerError):
    """A tensor file (model, strategy state, error-feedback state) that is not well formed.

    ``reason`` is a short machine-readable code, e.g. ``"truncated"``.
    """

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint=hint or "the file is corrupt or not a fedledger tensor file; fetch it again by its digest",
        )
        self.reason = reason


def _as_le_array(name: str, value: object) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch here
        value = value.detach().cpu().numpy()  # type: ignore[union-attr]
    arr = np.asarray(value)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (4, 8):
        raise InvalidTensorFile("dtype", f"tensor {name!r} has dtype {arr.dtype}; only float32/float64 are stored")
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))


def dump_tensors(tensors: Mapping[str, object], metadata: Mapping[str, str]) -> bytes:
    """Serialise ``tensors`` (name -> float array) with string ``metadata`` to canonical bytes.

    Tensors are laid out in sorted-name order; the JSON header has sorted keys,
    no whitespace, and is padded with spaces to 8 bytes as the format allows.
    """
    header: dict[str, object] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    arrays: list[np.ndarray] = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise InvalidTensorFile("name", "a tensor may not be called '__metadata__'")
        arr = _as_le_array(name, tensors[name])
        nbytes = arr.nbytes
        header[name] = {
            "dtype": _DTYPE_NAMES[arr.dtype],
            "shape": [int(s) for s in arr.shape],
            "data_offsets": [offset, offset + nbytes],
        }
        arrays.append(arr)
        offset += nbytes
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    hjson += b" " * ((-len(hjson)) % _ALIGN)
    parts = [struct.pack("<Q", len(hjson)), hjson]
    parts.extend(a.tobytes() for a in arrays)
    return b"".join(parts)


def load_tensors(data: bytes, *, max_bytes: int | None = None) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Parse canonical tensor bytes; returns ``(metadata, tensors)`` with fresh, writable arrays.

    Every offset, shape and dtype is checked; the data section must be covered
    exactly, in sorted-name order, with nothing left over.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidTensorFile("too-large", f"tensor file is {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < 8:
        raise InvalidTensorFile("truncated", f"tensor file is {len(data)} bytes, shorter than its 8-byte length prefix")
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen > MAX_HEADER_BYTES or 8 + hlen > len(data):
        raise InvalidTensorFile("header-size", f"tensor file declares a {hlen}-byte header, file has {len(data)} bytes")
    try:
        header = json.loads(bytes(data[8 : 8 + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTensorFile("header-json", f"tensor file header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidTensorFile("header-json", "tensor file header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise InvalidTensorFile("metadata", "tensor file metadata must map strings to strings")
    body = memoryview(data)[8 + hlen :]
    tensors: dict[str, np.ndarray] = {}
    expected_offset = 0
    for name in sorted(header):
        info = header[name]
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise InvalidTensorFile("tensor-entry", f"tensor {name!r}: entry must have dtype, shape and data_offsets")
        dtype = _DTYPES.get(info["dtype"]) if isinstance(info["dtype"], str) else None
        if dtype is None:
            raise InvalidTensorFile("dtype", f"tensor {name!r}: unsupported dtype {info['dtype']!r}")
        shape, offs = info["shape"], info["data_offsets"]
        if not (isinstance(shape, list) and all(type(s) is int and 0 <= s < 2**40 for s in shape)):
            raise InvalidTensorFile("shape", f"tensor {name!r}: shape {shape!r} is not a list of sizes")
        if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int for o in offs)):
            raise InvalidTensorFile("offsets", f"tensor {name!r}: data_offsets {offs!r} is not [begin, end]")
        count = math.prod(shape)  # Python integers: a hostile shape cannot wrap around int64
        if offs[0] != expected_offset or offs[1] - offs[0] != count * dtype.itemsize or offs[1] > len(body):
            raise InvalidTensorFile(
                "offsets",
                f"tensor {name!r}: data_offsets {offs} do not match its shape {shape} "
                f"at offset {expected_offset} in a {len(body)}-byte data section",
            )
        tensors[name] = np.frombuffer(body[offs[0] : offs[1]], dtype=dtype).reshape(shape).copy()
        expected_offset = offs[1]
    if expected_offset != len(body):
        raise InvalidTensorFile("trailing-bytes", f"tensor file has {len(body) - expected_offset} bytes after its last tensor")
    return dict(meta), tensors
