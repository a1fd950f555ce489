"""Robust rules: coordinate-wise median, trimmed mean and Multi-Krum.

Median, trimmed mean and Multi-Krum need every update of the round at once (a coordinate's
median is not a running quantity; Krum compares all pairs), so unlike FedAvg and FedAdam they do
NOT stream: K updates are held as one (K, n) float64 matrix.  Each is still bit-reproducible:
sorting is exact, sums run row by row in a fixed order with np.add, and every number that
decides a selection is computed with math.fsum (correctly rounded, machine independent).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from federation.rounds.strategies.aggregate import (
    base_plus,
    chunks,
    exact_sq_norm,
    stack_updates,
    tail_counts,
    unflatten,
    weighted_sum,
)
from federation.rounds.strategies.base import Strategy, check_clip
from federation.rounds.strategies.fedavg import FedAvg
from federation.rounds.strategies.types import AggregationError, Flag, WeightedUpdate


def _flag_tails(
    flags: dict[str, Flag], addresses: list[str], counts: np.ndarray, n: int, expected: float, reason: str, what: str
) -> None:
    """Flag rows that sit in the tails far more often than chance: halfway between ``expected`` and always."""
    threshold = expected + (1.0 - expected) / 2
    for a, c in zip(addresses, counts.tolist(), strict=True):
        frac = c / n if n else 0.0
        if frac > threshold:
            _add_flag(flags, a, reason, f"{what} in {frac:.1%} of coordinates (threshold {threshold:.1%})")


def _add_flag(flags: dict[str, Flag], address: str, reason: str, detail: str) -> None:
    """The rule's own flag wins the reason; an earlier one (clipping) stays in the detail."""
    prev = flags.get(address)
    flags[address] = Flag(reason, detail if prev is None else f"{detail}; {prev.reason}: {prev.detail}")


class _Robust(Strategy):
    """Shared by the rules that need all K updates in memory."""

    works_on_sums = False  # each needs every update in the clear

    def params(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        return base_plus(base, total, divisor=weight), {}


class Median(_Robust):
    """Coordinate-wise median of the deltas (Yin et al. 2018), unweighted: a sample count is only a claim.

    Needs all K updates in memory (does not stream). A participant is flagged ``median-outlier``
    when its value lies outside the central half of the sorted values in far more coordinates
    than chance would put it there.
    """

    name = "median"

    def __init__(self, clip_norm: float | None = None) -> None:
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {**self._clip_params()}

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, _, m = stack_updates(base, updates)
        k, n = m.shape
        med = np.empty(n, dtype=np.float64)
        for s in chunks(n):
            srt = np.sort(m[:, s], axis=0)
            if k % 2:
                med[s] = srt[k // 2]
            else:
                np.add(srt[k // 2 - 1], srt[k // 2], out=med[s])
                np.multiply(med[s], np.float64(0.5), out=med[s])
        if k >= 4:
            q = k // 4
            counts = tail_counts(m, q, k - q)
            _flag_tails(flags, addresses, counts, n, 2 * q / k, "median-outlier", "outside the central half")
        return base_plus(base, unflatten(base, med)), {}


class TrimmedMean(_Robust):
    """Coordinate-wise trimmed mean (Yin et al. 2018): drop the ⌊trim·K⌋ largest and smallest values, average the rest.

    Unweighted, and needs all K updates in memory (does not stream). A participant is flagged
    ``trimmed-outlier`` when it was trimmed in far more coordinates than chance would trim it.
    """

    name = "trimmed-mean"

    def __init__(self, trim: float = 0.2, clip_norm: float | None = None) -> None:
        if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not (0 <= trim < 0.5):
            raise AggregationError(f"trimmed-mean needs 0 <= trim < 0.5, got {trim!r}")
        self.trim = float(trim)
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"trim": self.trim, **self._clip_params()}

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, _, m = stack_updates(base, updates)
        k, n = m.shape
        b = int(math.floor(self.trim * k))
        kept = k - 2 * b  # >= 1 because trim < 0.5
        out = np.empty(n, dtype=np.float64)
        for s in chunks(n):
            srt = np.sort(m[:, s], axis=0)
            acc = out[s]
            acc[...] = srt[b]
            for r in range(b + 1, k - b):  # row by row, in sorted order: a fixed summation order
                np.add(acc, srt[r], out=acc)
            np.divide(acc, np.float64(kept), out=acc)
        if b > 0:
            counts = tail_counts(m, b, k - b)
            _flag_tails(flags, addresses, counts, n, 2 * b / k, "trimmed-outlier", "trimmed")
        return base_plus(base, unflatten(base, out)), {}


class MultiKrum(_Robust):
    """Multi-Krum (Blanchard et al. 2017): keep the ``m`` updates closest to their K-f-2 nearest neighbours, FedAvg them.

    ``f`` is the number of Byzantine participants to tolerate; ``m`` defaults to K-f. With
    K <= f+2 Krum's guarantee does not hold; the rule then scores with one neighbour rather
    than refusing the round. Needs all K updates in memory and K(K-1)/2 exact distances.
    The dropped participants are flagged ``krum-excluded``.
    """

    name = "multi-krum"

    def __init__(self, f: int = 1, m: int | None = None, sample_cap: int | None = 1_000_000, clip_norm: float | None = None) -> None:
        if type(f) is not int or f < 0:
            raise AggregationError(f"multi-krum needs an integer f >= 0, got {f!r}")
        if m is not None and (type(m) is not int or m < 1):
            raise AggregationError(f"multi-krum needs m >= 1 (or None for K-f), got {m!r}")
        FedAvg(sample_cap)
        self.f, self.m, self.sample_cap = f, m, sample_cap
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"f": self.f, "m": self.m, "sample_cap": self.sample_cap, **self._clip_params()}

    def select(self, matrix: np.ndarray) -> tuple[list[int], list[float]]:
        """Indices (ascending) of the rows kept, and every row's Krum score."""
        k = matrix.shape[0]
        dist = [[0.0] * k for _ in range(k)]
        for i in range(k):
            for j in range(i + 1, k):
                dist[i][j] = dist[j][i] = exact_sq_norm(np.subtract(matrix[i], matrix[j]))
        neighbours = max(1, k - self.f - 2)
        scores = [math.fsum(sorted(dist[i][j] for j in range(k) if j != i)[:neighbours]) for i in range(k)]
        keep = min(k, self.m if self.m is not None else max(1, k - self.f))
        chosen = sorted(range(k), key=lambda i: (scores[i], i))[:keep]  # ties: the earlier address
        return sorted(chosen), scores

    def _aggregate(self, base, updates, state, flags):  # type: ignore[no-untyped-def]
        addresses, samples, m = stack_updates(base, updates)
        chosen, scores = self.select(m) if m.shape[0] > 1 else ([0], [0.0])
        threshold = max(scores[i] for i in chosen)
        for i, a in enumerate(addresses):
            if i not in chosen:
                _add_flag(flags, a, "krum-excluded", f"Krum score {scores[i]:.6g} above the kept maximum {threshold:.6g}")
        kept = (WeightedUpdate(addresses[i], samples[i], unflatten(base, m[i])) for i in chosen)
        total, weight = weighted_sum(base, kept, self.effective_weight)
        return self._apply(base, total, weight, state)
