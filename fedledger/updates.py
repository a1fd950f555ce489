"""The update file: what a participant uploads each round, and how anyone decodes it.

Layout (all integers little-endian)::

    0   4  magic  b"FLUP"
    4   2  format version (1)
    6  20  participant address
   26   8  round id
   34  32  base-model digest (sha256 of the canonical model file)
   66  32  model-spec digest
   98   8  num_samples
  106   8  epsilon_milli (privacy spent this round, x1000; 0 = no DP)
  114   4  top-k fraction in parts per million (0 = dense)
  118   1  quantisation (0 = float32, 1 = int8)
  119   1  zstd level used
  120   4  quantisation block size (0 = one scale per tensor)
  124   .  one zstd frame holding the payload

Version 2 is version 1 with a 38-byte DP section between the header and the
zstd frame, present exactly when the participant trained under differential
privacy: it declares the mechanism the claimed ``epsilon_milli`` comes from,
so the coordinator and any auditor can recompute that epsilon (and compose
a member's spend across rounds) instead of taking it on trust::

  124   8  noise multiplier (float64)
  132   8  sample rate (float64, in (0, 1])
  140   4  steps (uint32)
  144   8  clipping norm (float64)
  152   8  delta (float64, in (0, 1))
  160   1  level (0 = record-level DP-SGD, 1 = client-level update noising)
  161   1  accountant (0 = RDP, 1 = PRV)
  162   .  one zstd frame holding the payload

The header is fixed-size binary rather than JSON so that there is exactly one
encoding of each header and nothing to parse ambiguously on hostile input.
The payload layout is fully determined by the model spec and the codec
parameters, so its exact size is known before decompressing (which bounds
the decompression and rejects zip bombs).  For each tensor in sorted-name
order, the payload holds three sections, concatenated per section across
tensors: indices (top-k only: gaps between sorted flat indices as uint32,
byte-plane shuffled so zstd removes the all-zero high bytes), scales (int8
only: float32, one per block of kept values), values (float32 or int8).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import zstandard
from eth_utils import is_hex_address, to_checksum_address

from fedledger.errors import FedLedgerError
from fedledger.model import ModelSpec

MAGIC = b"FLUP"
FORMAT_VERSION = 1
DP_FORMAT_VERSION = 2  # FORMAT_VERSION plus the DP section
_HEADER = struct.Struct("<4sH20sQ32s32sQQIBBI")
HEADER_SIZE = _HEADER.size  # 124
_DP_SECTION = struct.Struct("<ddIddBB")
DP_SECTION_SIZE = _DP_SECTION.size  # 38
DP_LEVELS = ("record", "client")
DP_ACCOUNTANTS = ("rdp", "prv")
QUANT_CODES = {"none": 0, "int8": 1}
_QUANT_NAMES = {v: k for k, v in QUANT_CODES.items()}
MAX_BLOCK = 1 << 20
MIN_BLOCK = 8
# zstd's window bounds the decoder's memory regardless of what a frame claims.
MAX_WINDOW = 1 << 27
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class InvalidUpdate(FedLedgerError):
    """An update that fails validation; ``reason`` is a short code recorded in the round manifest.

    Reason codes: ``too-large``, ``truncated``, ``magic``, ``version``, ``header``,
    ``spec-mismatch``, ``codec``, ``zstd``, ``size-mismatch``, ``trailing-bytes``,
    ``indices``, ``scales``, ``values``, ``non-finite``, ``shape-mismatch``, ``dp-section``.
    """

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "the update is rejected; the participant must re-encode and resubmit it")
        self.reason = reason


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


@dataclass(frozen=True)
class DPParams:
    """The DP mechanism behind an update's epsilon: enough to recompute it with the same accountant."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    clip_norm: float
    delta: float
    level: str = "record"
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        def finite_pos(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0

        problems = []
        if not finite_pos(self.noise_multiplier):
            problems.append(f"noise multiplier {self.noise_multiplier!r} is not a finite number > 0")
        if not (finite_pos(self.sample_rate) and self.sample_rate <= 1):
            problems.append(f"sample rate {self.sample_rate!r} is not in (0, 1]")
        if type(self.steps) is not int or not 1 <= self.steps < 2**32:
            problems.append(f"steps {self.steps!r} is not an integer in 1..2^32-1")
        if not finite_pos(self.clip_norm):
            problems.append(f"clipping norm {self.clip_norm!r} is not a finite number > 0")
        if not (finite_pos(self.delta) and self.delta < 1):
            problems.append(f"delta {self.delta!r} is not in (0, 1)")
        if self.level not in DP_LEVELS:
            problems.append(f"level {self.level!r} is not one of {DP_LEVELS}")
        if self.accountant not in DP_ACCOUNTANTS:
            problems.append(f"accountant {self.accountant!r} is not one of {DP_ACCOUNTANTS}")
        if problems:
            raise InvalidUpdate("dp-section", "DP section: " + "; ".join(problems))

    def pack(self) -> bytes:
        return _DP_SECTION.pack(
            float(self.noise_multiplier), float(self.sample_rate), self.steps, float(self.clip_norm), float(self.delta),
            DP_LEVELS.index(self.level), DP_ACCOUNTANTS.index(self.accountant),
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes | memoryview) -> DPParams:
        sigma, q, steps, clip, delta, level, acc = _DP_SECTION.unpack_from(data, 0)
        if level >= len(DP_LEVELS) or acc >= len(DP_ACCOUNTANTS):
            raise InvalidUpdate("dp-section", f"DP section: unknown level code {level} or accountant code {acc}")
        return cls(sigma, q, steps, clip, delta, DP_LEVELS[level], DP_ACCOUNTANTS[acc])

    def to_dict(self) -> dict[str, object]:
        return {
            "noise_multiplier": self.noise_multiplier, "sample_rate": self.sample_rate, "steps": self.steps,
            "clip_norm": self.clip_norm, "delta": self.delta, "level": self.level, "accountant": self.accountant,
        }  # fmt: skip


@dataclass(frozen=True)
class UpdateHeader:
    """What an update binds: who, which round, which base model, how many samples, how encoded, privacy spent."""

    participant: str
    round_id: int
    base_model: str  # 64 hex chars
    spec_digest: str  # 64 hex chars
    num_samples: int
    epsilon_milli: int = 0
    codec: CodecParams = field(default_factory=CodecParams)
    dp: DPParams | None = None  # the DP mechanism behind epsilon_milli (format version 2)
    format_version: int = 0  # 0: derived (1 without a DP section, 2 with one)

    def __post_init__(self) -> None:
        if not isinstance(self.participant, str) or not is_hex_address(self.participant):
            raise InvalidUpdate("header", f"participant {self.participant!r} is not a 20-byte hex address")
        object.__setattr__(self, "participant", to_checksum_address(self.participant))
        for name in ("base_model", "spec_digest"):
            value = getattr(self, name)
            digest = value.removeprefix("0x").lower() if isinstance(value, str) else ""
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InvalidUpdate("header", f"{name} {value!r} is not a 32-byte hex digest")
            object.__setattr__(self, name, digest)
        for name, low in (("round_id", 0), ("num_samples", 1), ("epsilon_milli", 0)):
            value = getattr(self, name)
            if type(value) is not int or not low <= value < 2**63:
                raise InvalidUpdate("header", f"{name} must be an integer in {low}..2^63-1, got {value!r}")
        expected = FORMAT_VERSION if self.dp is None else DP_FORMAT_VERSION
        if self.format_version == 0:
            object.__setattr__(self, "format_version", expected)
        elif self.format_version != expected:
            raise InvalidUpdate(
                "version", f"update format version {self.format_version} does not match its DP section (expected {expected})"
            )
        if self.dp is not None and self.epsilon_milli == 0:
            raise InvalidUpdate("dp-section", "an update with a DP section must claim the epsilon it spent (epsilon_milli > 0)")

    @property
    def size(self) -> int:
        """Bytes before the zstd frame."""
        return HEADER_SIZE + (DP_SECTION_SIZE if self.dp is not None else 0)

    def pack(self) -> bytes:
        c = self.codec
        return _HEADER.pack(
            MAGIC, self.format_version, bytes.fromhex(self.participant[2:]), self.round_id,
            bytes.fromhex(self.base_model), bytes.fromhex(self.spec_digest), self.num_samples,
            self.epsilon_milli, c.topk_ppm, QUANT_CODES[c.quant], c.zstd_level, c.block,
        ) + (self.dp.pack() if self.dp is not None else b"")  # fmt: skip


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


def max_update_bytes(spec: ModelSpec, codec: CodecParams | None = None) -> int:
    """An upper bound on an honest update's size (dense float32 when ``codec`` is None)."""
    raw = payload_size(spec, codec or CodecParams())
    return HEADER_SIZE + DP_SECTION_SIZE + raw + raw // 128 + 4096  # zstd's worst case is a stored block per 128 KiB plus a frame header


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


def check_delta(shapes: ModelSpec | Mapping[str, tuple[int, ...]], delta: Mapping[str, np.ndarray]) -> None:
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
    check_delta(shapes, delta)
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


def read_header(data: bytes, *, max_bytes: int | None = None) -> UpdateHeader:
    """Parse and check the fixed header only (cheap; before fetching a spec or decoding)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidUpdate("too-large", f"update is {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < HEADER_SIZE:
        raise InvalidUpdate("truncated", f"update is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header")
    (magic, version, addr, round_id, base, spec_d, n, eps, ppm, quant, level, block) = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise InvalidUpdate("magic", f"not a fedledger update (starts with {bytes(magic)!r}, expected {MAGIC!r})")
    if version not in (FORMAT_VERSION, DP_FORMAT_VERSION):
        raise InvalidUpdate(
            "version",
            f"update format version {version} is not supported (this build reads {FORMAT_VERSION} and {DP_FORMAT_VERSION})",
        )
    dp = None
    if version == DP_FORMAT_VERSION:
        if len(data) < HEADER_SIZE + DP_SECTION_SIZE:
            raise InvalidUpdate("truncated", f"update is {len(data)} bytes, shorter than its header and DP section")
        dp = DPParams.unpack(memoryview(data)[HEADER_SIZE:])
    if ppm > 1_000_000:
        raise InvalidUpdate("codec", f"top-k of {ppm} parts per million is over 1,000,000")
    if quant not in _QUANT_NAMES:
        raise InvalidUpdate("codec", f"unknown quantisation code {quant}")
    if quant == 0 and block != 0:
        raise InvalidUpdate("codec", "a float32 update must have block size 0")
    codec = CodecParams(topk=None if ppm == 0 else ppm / 1_000_000, quant=_QUANT_NAMES[quant], block=block, zstd_level=level)
    if codec.topk_ppm != ppm:
        raise InvalidUpdate("codec", f"top-k of {ppm} parts per million is not canonical")
    return UpdateHeader(
        participant="0x" + bytes(addr).hex(), round_id=round_id, base_model=bytes(base).hex(),
        spec_digest=bytes(spec_d).hex(), num_samples=n, epsilon_milli=eps, codec=codec, dp=dp, format_version=version,
    )  # fmt: skip


def _zstd_frame_end(body: memoryview) -> int:
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
    if header.spec_digest != spec.digest():
        raise InvalidUpdate(
            "spec-mismatch",
            f"update is for model spec {header.spec_digest[:12]}…, this federation's is {spec.digest()[:12]}…",
        )
    codec = header.codec
    expected = payload_size(spec, codec)
    body = memoryview(data)[header.size :]
    end = _zstd_frame_end(body)
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
    return header, _parse_payload(spec, codec, memoryview(raw))


def _parse_payload(spec: ModelSpec, codec: CodecParams, raw: memoryview) -> dict[str, np.ndarray]:
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
