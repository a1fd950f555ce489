"""The update header: what an update binds, in one fixed binary layout.

Layout (all integers little-endian)::

    0   4  magic  b"FLUP"
    4   2  format version (3)
    6   1  flags: bit 0 = a DP section follows the header; bit 1 = masked (secure aggregation)
    7   8  chain id of the ledger
   15  20  ledger address
   35  20  participant address
   55   8  round id
   63  32  base-model digest (the root digest the chain records)
   95  32  model-spec digest
  127   8  num_samples
  135   8  epsilon_milli (privacy spent this round, x1000; 0 = no DP)
  143   4  top-k fraction in parts per million (0 = dense)
  147   1  quantisation (0 = float32, 1 = int8)
  148   1  zstd level used
  149   4  quantisation block size (0 = one scale per tensor)
  153   .  the DP section (when flagged), then one zstd frame holding the payload

The update binds the chain, the ledger, the round and the base model, so it cannot be
replayed in another federation, another round or on another base. With differential
privacy, a 38-byte DP section declares the mechanism the claimed ``epsilon_milli`` comes
from, so the coordinator and any auditor can recompute that epsilon (and compose a
member's spend across rounds) instead of taking it on trust::

    0   8  noise multiplier (float64)
    8   8  sample rate (float64, in (0, 1])
   16   4  steps (uint32)
   20   8  clipping norm (float64)
   28   8  delta (float64, in (0, 1))
   36   1  level (0 = record-level DP-SGD, 1 = client-level update noising)
   37   1  accountant (0 = RDP, 1 = PRV)

The header is fixed-size binary rather than JSON so that there is exactly one encoding of
each header and nothing to parse ambiguously on hostile input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from eth_utils import is_hex_address, to_checksum_address

from federation.privacy import ACCOUNTANTS, LEVELS, InvalidPrivacySettings, Mechanism
from federation.updates.codec import QUANT_CODES, QUANT_NAMES, CodecParams
from federation.updates.errors import InvalidUpdate

MAGIC = b"FLUP"
FORMAT_VERSION = 3
FLAG_DP = 0x01
FLAG_MASKED = 0x02
_KNOWN_FLAGS = FLAG_DP | FLAG_MASKED
_HEADER = struct.Struct("<4sHBQ20s20sQ32s32sQQIBBI")
HEADER_SIZE = _HEADER.size  # 153
NO_LEDGER = "0x" + "00" * 20  # what a header binds when made outside any federation (simulations)
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
    """What an update binds: which chain and ledger, who, which round and base, how many samples, how encoded, privacy spent."""

    participant: str
    round_id: int
    base_model: str  # 64 hex chars
    spec_digest: str  # 64 hex chars
    num_samples: int
    epsilon_milli: int = 0
    codec: CodecParams = field(default_factory=CodecParams)
    dp: Mechanism | None = None  # the DP mechanism behind epsilon_milli
    chain_id: int = 0
    ledger: str = NO_LEDGER
    masked: bool = False  # a secure-aggregation update: the payload is a masked fixed-point vector

    def __post_init__(self) -> None:
        for name in ("participant", "ledger"):
            value = getattr(self, name)
            if not isinstance(value, str) or not is_hex_address(value):
                raise InvalidUpdate("header", f"{name} {value!r} is not a 20-byte hex address")
            object.__setattr__(self, name, to_checksum_address(value))
        for name in ("base_model", "spec_digest"):
            value = getattr(self, name)
            digest = value.removeprefix("0x").lower() if isinstance(value, str) else ""
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InvalidUpdate("header", f"{name} {value!r} is not a 32-byte hex digest")
            object.__setattr__(self, name, digest)
        for name, low in (("round_id", 0), ("num_samples", 1), ("epsilon_milli", 0), ("chain_id", 0)):
            value = getattr(self, name)
            if type(value) is not int or not low <= value < 2**63:
                raise InvalidUpdate("header", f"{name} must be an integer in {low}..2^63-1, got {value!r}")
        if self.dp is not None and self.epsilon_milli == 0:
            raise InvalidUpdate("dp-section", "an update with a DP section must claim the epsilon it spent (epsilon_milli > 0)")
        if self.masked and self.codec != CodecParams():
            raise InvalidUpdate("codec", "a masked update carries no codec: its header must hold the default one")

    @property
    def format_version(self) -> int:
        return FORMAT_VERSION

    @property
    def size(self) -> int:
        """Bytes before the zstd frame."""
        return HEADER_SIZE + (DP_SECTION_SIZE if self.dp is not None else 0)

    def pack(self) -> bytes:
        c = self.codec
        flags = (FLAG_DP if self.dp is not None else 0) | (FLAG_MASKED if self.masked else 0)
        return _HEADER.pack(
            MAGIC, FORMAT_VERSION, flags, self.chain_id, bytes.fromhex(self.ledger[2:]), bytes.fromhex(self.participant[2:]),
            self.round_id, bytes.fromhex(self.base_model), bytes.fromhex(self.spec_digest), self.num_samples,
            self.epsilon_milli, c.topk_ppm, QUANT_CODES[c.quant], c.zstd_level, c.block,
        ) + (pack_dp(self.dp) if self.dp is not None else b"")  # fmt: skip


def read_header(data: bytes, *, max_bytes: int | None = None) -> UpdateHeader:
    """Parse and check the fixed header only (cheap; before fetching a spec or decoding)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidUpdate("too-large", f"update is {len(data)} bytes, over the limit of {max_bytes}")
    if len(data) < HEADER_SIZE:
        raise InvalidUpdate("truncated", f"update is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header")
    (magic, version, flags, chain_id, ledger, addr, round_id, base, spec_d, n, eps, ppm, quant, level, block) = (
        _HEADER.unpack_from(data, 0)
    )
    if magic != MAGIC:
        raise InvalidUpdate("magic", f"not a fedledger update (starts with {bytes(magic)!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise InvalidUpdate("version", f"update format version {version} is not supported (this build reads {FORMAT_VERSION})")
    if flags & ~_KNOWN_FLAGS:
        raise InvalidUpdate("header", f"update header flags {flags:#04x} hold unknown bits")
    dp = None
    if flags & FLAG_DP:
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
        spec_digest=bytes(spec_d).hex(), num_samples=n, epsilon_milli=eps, codec=codec, dp=dp, chain_id=chain_id,
        ledger="0x" + bytes(ledger).hex(), masked=bool(flags & FLAG_MASKED),
    )  # fmt: skip
