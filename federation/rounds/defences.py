"""Copy and free-rider detection: which accepted updates repeat another's or carry no work.

Runs inside the round derivation (coordinator and auditor alike), on the updates that
passed validation, in on-chain submission order. An update is flagged when it is

* ``copy-bytes``: the same bytes as an earlier submission;
* ``copy-payload``: the same decoded tensors as an earlier update, under another header;
* ``free-ride-unchanged``: the unchanged base model (its delta's norm is ~0 next to the others');
* ``copy-similar``: a lightly perturbed copy — cosine similarity to an EARLIER update at or
  above ``copy_cosine``; the earlier one is the original and keeps its score;
* ``free-ride-noise``: the base model plus noise — a delta almost orthogonal to the sum of the
  other updates' directions (``|cos| < noise_cosine``) that alone moves the validation metric by less
  than ``min_gain``;
* ``copy-stale`` / ``free-ride-replay``: another member's (or its own) update of the previous
  round sent again — the same tensors, or cosine at or above ``copy_cosine``. Members commit
  to their updates before any is readable, so last round's updates are all a copier can see.

Every quantity that decides a flag is computed exactly (float64 products of float32 values
are exact; sums by math.fsum are correctly rounded), so every auditor flags the same updates.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faults import FedLedgerError
from federation.rounds.strategies import Flag

COPY_REASONS = ("copy-bytes", "copy-payload", "copy-similar", "copy-stale")
FREE_RIDE_REASONS = ("free-ride-unchanged", "free-ride-noise", "free-ride-replay")
DEFENCE_REASONS = (*COPY_REASONS, *FREE_RIDE_REASONS)


class InvalidDefenceParams(FedLedgerError):
    """Defence thresholds outside their meaningful range."""


@dataclass(frozen=True)
class DefenceParams:
    """Thresholds of the copy and free-rider checks (recorded in the manifest)."""

    copy_cosine: float = 0.99  # honest updates from the same base stay well below this (see docs/defences.md)
    zero_ratio: float = 1e-3  # a delta whose norm is below this fraction of the median norm is "unchanged"
    noise_cosine: float = 0.05  # random noise in d dimensions has |cos| ~ 1/sqrt(d) to any fixed direction
    min_gain: float = 0.005  # ... and a noise update alone moves the validation metric by less than this
    # federation.rounds.bounds: limits relative to the round's median (0 = off)
    norm_bound: float = 10.0
    weight_bound: float = 10.0

    def __post_init__(self) -> None:
        for name, low, high in (("copy_cosine", 0.0, 1.0), ("zero_ratio", 0.0, 1.0), ("noise_cosine", 0.0, 1.0),
                                ("min_gain", 0.0, 1.0), ("norm_bound", 0.0, 1e6), ("weight_bound", 0.0, 1e6)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (low <= float(v) <= high):
                raise InvalidDefenceParams(f"defence parameter {name} must be a number in [{low}, {high}], got {v!r}")
            object.__setattr__(self, name, float(v))
        for name in ("norm_bound", "weight_bound"):
            if 0 < getattr(self, name) < 1:
                raise InvalidDefenceParams(f"{name} is a multiple of the round's median: 0 (off) or at least 1")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any] | None) -> DefenceParams:
        if obj is None:
            return cls()
        known = {"copy_cosine", "zero_ratio", "noise_cosine", "min_gain", "norm_bound", "weight_bound"}
        unknown = set(obj) - known
        if unknown:
            raise InvalidDefenceParams(f"unknown defence parameters {sorted(unknown)}", hint=f"use {', '.join(sorted(known))}")
        return cls(**dict(obj))


@dataclass(frozen=True)
class Candidate:
    """One accepted update, in on-chain order."""

    participant: str
    digest: bytes  # the on-chain digest of its bytes
    delta: Mapping[str, np.ndarray]


def _flat(delta: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(delta[k], dtype=np.float64).reshape(-1) for k in sorted(delta)])


def exact_dot(a: np.ndarray, b: np.ndarray) -> float:
    """a·b correctly rounded (math.fsum of exact float64 products of float32 values): the same on every machine.

    Hand-written on purpose: np.dot goes through BLAS, whose summation order depends on the build.
    """
    return math.fsum(np.multiply(a, b).tolist())


def _cos(dot: float, na: float, nb: float) -> float:
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


def detect(
    candidates: Sequence[Candidate],
    params: DefenceParams | None = None,
    gain: Callable[[Mapping[str, np.ndarray]], float] | None = None,
    previous: Sequence[Candidate] = (),
) -> dict[str, Flag]:
    """Flags for the copies and free-riders among ``candidates`` (on-chain order); originals are never flagged.

    ``gain(delta)`` is the validation-metric change of applying ``delta`` alone to the base
    model; without it the noise check cannot confirm "no improvement" and is skipped.
    ``previous`` are the updates aggregated in the previous round, checked for replays.
    """
    p = params or DefenceParams()
    flags: dict[str, Flag] = {}
    vecs = [_flat(c.delta) for c in candidates]
    norms = [math.sqrt(exact_dot(v, v)) for v in vecs]
    positive = sorted(n for n in norms if n > 0)
    median_norm = positive[len(positive) // 2] if positive else 0.0
    seen_digest: dict[bytes, str] = {}
    seen_payload: dict[bytes, str] = {}
    for i, c in enumerate(candidates):
        payload = hashlib.sha256(vecs[i].astype(np.float32).tobytes()).digest()
        if c.digest in seen_digest:
            flags[c.participant] = Flag("copy-bytes", f"the same bytes as the update of {seen_digest[c.digest]}")
        elif payload in seen_payload:
            flags[c.participant] = Flag("copy-payload", f"the same tensors as the update of {seen_payload[payload]}, under another header")
        elif norms[i] == 0 or norms[i] <= p.zero_ratio * median_norm:
            flags[c.participant] = Flag(
                "free-ride-unchanged", f"update norm {norms[i]:.6g} is ~0 next to the median {median_norm:.6g}: the base model unchanged"
            )
        else:
            for j in range(i):
                if candidates[j].participant in flags and flags[candidates[j].participant].reason in FREE_RIDE_REASONS:
                    continue
                cos = _cos(exact_dot(vecs[i], vecs[j]), norms[i], norms[j])
                if cos >= p.copy_cosine:
                    flags[c.participant] = Flag(
                        "copy-similar", f"cosine {cos:.6f} to the earlier update of {candidates[j].participant} (threshold {p.copy_cosine:g})"
                    )
                    break
        seen_digest.setdefault(c.digest, c.participant)
        seen_payload.setdefault(payload, c.participant)
    if previous:
        _flag_stale(candidates, vecs, norms, flags, p, previous)
    if gain is not None:
        _flag_noise(candidates, vecs, norms, flags, p, gain)
    return flags


def _flag_stale(
    candidates: Sequence[Candidate],
    vecs: list[np.ndarray],
    norms: list[float],
    flags: dict[str, Flag],
    p: DefenceParams,
    previous: Sequence[Candidate],
) -> None:
    """Last round's updates sent again: the only thing a copier can read before it must commit."""
    old = [(c, _flat(c.delta)) for c in previous]
    old = [(c, v, math.sqrt(exact_dot(v, v))) for c, v in old]
    for i, c in enumerate(candidates):
        if c.participant in flags or norms[i] == 0:
            continue
        for prev, v, n in old:
            if v.shape != vecs[i].shape or n == 0:
                continue
            cos = _cos(exact_dot(vecs[i], v), norms[i], n)
            if cos >= p.copy_cosine:
                own = prev.participant.lower() == c.participant.lower()
                reason = "free-ride-replay" if own else "copy-stale"
                whose = "its own" if own else f"{prev.participant}'s"
                flags[c.participant] = Flag(reason, f"cosine {cos:.6f} to {whose} update of the previous round (threshold {p.copy_cosine:g})")
                break


def _flag_noise(
    candidates: Sequence[Candidate],
    vecs: list[np.ndarray],
    norms: list[float],
    flags: dict[str, Flag],
    p: DefenceParams,
    gain: Callable[[Mapping[str, np.ndarray]], float],
) -> None:
    """Base plus noise: nearly orthogonal to what everyone else did, and no better than the base on validation.

    "What everyone else did" is the sum of the others' directions (each update divided by its
    norm), so one huge update cannot drown the rest: summed as they are, a 3e38 update absorbs
    every other value in float arithmetic, the others' sum computed as total minus own comes out
    near zero, and an honest member looks orthogonal to it.
    """
    clean = [i for i, c in enumerate(candidates) if c.participant not in flags and norms[i] > 0]
    if len(clean) < 2:
        return  # nothing to compare with
    # float64 element-wise divisions and adds in on-chain order: correctly rounded, a fixed order, the same bits everywhere.
    def unit(i: int) -> np.ndarray:  # recomputed rather than kept: one float64 copy of an update at a time
        return np.divide(vecs[i].astype(np.float64), norms[i])

    total = np.zeros(vecs[clean[0]].shape, dtype=np.float64)
    for i in clean:
        np.add(total, unit(i), out=total)
    for i in clean:
        others = np.subtract(total, unit(i))
        n_others = math.sqrt(exact_dot(others, others))
        cos = _cos(exact_dot(vecs[i], others), norms[i], n_others)
        if abs(cos) >= p.noise_cosine:
            continue
        g = gain(candidates[i].delta)
        if g < p.min_gain:
            flags[candidates[i].participant] = Flag(
                "free-ride-noise",
                f"cosine {cos:.6f} to the other updates (|cos| < {p.noise_cosine:g}) and validation change {g:+.6f} (< {p.min_gain:g}): noise, not training",
            )
