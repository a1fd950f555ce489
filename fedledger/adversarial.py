"""A federation with planted attackers, learning only: real training, real codec, the real round assessment.

The benchmark (``scripts/bench_robust.py``) and the tests run this: members train on their
partition, planted members attack (:mod:`fedledger.attacks`), every update goes through the
update codec under its sender's header, and :func:`coordinator.assessment.assess_round`
(the code a real round runs) defends, aggregates and scores.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coordinator.assessment import AcceptedUpdate, assess_round
from coordinator.defences import COPY_REASONS, FREE_RIDE_REASONS, DefenceParams
from coordinator.scoring import ScoringRule, round_seed
from coordinator.strategies import strategy_from_name
from fedledger.attacks import COPY, FREE_RIDE, AttackSpec, attack_delta, copy_update, plant, submission_order
from fedledger.data import FlowDataset
from fedledger.data.partition import partition
from fedledger.metrics import evaluate
from fedledger.model import ModelSpec, init_model, model_digest, save_model_bytes
from fedledger.updates import UpdateHeader, decode_update, encode_update
from participant.training import train_local

Progress = Callable[[str, int, int], None]


@dataclass
class AttackRun:
    """One adversarial run's settings."""

    participants: int = 10
    rounds: int = 5
    split: str = "iid"
    strategy: str = "fedavg"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    attacks: Sequence[AttackSpec] = ()
    scoring: ScoringRule = field(default_factory=ScoringRule)
    defences: DefenceParams = field(default_factory=DefenceParams)
    score_contributions: bool = True
    local_epochs: int = 1
    batch_size: int = 256
    lr: float = 5e-3
    hidden: tuple[int, ...] = (64, 32)
    seed: int = 0


def _address(index: int, seed: int) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address("0x" + hashlib.sha256(f"fedledger-sim/{seed}/{index}".encode()).hexdigest()[:40])


def run_attacks(
    cfg: AttackRun, train: FlowDataset, test: FlowDataset, validation: FlowDataset, progress: Progress | None = None
) -> dict[str, Any]:
    """Run ``cfg``; returns per-round metrics on ``test`` and per-participant scores and flags (JSON-ready)."""
    notify = progress or (lambda *_: None)
    strategy = strategy_from_name(cfg.strategy, **cfg.strategy_params)
    spec = ModelSpec.for_dataset(train, hidden=tuple(cfg.hidden))
    parts = partition(train.labels, cfg.participants, cfg.split, cfg.seed, classes=train.classes)
    data = {_address(i, cfg.seed): train.subset(idx) for i, idx in enumerate(parts)}
    planted = plant(sorted(data), cfg.attacks, cfg.seed)
    order = submission_order(sorted(data), planted)
    weights = init_model(spec, cfg.seed)
    state = strategy.initial_state(weights)
    shapes = spec.tensor_shapes()
    out: dict[str, Any] = {
        "strategy": {"name": strategy.name, "params": strategy.params()},
        "scoring": cfg.scoring.to_dict(),
        "defences": cfg.defences.to_dict(),
        "participants": [{"address": a, "samples": len(data[a]), "attack": planted.get(a)} for a in sorted(data)],
        "rounds": [],
    }
    for rnd in range(1, cfg.rounds + 1):
        started = time.perf_counter()
        base_bytes = save_model_bytes(spec, weights)
        base_digest = model_digest(base_bytes)
        accepted: list[AcceptedUpdate] = []
        first_honest: tuple[bytes, dict[str, np.ndarray]] | None = None
        for j, a in enumerate(order):
            kind = planted.get(a)
            seed = cfg.seed * 1_000_003 + rnd * 1009 + j

            def trained(d: FlowDataset, _seed: int = seed) -> Mapping[str, np.ndarray]:
                return train_local(spec, weights, d, epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=_seed).delta

            header = UpdateHeader(a, rnd, base_digest, spec.digest(), len(data[a]))
            if kind == "copy" and first_honest is not None:
                blob = copy_update(first_honest[0], header, spec)  # the victim's payload under the copier's header
            else:
                victim = first_honest[1] if first_honest is not None else None
                delta = trained(data[a]) if kind is None else attack_delta(
                    kind, train=trained, data=data[a], shapes=shapes, victim=victim, seed=cfg.seed, address=a, round_id=rnd
                )  # fmt: skip
                blob = encode_update(header, delta, spec)
            got_header, decoded = decode_update(blob, spec)
            if kind is None and first_honest is None:
                first_honest = (blob, decoded)
            accepted.append(AcceptedUpdate(got_header.participant, hashlib.sha256(blob).digest(), got_header.num_samples, decoded))
            notify("train", (rnd - 1) * len(order) + j + 1, cfg.rounds * len(order))
        seed_bytes = round_seed(rnd, bytes.fromhex(base_digest), [u.digest for u in accepted])
        result = assess_round(
            strategy=strategy, spec=spec, base_weights=weights, state=state, accepted=accepted, validation=validation,
            scoring=cfg.scoring, seed=seed_bytes, defences=cfg.defences, score_contributions=cfg.score_contributions,
        )  # fmt: skip
        weights, state = result.weights, result.state
        out["rounds"].append({
            "round": rnd,
            "metrics": evaluate(weights, spec, test),
            "scoring": None if result.report is None else {**result.report.summary(), "seconds": round(result.report.seconds, 3)},
            "participants": [
                {"address": u.participant, "attack": planted.get(u.participant), "accepted": u.participant in result.order,
                 "score": result.scores[u.participant], "flags": result.flags_of(u.participant)}
                for u in accepted
            ],
            "seconds": round(time.perf_counter() - started, 3),
        })  # fmt: skip
    out["final"] = out["rounds"][-1]["metrics"]
    out["detection"] = detection_summary(out)
    return out


def detection_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """How many planted copies / free-riders were flagged (per round), and how many honest members were."""
    want = {**{k: COPY_REASONS for k in COPY}, **{k: FREE_RIDE_REASONS for k in FREE_RIDE}}
    planted = flagged = honest = honest_flagged = nonpositive = 0
    for r in run["rounds"]:
        for p in r["participants"]:
            reasons = {f["reason"] for f in p["flags"]}
            if p["attack"] in want:
                planted += 1
                flagged += bool(reasons & set(want[p["attack"]]))
                nonpositive += p["score"] <= 0
            elif p["attack"] is None:
                honest += 1
                honest_flagged += bool(reasons & set(COPY_REASONS + FREE_RIDE_REASONS))
    return {
        "planted_copy_or_free_ride": planted, "flagged": flagged, "scored_at_most_0": nonpositive,
        "honest": honest, "honest_flagged": honest_flagged,
    }  # fmt: skip
