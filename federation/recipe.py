"""The default recipe: the best one measured on the novel-attack hold-out (docs/learning.md).

One place for the defaults ``fedledger deploy`` writes into a descriptor, ``participant run``
trains with, and ``simulate`` and the demo use, so the three never drift apart. Every value
stays a flag or a TOML key to change.

- aggregation: class-wise FedAvg (:mod:`federation.rounds.strategies.classwise`), with the
  sample cap at the mean party size when the party sizes are known; under secure
  aggregation, which reveals only a sum, plain FedAvg;
- local training: one epoch of Adam at 5e-3 in batches of 256, square-root class weights,
  FedRS's restricted softmax with scale 0 on classes a member has no example of (which is
  also how class-wise FedAvg sees who holds a class), and FedLC's calibration at tau 0.5.
"""

from __future__ import annotations

import inspect
from typing import Any

STRATEGY = "fedavg-classwise"
SECURE_STRATEGY = "fedavg"  # class-wise FedAvg reads every update; secure aggregation reveals only their sum
EPOCHS = 1
BATCH_SIZE = 256
LR = 5e-3
CLASS_WEIGHTS = "sqrt"
ABSENT_CLASS_SCALE = 0.0
LOGIT_CALIBRATION = 0.5


def default_strategy(privacy_mode: str | None) -> str:
    """The aggregation rule a federation gets when none is named."""
    return SECURE_STRATEGY if privacy_mode == "secure-aggregation" else STRATEGY


def with_mean_cap(strategy: str, params: dict[str, Any], records: int, participants: int) -> dict[str, Any]:
    """``params`` with ``sample_cap`` at the mean party size when the rule takes a cap and none is given,
    so a member holding most of one family's traffic does not outweigh the others (docs/learning.md)."""
    from federation.rounds.strategies import STRATEGIES

    cls = STRATEGIES.get(strategy.lower())
    if cls is None or participants < 1 or "sample_cap" in params or "sample_cap" not in inspect.signature(cls).parameters:
        return dict(params)
    return {**params, "sample_cap": max(1, -(-records // participants))}
