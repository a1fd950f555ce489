"""FedAdam: adaptive server optimisation over the weighted mean update (streams like FedAvg)."""

from __future__ import annotations

from typing import Any

import numpy as np

from federation.rounds.strategies.aggregate import base_plus, divide, flat
from federation.rounds.strategies.base import Strategy, check_clip
from federation.rounds.strategies.fedavg import FedAvg
from federation.rounds.strategies.types import AggregationError, StrategyState


class FedAdam(Strategy):
    """FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization"), without bias correction as in the paper.

    m = β1·m + (1-β1)·Δ̄;  v = β2·v + (1-β2)·Δ̄²;  new = base + η·m / (√v + τ).
    """

    name = "fedadam"

    def __init__(
        self,
        eta: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.99,
        tau: float = 1e-3,
        sample_cap: int | None = 1_000_000,
        clip_norm: float | None = None,
    ) -> None:
        if not (0 < eta <= 10 and 0 <= beta1 < 1 and 0 <= beta2 < 1 and 0 < tau <= 1):
            raise AggregationError(
                f"fedadam needs 0 < eta <= 10, 0 <= beta1, beta2 < 1, 0 < tau <= 1; got {eta}, {beta1}, {beta2}, {tau}"
            )
        FedAvg(sample_cap)
        self.eta, self.beta1, self.beta2, self.tau = float(eta), float(beta1), float(beta2), float(tau)
        self.sample_cap = sample_cap
        self.clip_norm = check_clip(clip_norm)

    def params(self) -> dict[str, Any]:
        return {
            "eta": self.eta, "beta1": self.beta1, "beta2": self.beta2, "tau": self.tau, "sample_cap": self.sample_cap,
            **self._clip_params(),
        }  # fmt: skip

    def initial_state(self, base):  # type: ignore[no-untyped-def]
        state: StrategyState = {}
        for k in sorted(base):
            state[f"m/{k}"] = np.zeros(base[k].shape, dtype=np.float32)
            state[f"v/{k}"] = np.zeros(base[k].shape, dtype=np.float32)
        return state

    def _apply(self, base, total, weight, state):  # type: ignore[no-untyped-def]
        mean = divide(total, weight)
        new_state: StrategyState = {}
        b1, c1 = np.float64(self.beta1), np.float64(1.0 - self.beta1)
        b2, c2 = np.float64(self.beta2), np.float64(1.0 - self.beta2)
        tau = np.float64(self.tau)
        for k in sorted(base):
            d = flat(mean[k])
            m_prev, v_prev = flat(state[f"m/{k}"]), flat(state[f"v/{k}"])
            m = np.empty(d.size, dtype=np.float64)
            v = np.empty(d.size, dtype=np.float64)
            t = np.empty(d.size, dtype=np.float64)
            np.multiply(m_prev, b1, out=m)
            np.multiply(d, c1, out=t)
            np.add(m, t, out=m)
            np.multiply(d, d, out=t)
            np.multiply(t, c2, out=t)
            np.multiply(v_prev, b2, out=v)
            np.add(v, t, out=v)
            # Stored moments are float32; the step uses the float64 ones (re-derivation
            # starts from the stored state, so it matches).
            new_state[f"m/{k}"] = m.astype(np.float32).reshape(base[k].shape)
            new_state[f"v/{k}"] = v.astype(np.float32).reshape(base[k].shape)
            np.sqrt(v, out=t)  # sqrt, like + - * /, is correctly rounded in IEEE 754: same on every machine
            np.add(t, tau, out=t)
            np.divide(m, t, out=t)
            mean[k] = t.reshape(base[k].shape)
        return base_plus(base, mean, self.eta), new_state
