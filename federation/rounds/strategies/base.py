"""The strategy interface: how the coordinator turns a round's accepted updates into the next global model.

Any auditor re-derives the global model's bytes from the accepted updates, so every
strategy consumes updates in address order through the kernels of
:mod:`federation.rounds.strategies.aggregate`, may clip every update to an L2 bound
first (``clip_norm``, any rule, with an exact norm), and keeps its server state
(momentum, Adam moments) as float32 tensors with canonical bytes
(:meth:`Strategy.state_to_bytes`), so it can live in the store and be re-derived.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from federation.rounds.strategies.aggregate import clip_updates, weighted_sum
from federation.rounds.strategies.types import (
    Aggregate,
    AggregationError,
    Flag,
    StrategyState,
    WeightedUpdate,
    Weights,
)
from federation.tensorfile import InvalidTensorFile, dump_tensors, load_tensors

STATE_FORMAT = "fedledger-strategy-state/1"


def check_clip(clip_norm: float | None) -> float | None:
    if clip_norm is None:
        return None
    if isinstance(clip_norm, bool) or not isinstance(clip_norm, (int, float)) or not (0 < float(clip_norm) < math.inf):
        raise AggregationError(f"clip_norm must be a positive finite number or None, got {clip_norm!r}")
    return float(clip_norm)


def canonical_json(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class Strategy(ABC):
    """How the coordinator turns a round's accepted updates into the next global model."""

    name: str = ""
    clip_norm: float | None = None  # L2 bound on each update before the rule sees it (None: no clipping)
    works_on_sums: bool = True  # the rule needs only the weighted sum (FedAvg, FedAvgM, FedAdam); robust rules do not
    last_flags: dict[str, Flag] = {}  # noqa: RUF012 - replaced (never mutated) by each aggregation

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The strategy's parameters, for the round manifest (JSON-serialisable, canonical)."""

    def effective_weight(self, num_samples: int) -> float:
        """Weight of an update claiming ``num_samples`` (sample counts, capped federation-wide)."""
        cap = self.params().get("sample_cap")
        return float(num_samples if cap is None else min(num_samples, cap))

    def initial_state(self, base: Mapping[str, np.ndarray]) -> StrategyState:
        """The state before the first round (empty for stateless strategies)."""
        return {}

    @abstractmethod
    def _apply(
        self, base: Mapping[str, np.ndarray], total: dict[str, np.ndarray], weight: float, state: StrategyState
    ) -> tuple[Weights, StrategyState]:
        """New weights and state from the float64 weighted sum ``total`` (Σ w_i·Δ_i) and ``weight`` (Σ w_i).

        May overwrite ``total``.
        """

    def aggregate(
        self,
        base: Mapping[str, np.ndarray],
        updates: Iterable[WeightedUpdate],
        state: StrategyState | None = None,
    ) -> tuple[Weights, StrategyState]:
        """New float32 weights and strategy state from ``base`` and the round's updates (in address order).

        The flags of this call (clipped or dropped participants) are left in :attr:`last_flags`;
        :meth:`aggregate_with_flags` returns them instead.
        """
        result = self.aggregate_with_flags(base, updates, state)
        return result.weights, result.state

    def aggregate_with_flags(
        self,
        base: Mapping[str, np.ndarray],
        updates: Iterable[WeightedUpdate],
        state: StrategyState | None = None,
    ) -> Aggregate:
        """Like :meth:`aggregate`, also returning which participants were clipped or dropped, and why."""
        if state is None or not state:
            state = self.initial_state(base)
        self._check_state(base, state)
        flags: dict[str, Flag] = {}
        if self.clip_norm is not None:
            updates = clip_updates(updates, self.clip_norm, flags)
        weights, new_state = self._aggregate(base, updates, state, flags)
        self.last_flags = dict(flags)
        return Aggregate(weights, new_state, dict(flags))

    def aggregate_sum(
        self, base: Mapping[str, np.ndarray], total: dict[str, np.ndarray], weight: float, state: StrategyState | None = None
    ) -> Aggregate:
        """New weights and state from the weighted sum of the updates alone (secure aggregation: no update is seen).

        Only rules that need nothing but Σ w_i·Δ_i and Σ w_i can do this; robust rules cannot.
        """
        if not self.works_on_sums:
            raise AggregationError(f"{self.name} needs every update in the clear; secure aggregation reveals only their sum")
        if state is None or not state:
            state = self.initial_state(base)
        self._check_state(base, state)
        weights, new_state = self._apply(base, total, weight, state)
        return Aggregate(weights, new_state, {})

    def _aggregate(
        self, base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], state: StrategyState, flags: dict[str, Flag]
    ) -> tuple[Weights, StrategyState]:
        """The rule itself; the default streams a weighted sum into :meth:`_apply`. Robust rules override it."""
        total, weight = weighted_sum(base, updates, self.effective_weight)
        return self._apply(base, total, weight, state)

    def _clip_params(self) -> dict[str, Any]:
        # Only present when set: manifests of federations without clipping keep their bytes.
        return {} if self.clip_norm is None else {"clip_norm": self.clip_norm}

    def _check_state(self, base: Mapping[str, np.ndarray], state: StrategyState) -> None:
        expected = self.initial_state(base)
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
            raise AggregationError(
                f"{self.name} state does not match the model: has {sorted(state)}",
                hint="pass the state the previous round produced (or None for the first round)",
            )

    def state_to_bytes(self, state: StrategyState) -> bytes:
        """Canonical bytes of ``state`` (a tensor file naming the strategy and its parameters)."""
        meta = {"format": STATE_FORMAT, "strategy": self.name, "params": canonical_json(self.params())}
        return dump_tensors({k: np.asarray(v, dtype=np.float32) for k, v in state.items()}, meta)

    def state_from_bytes(self, data: bytes) -> StrategyState:
        try:
            meta, tensors = load_tensors(data)
        except InvalidTensorFile as exc:
            raise AggregationError(f"strategy state is corrupt: {exc}") from None
        expected = {"format": STATE_FORMAT, "strategy": self.name, "params": canonical_json(self.params())}
        if meta != expected:
            raise AggregationError(
                f"strategy state was written by {meta.get('strategy')!r} with {meta.get('params')}, "
                f"not {self.name!r} with {expected['params']}"
            )
        if any(t.dtype != np.float32 for t in tensors.values()):
            raise AggregationError("strategy state tensors must be float32")
        return tensors
