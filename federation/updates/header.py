"""The update header: what an update binds, in one fixed binary layout.

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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from eth_utils import is_hex_address, to_checksum_address

from federation.privacy import ACCOUNTANTS, LEVELS, InvalidPrivacySettings, Mechanism
from federation.updates.codec import QUANT_CODES, QUANT_NAMES, CodecParams
from federation.updates.errors import InvalidUpdate

MAGIC = b"FLUP"
FORMAT_VERSION = 1
DP_FORMAT_VERSION = 2  # FORMAT_VERSION plus the DP section
_HEADER = struct.Struct("<4sH20sQ32s32sQQIBBI")
HEADER_SIZE = _HEADER.size  # 124
_DP_SECTION = struct.Struct("<ddIddBB")
DP_SECTION_SIZE = _DP_SECTION.size  # 38


def pack_dp(m: Mechanism) -> bytes:
    """The DP section of a mechanism (level and accountant as their index in the shared vocabulary)."""
    return _DP_SECTION.pack(
        float(m.noise_multiplier), float(m.sample_rate), m.steps, float(m.clip_norm), float(m.delta),
        LEVELS.index(m.level), ACCOUNTANTS.index(m.accountant),
    )  # fmt: skip


def unpack_dp(data: bytes | memoryview) -> Mechanism:
    sigma, q, steps, clip, delta, level, acc = _DP_SECTION.unpack_from(data, 0)
    if level >= len(LEVELS) or acc >= len(ACCOUNTANTS):
        raise InvalidUpdate("dp-section", f"DP section: unknown level code {level} or accountant code {acc}")
    try:
        return Mechanism(sigma, q, steps, clip, delta, LEVELS[level], ACCOUNTANTS[acc])
    except InvalidPrivacySettings as exc:
        raise InvalidUpdate("dp-section", f"DP section: {exc}") from None


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
    dp: Mechanism | None = None  # the DP mechanism behind epsilon_milli (format version 2)
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
        ) + (pack_dp(self.dp) if self.dp is not None else b"")  # fmt: skip


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
        dp = unpack_dp(memoryview(data)[HEADER_SIZE:])
    if ppm > 1_000_000:
        raise InvalidUpdate("codec", f"top-k of {ppm} parts per million is over 1,000,000")
    if quant not in QUANT_NAMES:
        raise InvalidUpdate("codec", f"unknown quantisation code {quant}")
    if quant == 0 and block != 0:
        raise InvalidUpdate("codec", "a float32 update must have block size 0")
    codec = CodecParams(topk=None if ppm == 0 else ppm / 1_000_000, quant=QUANT_NAMES[quant], block=block, zstd_level=level)
    if codec.topk_ppm != ppm:
        raise InvalidUpdate("codec", f"top-k of {ppm} parts per million is not canonical")
    return UpdateHeader(
        participant="0x" + bytes(addr).hex(), round_id=round_id, base_model=bytes(base).hex(),
        spec_digest=bytes(spec_d).hex(), num_samples=n, epsilon_milli=eps, codec=codec, dp=dp, format_version=version,
    )  # fmt: skip
