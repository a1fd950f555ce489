"""FedAvg and FedAvgM: the weighted mean of the updates, with optional server momentum.

Both stream: ``updates`` may be a generator, so only the float64 accumulator, one
update and the output are alive (3 models' worth of float32 in total).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from federation.rounds.strategies import aggregate as kernels
from federation.rounds.strategies.aggregate import (
    base_plus,
    chunks,
    divide,
    flat,
)
from federation.rounds.strategies.base import Strategy, check_clip
from federation.rounds.strategies.types import AggregationError, StrategyState


class FedAvg(Strategy):
    """Weighted FedAvg (McMahan et al. 2017): new = base + Σ w_i Δ_i / Σ w_i, w_i = min(n_i, sample_cap)."""

    name = "fedavg"

    def __init__(self, sample_cap: int | None = 1_000_000, clip_norm: float | None = None) -> None:
        if sample_cap is not None and (type(sample_cap) is not int or sample_cap < 1):
            raise AggregationError(f"sample_cap must be a positive integer or None, got {sample_cap!r}")
        self.sample_cap = sample_cap
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"sample_cap": self.sample_cap, **self._clip_params()}

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        # The division by Σw is folded into the final pass: one pass over the sum instead of two.
        return base_plus(base, total, divisor=weight), {}


class FedAvgM(Strategy):
    """FedAvg with server momentum (Hsu et al. 2019): v = momentum·v + Δ̄; new = base + server_lr·v."""

    name = "fedavgm"

    def __init__(
        self, server_lr: float = 1.0, momentum: float = 0.9, sample_cap: int | None = 1_000_000, clip_norm: float | None = None
    ) -> None:
        if not (0 < server_lr <= 10 and 0 <= momentum < 1):
            raise AggregationError(f"fedavgm needs 0 < server_lr <= 10 and 0 <= momentum < 1, got {server_lr}, {momentum}")
        FedAvg(sample_cap)  # validates the cap
        self.server_lr, self.momentum, self.sample_cap = float(server_lr), float(momentum), sample_cap
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {"server_lr": self.server_lr, "momentum": self.momentum, "sample_cap": self.sample_cap, **self._clip_params()}

    def initial_state(self, base):  # type: ignore[no-untyped-def]
        return {f"momentum/{k}": np.zeros(base[k].shape, dtype=np.float32) for k in sorted(base)}

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        mean = divide(total, weight)
        new_state: StrategyState = {}
        for k in sorted(base):
            v = flat(mean[k])  # float64, reused in place as the new momentum
            prev = flat(state[f"momentum/{k}"])
            tmp = np.empty(min(kernels.CHUNK, v.size), dtype=np.float64)
            for s in chunks(v.size):
                t = tmp[: s.stop - s.start]
                np.multiply(prev[s], np.float64(self.momentum), out=t)
                np.add(v[s], t, out=v[s])
            # The step uses the float64 momentum; only the stored state is rounded to
            # float32.  A re-derivation starts from that stored state, so it matches.
            new_state[f"momentum/{k}"] = v.astype(np.float32).reshape(base[k].shape)
            mean[k] = v.reshape(base[k].shape)
        return base_plus(base, mean, self.server_lr), new_state
