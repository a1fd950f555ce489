"""The payload codec: how a delta becomes bytes (top-k, int8 with block scales, float32) and back.

The payload layout is fully determined by the model spec and the codec parameters,
so its exact size is known before decompressing (which bounds the decompression
and rejects zip bombs). For each tensor in sorted-name order the payload holds
three sections, concatenated per section across tensors: indices (top-k only:
gaps between sorted flat indices as uint32, byte-plane shuffled so zstd removes
the all-zero high bytes), scales (int8 only: float32, one per block of kept
values), values (float32 or int8). The zstd frame around it is
:mod:`federation.updates.format`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from federation.model import ModelSpec
from federation.updates.errors import InvalidUpdate

QUANT_CODES = {"none": 0, "int8": 1}
QUANT_NAMES = {v: k for k, v in QUANT_CODES.items()}
MAX_BLOCK = 1 << 20
MIN_BLOCK = 8


@dataclass(frozen=True)
class CodecParams:
    """How a delta is compressed: optional top-k, optional int8 with per-tensor or per-block scales, zstd."""

    topk: float | None = None  # fraction of each tensor's entries kept; None = dense
    quant: str = "none"  # "none" (float32) or "int8"
    block: int = 0  # int8 scale block size; 0 = one scale per tensor
    zstd_level: int = 3

    def __post_init__(self) -> None:
        if self.topk is not None and not (isinstance(self.topk, (int, float)) and 1e-6 <= self.topk <= 1.0):
            raise InvalidUpdate("codec", f"top-k fraction must be in [1e-6, 1], got {self.topk!r}")
        if self.quant not in QUANT_CODES:
            raise InvalidUpdate("codec", f"quantisation must be one of {sorted(QUANT_CODES)}, got {self.quant!r}")
        if type(self.block) is not int or not (self.block == 0 or MIN_BLOCK <= self.block <= MAX_BLOCK):
            raise InvalidUpdate("codec", f"block size must be 0 or in {MIN_BLOCK}..{MAX_BLOCK}, got {self.block!r}")
        if type(self.zstd_level) is not int or not 1 <= self.zstd_level <= 22:
            raise InvalidUpdate("codec", f"zstd level must be in 1..22, got {self.zstd_level!r}")

    @property
    def topk_ppm(self) -> int:
        return 0 if self.topk is None else max(1, min(1_000_000, round(self.topk * 1_000_000)))

    @classmethod
    def parse(cls, text: str) -> CodecParams:
        """Parse the CLI form: ``none``, ``int8``, ``int8:block=256``, ``topk:0.01+int8``, ``topk:0.01+int8:256``, ``zstd=9`` parts."""
        topk: float | None = None
        quant, block, level = "none", 0, 3
        for part in [p for p in text.strip().lower().split("+") if p]:
            name, _, arg = part.partition(":")
            try:
                if name == "none":
                    continue
                if name == "topk":
                    topk = float(arg)
                elif name == "int8":
                    quant = "int8"
                    if arg:
                        block = int(arg.removeprefix("block="))
                elif name.startswith("zstd"):
                    level = int(arg or name.partition("=")[2])
                else:
                    raise ValueError(name)
            except ValueError:
                raise InvalidUpdate(
                    "codec",
                    f"codec {text!r}: cannot read {part!r}",
                    hint="e.g. none, int8, int8:256, topk:0.01+int8:256, topk:0.05+int8+zstd:9",
                ) from None
        return cls(topk=topk, quant=quant, block=block, zstd_level=level)

    def describe(self) -> str:
        parts = [] if self.topk is None else [f"topk:{self.topk:g}"]
        if self.quant == "int8":
            parts.append("int8" if self.block == 0 else f"int8:{self.block}")
        return "+".join(parts) or "none"

    def to_dict(self) -> dict[str, object]:
        return {"topk": self.topk, "quant": self.quant, "block": self.block, "zstd_level": self.zstd_level}


def _kept(n: int, topk_ppm: int) -> int:
    """Entries kept of an n-entry tensor: ceil(n * fraction), at least one (integer maths, no float rounding)."""
    return n if topk_ppm == 0 else max(1, min(n, (n * topk_ppm + 999_999) // 1_000_000))


def _blocks(k: int, quant: int, block: int) -> int:
    if quant == 0 or k == 0:
        return 0
    return 1 if block == 0 else -(-k // block)


def payload_size(spec: ModelSpec, codec: CodecParams) -> int:
    """Exact decompressed payload size for ``spec`` under ``codec``."""
    total = 0
    q = QUANT_CODES[codec.quant]
    for shape in spec.tensor_shapes().values():
        k = _kept(int(np.prod(shape)), codec.topk_ppm)
        total += (4 * k if codec.topk_ppm else 0) + 4 * _blocks(k, q, codec.block) + k * (1 if q else 4)
    return total


def _select_topk(flat: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the k largest |values|; ties broken by lower index so the choice is the same everywhere."""
    n = flat.size
    if k >= n:
        return np.arange(n, dtype=np.int64)
    mag = np.abs(flat)
    threshold = np.partition(mag, n - k)[n - k]
    above = np.flatnonzero(mag > threshold)
    ties = np.flatnonzero(mag == threshold)[: k - above.size]
    return np.sort(np.concatenate([above, ties]))


def _quantise(values: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8: per block, scale = max|v| / 127, q = round(v / scale)."""
    k = values.size
    size = k if block == 0 else block
    nb = _blocks(k, 1, block)
    padded = np.zeros(nb * size, dtype=np.float32)
    padded[:k] = values
    blocks = padded.reshape(nb, size)
    scales = (np.max(np.abs(blocks), axis=1) / np.float32(127.0)).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(blocks / safe[:, None]), -127, 127).astype(np.int8)
    return scales, q.reshape(-1)[:k]


def _dequantise(q: np.ndarray, scales: np.ndarray, block: int) -> np.ndarray:
    k = q.size
    size = k if block == 0 else block
    per_entry = np.repeat(scales, size)[:k]
    return q.astype(np.float32) * per_entry


def _shuffle_u32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a.astype("<u4").view(np.uint8).reshape(-1, 4).T).tobytes()


def _unshuffle_u32(b: bytes | memoryview, count: int) -> np.ndarray:
    planes = np.frombuffer(b, dtype=np.uint8).reshape(4, count)
    return np.ascontiguousarray(planes.T).view("<u4").reshape(-1).astype(np.int64)


def check_tensors(shapes: ModelSpec | Mapping[str, tuple[int, ...]], delta: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`InvalidUpdate` unless ``delta`` has exactly the given tensors (or a spec's) with finite values."""
    if isinstance(shapes, ModelSpec):
        shapes = shapes.tensor_shapes()
    if set(delta) != set(shapes):
        raise InvalidUpdate(
            "shape-mismatch",
            f"delta tensors {sorted(delta)} do not match the model spec's {sorted(shapes)}",
        )
    for name, shape in shapes.items():
        arr = np.asarray(delta[name])
        if arr.shape != tuple(shape):
            raise InvalidUpdate("shape-mismatch", f"delta tensor {name!r} has shape {arr.shape}, the spec says {shape}")
        if not np.all(np.isfinite(arr)):
            raise InvalidUpdate("non-finite", f"delta tensor {name!r} holds NaN or infinite values")


def compress_delta(
    shapes: ModelSpec | Mapping[str, tuple[int, ...]], codec: CodecParams, delta: Mapping[str, np.ndarray]
) -> tuple[bytes, dict[str, np.ndarray]]:
    """The raw (uncompressed) payload and the delta the receiver will reconstruct from it.

    The reconstruction is what error feedback subtracts to find what was lost.
    """
    if isinstance(shapes, ModelSpec):
        shapes = shapes.tensor_shapes()
    check_tensors(shapes, delta)
    quant = QUANT_CODES[codec.quant]
    idx_parts: list[bytes] = []
    scale_parts: list[bytes] = []
    value_parts: list[bytes] = []
    recon: dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        flat = np.asarray(delta[name], dtype=np.float32).reshape(-1)
        k = _kept(flat.size, codec.topk_ppm)
        if codec.topk_ppm:
            idx = _select_topk(flat, k)
            gaps = np.diff(idx, prepend=0)
            gaps[1:] -= 1  # strictly increasing indices: store gap-1 so runs of neighbours are zeros
            idx_parts.append(_shuffle_u32(gaps))
            values = flat[idx]
        else:
            idx = None
            values = flat
        if quant:
            scales, q = _quantise(values, codec.block)
            scale_parts.append(scales.astype("<f4").tobytes())
            value_parts.append(q.tobytes())
            sent = _dequantise(q, scales, codec.block)
        else:
            value_parts.append(values.astype("<f4").tobytes())
            sent = values.astype(np.float32)
        full = np.zeros(flat.size, dtype=np.float32)
        if idx is None:
            full[:] = sent
        else:
            full[idx] = sent
        recon[name] = full.reshape(shape)
    return b"".join(idx_parts + scale_parts + value_parts), recon


def parse_payload(spec: ModelSpec, codec: CodecParams, raw: memoryview) -> dict[str, np.ndarray]:
    quant = QUANT_CODES[codec.quant]
    shapes = spec.tensor_shapes()
    layout = []
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        k = _kept(n, codec.topk_ppm)
        layout.append((name, shape, n, k, _blocks(k, quant, codec.block)))
    pos = 0
    indices: dict[str, np.ndarray | None] = {}
    for name, _, n, k, _ in layout:
        if not codec.topk_ppm:
            indices[name] = None
            continue
        gaps = _unshuffle_u32(raw[pos : pos + 4 * k], k)
        pos += 4 * k
        gaps[1:] += 1
        idx = np.cumsum(gaps)  # int64: no overflow for k * 2^32
        if idx[-1] >= n:
            raise InvalidUpdate("indices", f"tensor {name!r}: sparse index {int(idx[-1])} is out of bounds for {n} entries")
        indices[name] = idx
    scales: dict[str, np.ndarray] = {}
    for name, _, _, _, nb in layout:
        s = np.frombuffer(raw[pos : pos + 4 * nb], dtype="<f4").astype(np.float32)
        pos += 4 * nb
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise InvalidUpdate("scales", f"tensor {name!r}: quantisation scales must be finite and non-negative")
        scales[name] = s
    out: dict[str, np.ndarray] = {}
    for name, shape, n, k, _ in layout:
        if quant:
            q = np.frombuffer(raw[pos : pos + k], dtype=np.int8)
            pos += k
            if np.any(q == -128):
                raise InvalidUpdate("values", f"tensor {name!r}: int8 value -128 is outside the symmetric range")
            with np.errstate(over="ignore"):
                values = _dequantise(q, scales[name], codec.block)
        else:
            values = np.frombuffer(raw[pos : pos + 4 * k], dtype="<f4").astype(np.float32)
            pos += 4 * k
        if not np.all(np.isfinite(values)):
            raise InvalidUpdate("non-finite", f"tensor {name!r}: decoded values include NaN or infinity")
        idx = indices[name]
        if idx is None:
            full = values
        else:
            full = np.zeros(n, dtype=np.float32)
            full[idx] = values
        out[name] = full.reshape(shape)
    # pos == len(raw) holds by construction of payload_size; assert guards a layout bug, not input.
    assert pos == len(raw), (pos, len(raw))
    return out
