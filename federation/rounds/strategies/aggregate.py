"""Numeric kernels every strategy shares, bit-reproducible by construction.

* updates come in strictly increasing participant-address order (anything else is an
  error, never silently re-sorted);
* accumulation is float64 with separate multiply and add (``np.multiply`` then
  ``np.add`` with ``out=``), element-wise only: no BLAS, no threaded or pairwise
  reductions, whose summation order could differ between machines;
* every number that decides an output (a norm, a clipping factor, a Krum score) is
  computed with math.fsum, correctly rounded and machine independent;
* work is done in cache-sized chunks: the float64 temporaries then never leave the
  CPU cache, which roughly halves memory traffic; element-wise results are identical
  whatever the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from federation.rounds.strategies.types import (
    AggregationError,
    Flag,
    WeightedUpdate,
    Weights,
)

CHUNK = 1 << 15  # float64 elements: 256 KiB per temporary, fits in L2


def address_key(address: str) -> bytes:
    text = address.lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise AggregationError(f"participant {address!r} is not a 20-byte hex address")
    return raw


def check_update(update: WeightedUpdate, last_key: bytes | None, names: Iterable[str]) -> bytes:
    """Refuse an update out of address order, with a bad sample count or the wrong tensors; return its key."""
    key = address_key(update.participant)
    if last_key is not None and key <= last_key:
        raise AggregationError(
            f"updates must come in strictly increasing participant-address order; {update.participant} is out of order or repeated",
            hint="sort accepted updates by participant address before aggregating",
        )
    if type(update.num_samples) is not int or update.num_samples < 1:
        raise AggregationError(f"update from {update.participant} claims {update.num_samples!r} samples; must be >= 1")
    if set(update.delta) != set(names):
        raise AggregationError(f"update from {update.participant} has tensors {sorted(update.delta)}, expected {sorted(names)}")
    return key


def flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def chunks(n: int) -> Iterable[slice]:
    for start in range(0, n, CHUNK):
        yield slice(start, min(start + CHUNK, n))


def exact_sq_norm(x: np.ndarray) -> float:
    """Σ x² of a float32/float64 array, correctly rounded (math.fsum), hence identical on every machine.

    Hand-written on purpose: ``np.sum``/``np.dot`` use pairwise or BLAS reductions whose
    rounding depends on the build and the CPU, and this number decides the output
    (clipping factors, Krum's selection).
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    sq = np.multiply(v, v)  # element-wise, correctly rounded (exact for float32 inputs)
    return math.fsum(sq.tolist())


def update_norm(delta: Mapping[str, np.ndarray]) -> float:
    """The L2 norm of an update over all its tensors (in name order), computed exactly as above."""
    return math.sqrt(math.fsum(exact_sq_norm(np.asarray(delta[k])) for k in sorted(delta)))


def clip_updates(updates: Iterable[WeightedUpdate], clip_norm: float, flags: dict[str, Flag]) -> Iterable[WeightedUpdate]:
    """Scale every update whose L2 norm exceeds ``clip_norm`` down to it (streams; flags the clipped ones)."""
    for u in updates:
        norm = update_norm(u.delta)
        if norm <= clip_norm:
            yield u
            continue
        factor = np.float64(clip_norm / norm)
        flags[u.participant] = Flag("clipped", f"update norm {norm:.6g} clipped to {clip_norm:.6g}")
        yield WeightedUpdate(
            u.participant, u.num_samples, {k: np.multiply(np.asarray(v, dtype=np.float64), factor) for k, v in u.delta.items()}
        )


def weighted_sum(
    base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], weight_of: Any
) -> tuple[dict[str, np.ndarray], float]:
    """(Σ w_i·Δ_i in float64, Σ w_i), streaming over ``updates`` in their given (address) order."""
    names = sorted(base)
    # np.empty, not zeros: the first update is written, not added (no pass over zeros).
    acc = {k: np.empty(int(np.prod(base[k].shape)), dtype=np.float64) for k in names}
    tmp = np.empty(CHUNK, dtype=np.float64)
    total = 0.0
    count = 0
    last_key: bytes | None = None
    iterator = iter(updates)
    while True:
        # Explicit next() instead of a for loop: the previous update is released
        # before the next one is produced, so a generator holds one at a time.
        update = next(iterator, None)
        if update is None:
            break
        last_key = check_update(update, last_key, names)
        w = np.float64(weight_of(update.num_samples))
        for k in names:
            x = np.asarray(update.delta[k])
            if x.shape != tuple(base[k].shape):
                raise AggregationError(
                    f"update from {update.participant}: tensor {k!r} has shape {tuple(x.shape)}, model has {tuple(base[k].shape)}"
                )
            xf, a = flat(x), acc[k]
            if count == 0:
                np.multiply(xf, w, out=a)
                continue
            for s in chunks(a.size):
                t = tmp[: s.stop - s.start]
                np.multiply(xf[s], w, out=t)
                np.add(a[s], t, out=a[s])
        total += float(w)  # a sum of integers-as-floats below 2^53: exact in any order
        count += 1
        del update, x, xf
    if count == 0:
        raise AggregationError("no updates to aggregate", hint="a round needs at least one accepted update (check quorum)")
    return {k: acc[k].reshape(base[k].shape) for k in names}, total


def divide(total: dict[str, np.ndarray], weight: float) -> dict[str, np.ndarray]:
    for k in total:
        np.divide(total[k], np.float64(weight), out=total[k])
    return total


def base_plus(
    base: Mapping[str, np.ndarray], step: dict[str, np.ndarray], scale: float | None = None, divisor: float | None = None
) -> Weights:
    """float32(base + scale·step) or float32(base + step / divisor), in float64, chunk by chunk."""
    out: Weights = {}
    for k in sorted(base):
        b, st = flat(base[k]), flat(step[k])
        o = np.empty(b.size, dtype=np.float32)
        tmp = np.empty(min(CHUNK, b.size), dtype=np.float64)
        for s in chunks(b.size):
            t = tmp[: s.stop - s.start]
            if divisor is not None:
                np.divide(st[s], np.float64(divisor), out=t)
                np.add(t, b[s], out=t)
            elif scale is None:
                np.add(st[s], b[s], out=t)
            else:
                np.multiply(st[s], np.float64(scale), out=t)
                np.add(t, b[s], out=t)
            o[s] = t
        out[k] = o.reshape(base[k].shape)
    return out


def stack_updates(base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate]) -> tuple[list[str], list[int], np.ndarray]:
    """(addresses, sample counts, (K, n) float64 matrix of flattened deltas), checked like :func:`weighted_sum`."""
    names = sorted(base)
    rows: list[np.ndarray] = []
    addresses: list[str] = []
    samples: list[int] = []
    last_key: bytes | None = None
    for update in updates:
        last_key = check_update(update, last_key, names)
        parts = []
        for k in names:
            x = np.asarray(update.delta[k])
            if x.shape != tuple(base[k].shape):
                raise AggregationError(
                    f"update from {update.participant}: tensor {k!r} has shape {tuple(x.shape)}, model has {tuple(base[k].shape)}"
                )
            parts.append(flat(x).astype(np.float64))
        rows.append(np.concatenate(parts) if parts else np.empty(0))
        addresses.append(update.participant)
        samples.append(update.num_samples)
    if not rows:
        raise AggregationError("no updates to aggregate", hint="a round needs at least one accepted update (check quorum)")
    return addresses, samples, np.stack(rows)


def unflatten(base: Mapping[str, np.ndarray], flat: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    offset = 0
    for k in sorted(base):
        size = int(np.prod(base[k].shape))
        out[k] = flat[offset : offset + size].reshape(base[k].shape)
        offset += size
    return out


def tail_counts(matrix: np.ndarray, keep_lo: int, keep_hi: int) -> np.ndarray:
    """Per row: in how many coordinates its value ranks outside [keep_lo, keep_hi) (ties by row order)."""
    k, n = matrix.shape
    counts = np.zeros(k, dtype=np.int64)
    for s in chunks(n):
        ranks = np.argsort(matrix[:, s], axis=0, kind="stable")  # stable: ties go to the earlier address
        tails = np.concatenate([ranks[:keep_lo].reshape(-1), ranks[keep_hi:].reshape(-1)])
        counts += np.bincount(tails, minlength=k)
    return counts
