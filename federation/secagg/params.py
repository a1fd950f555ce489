"""The secure-aggregation parameters a federation fixes in its descriptor, and what follows from them.

``privacy = {"mode": "secure-aggregation", "threshold": t, "max_members": n, "clip": c,
"weight_cap": W, "share_seconds": s}``:

* ``max_members`` (n): the most members a round may have; a round whose eligible members
  with bound keys exceed it is refused (the fixed-point range below is sized for n);
* ``threshold`` (t): Shamir shares needed to reconstruct a member's secret. It must exceed
  n/2: every member reveals, for each peer, a share of its self-mask seed *or* of its mask
  key, never both, so with t > n/2 at most one of the two can ever be reconstructed. Any t
  members that pool the shares they hold can unmask one member: that is the collusion bound;
* ``clip`` (c): every coordinate of a member's update is clipped to [-c, c] before it is
  quantised, which bounds what any member can add to the sum;
* ``weight_cap`` (W): a member's weight is min(samples, W) / W, masked beside its update;
* ``share_seconds``: how long the share phase of a round stays open.

The fixed-point scale is 2^f with f the largest integer such that n · max(c, 1) · 2^f stays
below 2^31: the signed sum of n members' quantised values can then never wrap in Z_2^32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from faults import FedLedgerError

MODE = "secure-aggregation"
KEYS = ("threshold", "max_members", "clip", "weight_cap", "share_seconds")
MAX_MEMBERS = 1000
MIN_SCALE_BITS = 12  # below this the quantisation step (2^-12 of a weight unit) would cost accuracy


class InvalidSecureParams(FedLedgerError):
    """Secure-aggregation parameters that cannot give a sound protocol."""


@dataclass(frozen=True)
class SecureParams:
    threshold: int
    max_members: int
    clip: float = 1.0
    weight_cap: int = 10_000
    share_seconds: int = 60

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidSecureParams(
                "secure aggregation: " + "; ".join(problems),
                hint="e.g. --max-members 5 --threshold 3 (the threshold must exceed half the members)",
            )

    @classmethod
    def for_members(cls, max_members: int, threshold: int | None = None, **kw: Any) -> SecureParams:
        """Parameters for up to ``max_members`` with the smallest sound threshold unless one is given."""
        return cls(threshold=max_members // 2 + 1 if threshold is None else threshold, max_members=max_members, **kw)

    @property
    def scale_bits(self) -> int:
        return int(math.floor(math.log2((2**31 - 1) / (self.max_members * max(self.clip, 1.0)))))

    @property
    def scale(self) -> int:
        return 1 << self.scale_bits

    def weight_q(self, num_samples: int) -> int:
        """A member's quantised weight, round(min(samples, W) / W · 2^f), in exact integer arithmetic."""
        w = min(int(num_samples), self.weight_cap)
        return (w * self.scale * 2 + self.weight_cap) // (2 * self.weight_cap)

    def to_privacy(self) -> dict[str, Any]:
        return {"mode": MODE, "threshold": self.threshold, "max_members": self.max_members, "clip": self.clip,
                "weight_cap": self.weight_cap, "share_seconds": self.share_seconds}  # fmt: skip

    @classmethod
    def from_privacy(cls, privacy: Any) -> SecureParams:
        if not isinstance(privacy, dict) or privacy.get("mode") != MODE:
            raise InvalidSecureParams("the descriptor's privacy section is not secure aggregation")
        extra = sorted(set(privacy) - {"mode", *KEYS})
        missing = sorted(set(KEYS) - set(privacy))
        if extra or missing:
            raise InvalidSecureParams(f"secure aggregation: unknown keys {extra}, missing keys {missing}")
        values = {k: privacy[k] for k in KEYS}
        if not all(type(values[k]) is int for k in ("threshold", "max_members", "weight_cap", "share_seconds")):
            raise InvalidSecureParams("secure aggregation: threshold, max_members, weight_cap and share_seconds are integers")
        if isinstance(values["clip"], bool) or not isinstance(values["clip"], (int, float)):
            raise InvalidSecureParams("secure aggregation: clip is a number")
        return cls(**{**values, "clip": float(values["clip"])})


def _problems(p: SecureParams) -> list[str]:
    bad = []
    if not (isinstance(p.max_members, int) and 2 <= p.max_members <= MAX_MEMBERS):
        bad.append(f"max_members must be 2..{MAX_MEMBERS}, got {p.max_members!r}")
        return bad
    if not (isinstance(p.threshold, int) and p.max_members // 2 < p.threshold <= p.max_members):
        bad.append(f"threshold must exceed half of max_members ({p.max_members}) and not exceed it, got {p.threshold!r}")
    if not (isinstance(p.clip, (int, float)) and math.isfinite(p.clip) and 1e-6 <= p.clip <= 1e3):
        bad.append(f"clip must be a number in 1e-6..1000, got {p.clip!r}")
    elif p.scale_bits < MIN_SCALE_BITS:
        bad.append(f"clip {p.clip} with {p.max_members} members leaves only {p.scale_bits} bits of precision")
    if not (isinstance(p.weight_cap, int) and 1 <= p.weight_cap <= 1 << 40):
        bad.append(f"weight_cap must be 1..2^40 samples, got {p.weight_cap!r}")
    if not (isinstance(p.share_seconds, int) and 1 <= p.share_seconds <= 86_400):
        bad.append(f"share_seconds must be 1..86400, got {p.share_seconds!r}")
    return bad
