"""Malicious participants, for tests and benchmarks: poisoners, copiers and free-riders.

Each attack is a pure function of the honest participant's inputs or outputs, so a
simulation (or the demo) can plant attackers deterministically:

* data-level: ``label-flip`` trains honestly on relabelled flows (attacks as
  normal, normal as an attack family);
* update-level poisoning: ``sign-flip`` (-Δ), ``scale10`` / ``scale100`` (boosted
  Δ), ``same-value`` (every coordinate set to one constant);
* copiers: ``copy`` (another member's tensor payload re-sent under the copier's
  own header), ``copy-noise`` (the same, lightly perturbed);
* free-riders: ``free-ride`` (the unchanged base model: Δ = 0),
  ``free-ride-noise`` (the base model plus small noise).

Copiers and free-riders do not train at all; that is their point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.updates import UpdateHeader, decode_update, encode_update
from flows import FlowDataset

POISON = ("label-flip", "sign-flip", "scale10", "scale100", "same-value")
COPY = ("copy", "copy-noise")
FREE_RIDE = ("free-ride", "free-ride-noise")
ATTACKS: tuple[str, ...] = (*POISON, *COPY, *FREE_RIDE)

SAME_VALUE = 1.0  # the constant of the same-value attack: far outside any honest coordinate
COPY_NOISE = 0.01  # relative noise of a perturbed copy: per-coordinate std = 1 % of the copied update's RMS
FREE_RIDE_NOISE = 1e-3  # absolute noise std of a "base plus noise" free-rider


class InvalidAttack(FedLedgerError):
    """An attack specification that cannot be planted."""


@dataclass(frozen=True)
class AttackSpec:
    """``KIND:COUNT`` from the command line: plant ``count`` participants attacking with ``kind``."""

    kind: str
    count: int

    @classmethod
    def parse(cls, text: str) -> AttackSpec:
        kind, sep, count = text.partition(":")
        kind = kind.strip().lower()
        if kind not in ATTACKS:
            raise InvalidAttack(f"unknown attack {kind!r} in {text!r}", hint=f"use one of {', '.join(ATTACKS)}")
        if not sep:
            n = 1
        else:
            try:
                n = int(count)
            except ValueError:
                raise InvalidAttack(f"attack count {count!r} in {text!r} is not an integer", hint="write KIND:COUNT, e.g. sign-flip:2") from None
        if n < 1:
            raise InvalidAttack(f"attack count in {text!r} must be >= 1")
        return cls(kind, n)


def plant(addresses: Sequence[str], specs: Sequence[AttackSpec], seed: int) -> dict[str, str]:
    """Which participants attack, and how: a deterministic draw (from ``seed``) of distinct participants.

    A copier needs someone to copy, so at least one participant always stays honest.
    """
    total = sum(s.count for s in specs)
    if total >= len(addresses):
        raise InvalidAttack(
            f"{total} attackers among {len(addresses)} participants leaves no honest member",
            hint="plant fewer attackers or simulate more participants",
        )
    ranked = sorted(addresses, key=lambda a: hashlib.sha256(f"fedledger-attack/{seed}/{a.lower()}".encode()).digest())
    out: dict[str, str] = {}
    i = 0
    for s in specs:
        for _ in range(s.count):
            out[ranked[i]] = s.kind
            i += 1
    return out


def flip_labels(data: FlowDataset) -> FlowDataset:
    """Label flipping: every attack flow labelled normal, every normal flow labelled the first attack family."""
    if len(data.classes) < 2:
        raise InvalidAttack("label flipping needs at least two classes")
    labels = np.where(data.labels == 0, 1, 0).astype(np.int64)
    return replace(data, labels=labels)


def _rng(seed: int, address: str, round_id: int) -> np.random.Generator:
    digest = hashlib.sha256(f"fedledger-attack-noise/{seed}/{address.lower()}/{round_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def poison_delta(kind: str, delta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The update a poisoner sends instead of its honest ``delta`` (sign-flip, scale10, scale100, same-value)."""
    if kind == "sign-flip":
        return {k: np.negative(np.asarray(v, np.float32)) for k, v in delta.items()}
    if kind in ("scale10", "scale100"):
        factor = np.float32(10 if kind == "scale10" else 100)
        return {k: np.asarray(v, np.float32) * factor for k, v in delta.items()}
    if kind == "same-value":
        return {k: np.full(np.shape(v), SAME_VALUE, np.float32) for k, v in delta.items()}
    raise InvalidAttack(f"{kind!r} is not an update-poisoning attack", hint="use one of sign-flip, scale10, scale100, same-value")


def free_ride_delta(kind: str, shapes: Mapping[str, tuple[int, ...]], *, seed: int, address: str, round_id: int) -> dict[str, np.ndarray]:
    """What a free-rider sends without training: zeros (``free-ride``) or small noise (``free-ride-noise``)."""
    if kind == "free-ride":
        return {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    if kind == "free-ride-noise":
        rng = _rng(seed, address, round_id)
        return {k: (rng.standard_normal(shapes[k]) * FREE_RIDE_NOISE).astype(np.float32) for k in sorted(shapes)}
    raise InvalidAttack(f"{kind!r} is not a free-riding attack", hint="use free-ride or free-ride-noise")


def copy_delta(kind: str, victim: Mapping[str, np.ndarray], *, seed: int, address: str, round_id: int) -> dict[str, np.ndarray]:
    """A copier's delta: the victim's decoded delta as is (``copy``) or lightly perturbed (``copy-noise``)."""
    if kind == "copy":
        return {k: np.array(v, np.float32) for k, v in victim.items()}
    if kind == "copy-noise":
        rng = _rng(seed, address, round_id)
        out = {}
        for k in sorted(victim):
            v = np.asarray(victim[k], np.float32)
            rms = float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))) if v.size else 0.0
            out[k] = (v + rng.standard_normal(v.shape) * (COPY_NOISE * rms)).astype(np.float32)
        return out
    raise InvalidAttack(f"{kind!r} is not a copying attack", hint="use copy or copy-noise")


def copy_update(victim_blob: bytes, header: UpdateHeader, spec: ModelSpec) -> bytes:
    """Re-send another member's update under the copier's own header: same tensor payload, different sender.

    The copier decodes what the victim published (it is public in the store) and encodes it
    again with the victim's codec; with a lossless codec the payload is the victim's exactly.
    """
    victim_header, delta = decode_update(victim_blob, spec)
    return encode_update(replace(header, codec=victim_header.codec), delta, spec)


def attack_delta(
    kind: str,
    *,
    train: Callable[[FlowDataset], Mapping[str, np.ndarray]],
    data: FlowDataset,
    shapes: Mapping[str, tuple[int, ...]],
    victim: Mapping[str, np.ndarray] | None,
    seed: int,
    address: str,
    round_id: int,
) -> dict[str, np.ndarray]:
    """The delta a planted participant sends this round; ``train(data)`` is its honest local training.

    Copiers need ``victim`` (an update submitted before theirs); free-riders and copiers never train.
    """
    if kind == "label-flip":
        return {k: np.asarray(v, np.float32) for k, v in train(flip_labels(data)).items()}
    if kind in POISON:
        return poison_delta(kind, train(data))
    if kind in FREE_RIDE:
        return free_ride_delta(kind, shapes, seed=seed, address=address, round_id=round_id)
    if kind in COPY:
        if victim is None:
            raise InvalidAttack(f"{address} copies, but nobody submitted before it", hint="copiers submit after an honest member")
        return copy_delta(kind, victim, seed=seed, address=address, round_id=round_id)
    raise InvalidAttack(f"unknown attack {kind!r}", hint=f"use one of {', '.join(ATTACKS)}")


def submission_order(addresses: Sequence[str], planted: Mapping[str, str]) -> list[str]:
    """On-chain order of a simulated round: everyone who trains, then the copiers and free-riders (who wait to copy)."""
    late = set(COPY) | set(FREE_RIDE)
    key = lambda a: (planted.get(a) in late, a.lower())  # noqa: E731
    return sorted(addresses, key=key)
