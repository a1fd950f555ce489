"""A real federated round for the defence tests: synthetic flows, real local training, real deltas."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from federation.model import ModelSpec
from federation.model.network import init_model
from federation.training import train_local
from flows import FlowDataset
from flows.partition import partition
from flows.synthetic import generate


def address(i: int) -> str:
    return "0x" + hashlib.sha256(f"defence-test/{i}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Round:
    spec: ModelSpec
    base: dict[str, np.ndarray]
    members: tuple[tuple[str, int, dict[str, np.ndarray]], ...]  # (address, samples, delta), in "on-chain" order
    validation: FlowDataset
    train: FlowDataset
    parts: tuple[np.ndarray, ...]


@lru_cache(maxsize=8)
def honest_round(n: int = 5, records: int = 6000, warm_rounds: int = 1, sizes: tuple[int, ...] | None = None) -> Round:
    """``n`` honest members train one epoch from a base already trained ``warm_rounds`` rounds.

    ``sizes`` gives each member's share of the records (relative), for scoring tests.
    """
    train = generate(records, 0)
    validation = generate(2000, 1)
    spec = ModelSpec.for_dataset(train)
    if sizes is None:
        parts = partition(train.labels, n, "iid", 0, classes=train.classes)
    else:
        order = np.random.default_rng(0).permutation(len(train))
        bounds = np.cumsum([0, *sizes]) * len(train) // sum(sizes)
        parts = [np.sort(order[bounds[i] : bounds[i + 1]]) for i in range(n)]
    weights = init_model(spec, 0)
    from federation.rounds.strategies import FedAvg, WeightedUpdate

    for r in range(warm_rounds):
        ups = [
            WeightedUpdate(address(i), len(p), train_local(spec, weights, train.subset(p), seed=100 + r * n + i).delta)
            for i, p in enumerate(parts)
        ]
        weights, _ = FedAvg().aggregate(weights, sorted(ups, key=lambda u: u.participant.lower()))
    members = tuple(
        (address(i), len(p), train_local(spec, weights, train.subset(p), seed=1000 + i).delta) for i, p in enumerate(parts)
    )
    return Round(spec, weights, members, validation, train, tuple(parts))
