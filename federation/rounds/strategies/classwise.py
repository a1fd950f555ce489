"""Class-wise FedAvg: the body averaged as FedAvg does, each output row over the members that trained its class.

Under label skew a family may be held by one member only. Plain FedAvg divides that
member's step on the family's output row by the weight of *every* member, so the row moves
at a fifth of its speed in a five-member federation, and the other members (who never see
the family) keep pulling the shared layers elsewhere: the family is never learnt. Here each
row ``c`` of the output layer (its weight row and bias) is divided only by the summed weight
of the members whose update moves that row, so the family's row moves as fast as its
holders' local training moves it; the hidden layers stay plain FedAvg.

Which members train class ``c`` is read from the updates themselves, not from a claim: under
FedRS's restricted softmax with scale 0 (Li & Zhan, KDD 2021; ``absent_class_scale=0`` in
local training) the rows of classes a member holds no example of get exactly zero gradient,
hence an exactly zero delta. The rule is class-weighted aggregation (Ma, Zhao, Cai and Jia,
"Fast-convergent federated learning with class-weighted aggregation", J. Systems
Architecture 117, 2021) restricted to the classifier, with the class presence read from
the output layer as cwFedAvg does (Lee and Choi, "Class-Wise Federated Averaging for
Efficient Personalization", ICCV 2025). A member that trains with an ordinary softmax moves
every row and counts for every class, so the rule falls back to FedAvg row by row.

What it gives up: a hostile member that alone sends a row moves it with full weight (as
the only holder of a family legitimately does); bound that with ``clip_norm``. The sums are
the kernels' (float64, separate multiply and add, address order) and whether a row moves
is an exact comparison with zero, so the result is bit-reproducible like FedAvg's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

import numpy as np

from federation.rounds.strategies.aggregate import base_plus, weighted_sum
from federation.rounds.strategies.fedavg import FedAvg
from federation.rounds.strategies.types import (
    AggregationError,
    Flag,
    StrategyState,
    WeightedUpdate,
    Weights,
)

_LAYER = re.compile(r"^layers\.(\d+)\.(weight|bias)$")


def output_layer(names: Iterable[str]) -> tuple[str, str]:
    """(weight, bias) names of the model's last layer (``layers.NN.*`` with the highest NN)."""
    indices = {m.group(1) for m in map(_LAYER.match, names) if m}
    if not indices:
        raise AggregationError("class-wise aggregation needs a model with layers.NN.weight/bias tensors")
    last = max(indices, key=int)
    return f"layers.{last}.weight", f"layers.{last}.bias"


def moved_rows(delta: Mapping[str, np.ndarray], weight: str, bias: str) -> np.ndarray:
    """Boolean per class: does this update change the class's output row (weight row or bias)?"""
    w = np.asarray(delta[weight])
    b = np.asarray(delta[bias])
    return (w != 0).any(axis=1) | (b != 0)


class ClasswiseFedAvg(FedAvg):
    """FedAvg, with every output row divided by the weight of the members whose update moves it (see the module doc)."""

    name = "fedavg-classwise"
    # Which members move a row is read from every update: the sum secure aggregation reveals is not enough.
    works_on_sums = False

    def _aggregate(
        self, base: Mapping[str, np.ndarray], updates: Iterable[WeightedUpdate], state: StrategyState, flags: dict[str, Flag]
    ) -> tuple[Weights, StrategyState]:
        weight_name, bias_name = output_layer(base)
        classes = int(np.asarray(base[bias_name]).shape[0])
        row_weight = [0.0] * classes  # Σ w_i over the members moving row c: integers as floats, exact in any order

        def counted(stream: Iterable[WeightedUpdate]) -> Iterator[WeightedUpdate]:
            for u in stream:
                if weight_name in u.delta and bias_name in u.delta:  # else weighted_sum refuses the update
                    w = self.effective_weight(u.num_samples)
                    for c in np.flatnonzero(moved_rows(u.delta, weight_name, bias_name)).tolist():
                        row_weight[c] += w
                yield u

        total, weight = weighted_sum(base, counted(updates), self.effective_weight)
        # Rows no member moved have a zero sum; dividing them by the whole weight leaves them at the base.
        divisor = np.array([rw if rw > 0 else weight for rw in row_weight], dtype=np.float64)
        np.divide(total[weight_name], divisor[:, None], out=total[weight_name])
        np.divide(total[bias_name], divisor, out=total[bias_name])
        rest = {k: v for k, v in total.items() if k not in (weight_name, bias_name)}
        for k in rest:
            np.divide(total[k], np.float64(weight), out=total[k])
        return base_plus(base, total), {}
