"""Bounds on every update's norm and weight, relative to the round, on by default.

A member can send any finite delta and claim any sample count. Unbounded, one delta scaled
to 3e38 with a claim of a million samples becomes the global model (its largest weight
3e38); the next round's honest training overflows, and the federation is stuck. So before
aggregation every update is bounded against the round itself, with limits an honest member
does not reach:

* **norm**: an update whose L2 norm exceeds ``norm_bound`` times the round's median norm is
  scaled down to that (``norm-bounded``);
* **weight**: a claimed sample count above ``weight_bound`` times the round's median claim
  is counted as that (``weight-bounded``); the strategy's absolute ``sample_cap`` applies too.

The median is the lower median of the updates being aggregated, so with two members the
smaller one sets the limit, and a minority of attackers cannot move it. Every norm is
computed exactly (math.fsum), so every auditor bounds the same updates by the same factors.
The limits used are recorded in the manifest; ``0`` turns a bound off (plain FedAvg).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from federation.rounds.strategies import Flag, update_norm


@dataclass(frozen=True)
class BoundedRound:
    updates: list[Any]  # the updates, bounded (same type as given: anything with participant, num_samples, delta)
    flags: dict[str, Flag]
    record: dict[str, Any]  # what the manifest records: the medians and limits used


def lower_median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2] if ordered else 0.0


def bound_updates(updates: Sequence[Any], norm_bound: float, weight_bound: float) -> BoundedRound:
    """Scale down outsized norms and count down outsized sample claims (see the module doc)."""
    if not updates or (norm_bound <= 0 and weight_bound <= 0):
        return BoundedRound(list(updates), {}, {})
    flags: dict[str, Flag] = {}
    record: dict[str, Any] = {}
    norms = {u.participant: update_norm(u.delta) for u in updates} if norm_bound > 0 else {}
    norm_limit = math.inf
    if norm_bound > 0:
        median_norm = lower_median([n for n in norms.values() if n > 0])
        norm_limit = norm_bound * median_norm if median_norm > 0 else math.inf
        record.update(norm_bound=norm_bound, median_norm=_num(median_norm), norm_limit=_num(norm_limit))
    sample_limit = math.inf
    if weight_bound > 0:
        median_samples = lower_median([float(u.num_samples) for u in updates])
        sample_limit = max(1, int(math.floor(weight_bound * median_samples)))
        record.update(weight_bound=weight_bound, median_samples=int(median_samples), sample_limit=int(sample_limit))
    out = []
    for u in updates:
        delta, samples = u.delta, u.num_samples
        notes = []
        if norm_bound > 0 and norms[u.participant] > norm_limit:
            factor = np.float64(norm_limit / norms[u.participant])
            delta = {k: np.multiply(np.asarray(v, dtype=np.float64), factor).astype(np.float32) for k, v in delta.items()}
            notes.append(("norm-bounded", f"update norm {norms[u.participant]:.6g} scaled to {norm_limit:.6g} "
                                          f"({norm_bound:g} x the round's median {record['median_norm']:.6g})"))  # fmt: skip
        if samples > sample_limit:
            notes.append(("weight-bounded", f"claim of {samples:,} samples counted as {int(sample_limit):,} "
                                            f"({weight_bound:g} x the round's median claim)"))  # fmt: skip
            samples = int(sample_limit)
        if notes:
            flags[u.participant] = Flag(notes[0][0], "; ".join(d for _, d in notes))
            u = replace(u, delta=delta, num_samples=samples)
        out.append(u)
    return BoundedRound(out, flags, record)


def _num(x: float) -> float | None:
    """A float the manifest can hold (canonical JSON has no Infinity)."""
    return None if not math.isfinite(x) else float(f"{x:.9g}")
