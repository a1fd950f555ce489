"""Learning-only federated simulation: no chain, no store, the real codec and strategies.

For research and the benchmarks: N organisations each hold a partition of a
data set, train locally each round, encode their delta with the update codec
(error feedback kept per organisation), the "coordinator" decodes and
aggregates in address order, and the global model is evaluated on a test set.
Optionally also the centralised (all data pooled) and local-only baselines.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_utils import to_checksum_address

from coordinator.assessment import AcceptedUpdate, assess_round
from coordinator.scoring import ScoringRule, round_seed
from coordinator.strategies import strategy_from_name
from fedledger.attacks import COPY, FREE_RIDE, POISON, AttackSpec, copy_update, flip_labels, plant, poison_delta
from fedledger.attacks import attack_delta, submission_order
from fedledger.errors import FedLedgerError
from fedledger.metrics import evaluate
from fedledger.model import ModelSpec, init_model, model_digest, save_model_bytes
from fedledger.updates import CodecParams, DPParams, UpdateHeader, decode_update, encode_update
from participant.compression import ErrorFeedback
from participant.accounting import PrivacyAccount, PrivacyBudgetExhausted, check_delta
from participant.privacy import dp_from_options, train_local_dp
from participant.training import train_local

Progress = Callable[[str, int, int], None]


class SimulationError(FedLedgerError):
    """A simulation that cannot run as configured."""


@dataclass
class SimulationConfig:
    """Everything a simulation run depends on (recorded in its output)."""

    dataset: str = "synthetic"
    train: str | None = None
    test: str | None = None
    participants: int = 5
    split: str = "iid"
    rounds: int = 10
    codec: str = "none"
    error_feedback: bool = True
    strategy: str = "fedavg"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    local_epochs: int = 1
    batch_size: int = 256
    lr: float = 5e-3
    mu: float = 0.0
    class_weights: str | None = "balanced"
    optimizer: str = "adam"
    absent_class_scale: float = 1.0
    hidden: tuple[int, ...] = (64, 32)
    seed: int = 0
    baselines: bool = False
    synthetic_records: int = 20_000
    test_fraction: float = 0.2
    on_bad_row: str = "error"
    # Record-level DP (participant.privacy): target epsilon per round, delta, each member's composed budget.
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_budget: float | None = None
    dp_clip: float = 1.0
    # Planted attackers, "KIND:COUNT" (fedledger.attacks), and how contributions are scored
    # (on the test set, which stands in for the federation's public validation set here).
    attacks: tuple[str, ...] = ()
    scoring: str = "leave-one-out"


def participant_address(index: int, seed: int) -> str:
    """A stable, made-up address for simulated organisation ``index`` (no key behind it)."""
    return to_checksum_address("0x" + hashlib.sha256(f"fedledger-sim/{seed}/{index}".encode()).hexdigest()[:40])


def _load(cfg: SimulationConfig) -> tuple[Any, Any]:
    if cfg.dataset == "synthetic" and cfg.train is None:
        from fedledger.data.synthetic import generate

        # Independent draws from the same generator: the test set is unseen traffic.
        n_test = max(1, int(round(cfg.synthetic_records * cfg.test_fraction)))
        return generate(cfg.synthetic_records, cfg.seed), generate(n_test, cfg.seed + 1_000_003)
    from fedledger.data import load_dataset
    return load_dataset(
        cfg.dataset,
        Path(cfg.train) if cfg.train else None,
        Path(cfg.test) if cfg.test else None,
        seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        on_bad_row=cfg.on_bad_row,  # type: ignore[arg-type]
    )


def _families(data: Any) -> list[str]:
    present = np.flatnonzero(np.bincount(data.labels, minlength=len(data.classes)))
    return [data.classes[i] for i in present if i != 0]


def run_simulation(cfg: SimulationConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the simulation described by ``cfg``; returns the JSON-serialisable result."""
    from fedledger.data.partition import partition

    if cfg.participants < 1 or cfg.rounds < 1 or cfg.local_epochs < 1:
        raise SimulationError(
            f"need participants, rounds and local epochs >= 1; got {cfg.participants}, {cfg.rounds}, {cfg.local_epochs}"
        )
    codec = CodecParams.parse(cfg.codec)
    strategy = strategy_from_name(cfg.strategy, **cfg.strategy_params)
    attack_specs = [AttackSpec.parse(a) for a in cfg.attacks]
    rule = ScoringRule(cfg.scoring) if cfg.scoring in ("leave-one-out", "gtg-shapley") else ScoringRule.from_dict({"rule": cfg.scoring})
    notify = progress or (lambda *_: None)
    train, test = _load(cfg)
    spec = ModelSpec.for_dataset(train, hidden=tuple(cfg.hidden))
    parts = partition(train.labels, cfg.participants, cfg.split, cfg.seed, classes=train.classes)
    orgs = sorted(
        ((participant_address(i, cfg.seed), train.subset(idx)) for i, idx in enumerate(parts)), key=lambda o: o[0].lower()
    )
    for address, data in orgs:
        if len(data) == 0:
            raise SimulationError(f"the {cfg.split} split left organisation {address} without data", hint="use fewer participants")
    planted = plant([a for a, _ in orgs], attack_specs, cfg.seed) if attack_specs else {}
    # On-chain order: members who train, then copiers and free-riders (they wait for something to copy).
    by_address = dict(orgs)
    orgs = [(a, by_address[a]) for a in submission_order([a for a, _ in orgs], planted)]
    weights = init_model(spec, cfg.seed)
    state = strategy.initial_state(weights)
    feedback = {a: ErrorFeedback(spec) for a, _ in orgs}
    dp = dp_from_options(cfg.dp_epsilon, cfg.dp_delta if cfg.dp_epsilon is not None else None, cfg.dp_budget,
                         clip=cfg.dp_clip if cfg.dp_epsilon is not None else None)  # fmt: skip
    accounts = {}
    if dp is not None:
        for address, data in orgs:
            check_delta(dp.delta, len(data))  # refuse before the first round, not in the middle of the run
            accounts[address] = PrivacyAccount(None, delta=dp.delta, budget=dp.budget, accountant=dp.accountant)
    result: dict[str, Any] = {
        "config": {**asdict(cfg), "hidden": list(cfg.hidden)},
        "model": {"spec": spec.to_dict(), "spec_digest": spec.digest(), "parameters": spec.num_parameters(),
                  "dense_float32_bytes": 4 * spec.num_parameters()},
        "strategy": {"name": strategy.name, "params": strategy.params()},
        "codec": codec.to_dict(),
        "data": {"train": len(train), "test": len(test), "classes": list(train.classes), "test_support": test.class_counts().tolist()},
        "participants": [
            {"address": a, "samples": len(d), "class_counts": d.class_counts().tolist(), "families_seen": _families(d),
             "attack": planted.get(a)}
            for a, d in sorted(orgs, key=lambda o: o[0].lower())
        ],
        "scoring": rule.to_dict(),
        "rounds": [],
    }
    total_steps = cfg.rounds * len(orgs)
    for rnd in range(1, cfg.rounds + 1):
        started = time.perf_counter()
        base_bytes = save_model_bytes(spec, weights)
        base_digest = model_digest(base_bytes)
        sizes: dict[str, int] = {}
        decoded: list[AcceptedUpdate] = []
        first_honest: bytes | None = None
        privacy: dict[str, dict[str, float]] = {}
        refused: dict[str, str] = {}
        for j, (address, data) in enumerate(orgs):
            seed = cfg.seed * 1_000_003 + rnd * 1009 + j
            dp_params = None
            kind = planted.get(address)
            if kind in COPY or kind in FREE_RIDE:
                # Copiers and free-riders do not train: they re-send or invent an update.
                header = UpdateHeader(address, rnd, base_digest, spec.digest(), len(data), 0, codec)
                if kind == "copy" and first_honest is not None:
                    blob = copy_update(first_honest, header, spec)
                else:
                    victim = decode_update(first_honest, spec)[1] if first_honest is not None else None
                    fake = attack_delta(kind, train=lambda _d: {}, data=data, shapes=spec.tensor_shapes(), victim=victim,
                                        seed=cfg.seed, address=address, round_id=rnd)  # fmt: skip
                    blob = encode_update(header, fake, spec)
                sizes[address] = len(blob)
                got_header, delta = decode_update(blob, spec)
                decoded.append(AcceptedUpdate(got_header.participant, hashlib.sha256(blob).digest(), got_header.num_samples, delta))
                notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
                continue
            if kind == "label-flip":
                data = flip_labels(data)
            if dp is None:
                local = train_local(
                    spec, weights, data, epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr, mu=cfg.mu,
                    seed=seed, class_weights=cfg.class_weights,  # type: ignore[arg-type]
                    optimizer=cfg.optimizer, absent_class_scale=cfg.absent_class_scale,  # type: ignore[arg-type]
                )  # fmt: skip
                epsilon_milli = 0
            else:
                # No class weights under DP: weights from a member's private labels would leak outside the guarantee.
                try:
                    local = train_local_dp(
                        spec, weights, data, dp, account=accounts[address], round_id=rnd, epochs=cfg.local_epochs,
                        batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, optimizer=cfg.optimizer,  # type: ignore[arg-type]
                    )  # fmt: skip
                except PrivacyBudgetExhausted as exc:
                    refused[address] = str(exc)  # the member sits this round out, as a real participant would
                    notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
                    continue
                m = local.mechanism
                dp_params = DPParams(m.noise_multiplier, m.sample_rate, m.steps, m.clip_norm, dp.delta, m.level, dp.accountant)
                epsilon_milli = local.epsilon_milli
                privacy[address] = {"epsilon": epsilon_milli / 1000, "composed_epsilon": local.composed_epsilon}
            header = UpdateHeader(address, rnd, base_digest, spec.digest(), local.num_samples, epsilon_milli, codec, dp_params)
            ef = feedback[address]
            if not cfg.error_feedback:
                ef.reset()
            sent = poison_delta(kind, local.delta) if kind in POISON and kind != "label-flip" else local.delta
            blob = ef.encode(header, sent)
            if kind is None and first_honest is None:
                first_honest = blob
            sizes[address] = len(blob)
            got_header, delta = decode_update(blob, spec)  # what the coordinator does with the bytes
            decoded.append(AcceptedUpdate(got_header.participant, hashlib.sha256(blob).digest(), got_header.num_samples, delta))
            notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
        members: list[dict[str, Any]] = []
        scoring: dict[str, Any] | None = None
        if decoded:  # every member may have refused (budget spent): the model then stays as it was
            # The round assessment a real round runs: defences, the strategy, then scores.
            seed_bytes = round_seed(rnd, bytes.fromhex(base_digest), [u.digest for u in decoded])
            assessed = assess_round(strategy=strategy, spec=spec, base_weights=weights, state=state, accepted=decoded,
                                    validation=test, scoring=rule, seed=seed_bytes)  # fmt: skip
            weights, state = assessed.weights, assessed.state
            members = [
                {"address": u.participant, "attack": planted.get(u.participant), "accepted": u.participant in assessed.order,
                 "score": assessed.scores[u.participant], "flags": assessed.flags_of(u.participant)}
                for u in decoded
            ]  # fmt: skip
            if assessed.report is not None:
                scoring = {**assessed.report.summary(), "seconds": round(assessed.report.seconds, 3)}
        metrics = evaluate(weights, spec, test)
        result["rounds"].append({
            "round": rnd,
            "metrics": metrics,
            "update_bytes": sizes,
            "update_bytes_total": sum(sizes.values()),
            "model_digest": model_digest(save_model_bytes(spec, weights)),
            "seconds": round(time.perf_counter() - started, 3),
            "participants": members,
            "scoring": scoring,
            **({"privacy": privacy, "refused": refused} if dp is not None else {}),
        })  # fmt: skip
    result["final"] = result["rounds"][-1]["metrics"]
    if dp is not None:
        result["privacy"] = {
            "settings": dp.to_dict(),
            "participants": {a: {"composed_epsilon": acc.composed(), "naive_sum_epsilon": acc.naive_sum(),
                                 "rounds_trained": len(acc.rounds)} for a, acc in accounts.items()},  # fmt: skip
        }
    if cfg.baselines:
        result["baselines"] = _baselines(cfg, spec, train, test, orgs, notify)
    return result


def _baselines(cfg: SimulationConfig, spec: ModelSpec, train: Any, test: Any, orgs: list[tuple[str, Any]], notify: Progress) -> dict[str, Any]:
    """Centralised (pooled data) and local-only models, trained for as many epochs as one party sees federated."""
    epochs = cfg.rounds * cfg.local_epochs
    init = init_model(spec, cfg.seed)
    common = dict(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, class_weights=cfg.class_weights, optimizer=cfg.optimizer)
    notify("baseline", 0, len(orgs) + 1)
    central = train_local(spec, init, train, seed=cfg.seed + 7, **common)  # type: ignore[arg-type]
    out: dict[str, Any] = {"epochs": epochs, "centralised": evaluate(central.weights, spec, test), "local_only": []}
    for j, (address, data) in enumerate(orgs):
        notify("baseline", j + 1, len(orgs) + 1)
        local = train_local(spec, init, data, seed=cfg.seed + 11 + j, **common)  # type: ignore[arg-type]
        out["local_only"].append({"address": address, "metrics": evaluate(local.weights, spec, test)})
    return out
