"""Learning-only federated simulation: no chain, no store; the real update path and round derivation.

For research and the benchmarks: N organisations each hold a partition of a data
set and produce their update each round with :func:`participant.update.produce_update`
(error feedback kept per organisation); the round is derived by
:func:`federation.rounds.derive.derive_round`, as the coordinator and the audit derive
it (:mod:`fedledger.local_federation`), and the global model is evaluated on a test
set. Optionally also the centralised (all data pooled) and local-only baselines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faults import FedLedgerError
from federation import recipe
from federation.metrics import evaluate
from federation.model import ModelSpec, model_digest, save_model_bytes
from federation.model.network import init_model
from federation.privacy import check_dp_delta
from federation.rounds.scoring import ScoringRule
from federation.rounds.strategies import strategy_from_name
from federation.secagg import SecureParams
from federation.training import train_local
from federation.updates import CodecParams
from fedledger.attacks.kinds import COPY, FREE_RIDE, AttackSpec, plant, submission_order
from fedledger.attacks.member import attacked_update
from fedledger.local_federation import (
    LocalFederation,
    SecureCohort,
    members_of,
    simulated_account,
    simulated_address,
)
from flows.taxonomy import novel_names
from participant.budget import PrivacyAccount, PrivacyBudgetExhausted
from participant.compression import ErrorFeedback
from participant.dp_training import dp_from_options
from participant.update import RoundTask, TrainingSettings, produce_update, train_round

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
    # The defaults are the best recipe measured on the novel-attack hold-out (federation.recipe):
    # class-wise FedAvg with the sample cap at the mean party size (set when strategy_params
    # has none), FedRS scale 0, sqrt class weights, FedLC tau 0.5.
    strategy: str = recipe.STRATEGY
    strategy_params: dict[str, Any] = field(default_factory=dict)
    local_epochs: int = recipe.EPOCHS
    batch_size: int = recipe.BATCH_SIZE
    lr: float = recipe.LR
    mu: float = 0.0
    class_weights: str | None = recipe.CLASS_WEIGHTS
    optimizer: str = "adam"
    absent_class_scale: float = recipe.ABSENT_CLASS_SCALE
    logit_calibration: float = recipe.LOGIT_CALIBRATION
    hidden: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    seed: int = 0
    baselines: bool = False
    # Personalisation (participant.personal): each member fine-tunes the final global model this
    # many epochs on its own data; reported per member on its own distribution (0 = off).
    personal_epochs: int = 0
    # Transfer learning from public data (federation.genesis): this share of the training file
    # (stratified) is taken away from the members as the "public" set, and the genesis model is
    # pretrained on it for pretrain_epochs with the members' recipe (0 = a seeded genesis).
    pretrain_fraction: float = 0.0
    pretrain_epochs: int = 5
    synthetic_records: int = 20_000
    test_fraction: float = 0.2
    # Without a test file: "stratified" (a share of every class) or "novel" (whole attack names
    # kept out of training, flows.taxonomy.NOVEL_HOLDOUT, plus a share of the other names).
    holdout: str = "stratified"
    on_bad_row: str = "error"
    # Record-level DP (participant.dp_training): target epsilon per round, delta, each member's composed budget.
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    dp_budget: float | None = None
    dp_clip: float = 1.0
    # Planted attackers, "KIND:COUNT" (fedledger.attacks.kinds), and how contributions are scored
    # (on the test set, which stands in for the federation's public validation set here).
    attacks: tuple[str, ...] = ()
    scoring: str = "leave-one-out"
    # "public", or "secure-aggregation": members run the real masking protocol and only the sum is unmasked
    privacy: str = "public"


participant_address = simulated_address  # the name benchmarks use


def _load(cfg: SimulationConfig) -> tuple[Any, Any, np.ndarray | None]:
    """(train, test, novel): ``novel`` marks the test rows of attack names kept out of training (novel hold-out)."""
    if cfg.dataset == "synthetic" and cfg.train is None:
        from flows.synthetic import generate

        if cfg.holdout != "stratified":
            raise SimulationError("the synthetic data set names each family once: it has no novel-attack hold-out",
                                  hint="use --holdout stratified, or an NSL-KDD, UNSW-NB15 or CICIDS2017 file")  # fmt: skip
        # Independent draws from the same generator: the test set is unseen traffic.
        n_test = max(1, int(round(cfg.synthetic_records * cfg.test_fraction)))
        return generate(cfg.synthetic_records, cfg.seed), generate(n_test, cfg.seed + 1_000_003), None
    from flows import load_split
    split = load_split(
        cfg.dataset,
        Path(cfg.train) if cfg.train else None,
        Path(cfg.test) if cfg.test else None,
        seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        on_bad_row=cfg.on_bad_row,  # type: ignore[arg-type]
        holdout=cfg.holdout,  # type: ignore[arg-type]
    )
    return split.train, split.test, split.test_novel


def novel_report(weights: Any, spec: ModelSpec, test: Any, novel: np.ndarray) -> dict[str, Any]:
    """Beside the whole test set's metrics: the known names' part (a stratified hold-out of what the
    federation trained on) and, on the novel names' rows alone, how many are flagged as attacks and
    how many get their family right."""
    from federation.metrics import predict
    from federation.model.network import model_from_weights

    pred = predict(model_from_weights(spec, weights), test.features)
    known = evaluate(weights, spec, test.subset(np.flatnonzero(~novel)))
    y, p = test.labels[novel], pred[novel]
    family = {spec.classes[c]: float(np.mean(p[y == c] == c)) for c in np.unique(y)}
    return {"known": known, "rows": int(novel.sum()), "detection_rate": float(np.mean(p != 0)) if y.size else 0.0,
            "family_recall": family}  # fmt: skip


def _pretrained(cfg: SimulationConfig, spec: ModelSpec, public: Any) -> dict[str, np.ndarray]:
    """The genesis a deployed federation would get from ``fedledger deploy --pretrain`` on ``public``."""
    import torch

    from federation.genesis import Pretraining, pretrain
    from federation.model import load_model_bytes

    # the public set is in memory here, not in a store: the recipe names no CID
    recipe_ = Pretraining(dataset="-", epochs=cfg.pretrain_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          class_weights=cfg.class_weights, seed=cfg.seed, torch=torch.__version__)  # fmt: skip
    return load_model_bytes(pretrain(spec, cfg.seed, recipe_, public), spec)[1]


def _families(data: Any) -> list[str]:
    present = np.flatnonzero(np.bincount(data.labels, minlength=len(data.classes)))
    return [data.classes[i] for i in present if i != 0]


def run_simulation(cfg: SimulationConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the simulation described by ``cfg``; returns the JSON-serialisable result."""
    from flows.partition import partition

    if cfg.personal_epochs < 0:
        raise SimulationError(f"personal_epochs must be 0 or more, got {cfg.personal_epochs}")
    if not 0 <= cfg.pretrain_fraction < 1 or cfg.pretrain_epochs < 1:
        raise SimulationError(f"need 0 <= pretrain_fraction < 1 and pretrain_epochs >= 1, got {cfg.pretrain_fraction}, {cfg.pretrain_epochs}")
    if cfg.participants < 1 or cfg.rounds < 1 or cfg.local_epochs < 1:
        raise SimulationError(
            f"need participants, rounds and local epochs >= 1; got {cfg.participants}, {cfg.rounds}, {cfg.local_epochs}"
        )
    codec = CodecParams.parse(cfg.codec)
    strategy = strategy_from_name(cfg.strategy, **cfg.strategy_params)
    attack_specs = [AttackSpec.parse(a) for a in cfg.attacks]
    rule = ScoringRule(cfg.scoring) if cfg.scoring in ("leave-one-out", "gtg-shapley") else ScoringRule.from_dict({"rule": cfg.scoring})
    notify = progress or (lambda *_: None)
    train, test, novel = _load(cfg)
    public = None
    if cfg.pretrain_fraction:
        from flows.partition import stratified_holdout

        keep, held = stratified_holdout(train.labels, cfg.pretrain_fraction, cfg.seed + 4409)
        train, public = train.subset(keep), train.subset(held)
    params = recipe.with_mean_cap(cfg.strategy, cfg.strategy_params, len(train), cfg.participants)
    strategy = strategy_from_name(cfg.strategy, **params)
    spec = ModelSpec.for_dataset(train, hidden=tuple(cfg.hidden), activation=cfg.activation)
    parts = partition(train.labels, cfg.participants, cfg.split, cfg.seed, classes=train.classes)
    orgs = sorted(
        ((participant_address(i, cfg.seed), train.subset(idx)) for i, idx in enumerate(parts)), key=lambda o: o[0].lower()
    )
    for address, data in orgs:
        if len(data) == 0:
            raise SimulationError(f"the {cfg.split} split left organisation {address} without data", hint="use fewer participants")
    cohort: SecureCohort | None = None
    if cfg.privacy == "secure-aggregation":
        if attack_specs:
            raise SimulationError("planted attacks are caught by comparing updates; secure aggregation shows only their sum")
        accounts_ = [simulated_account(i, cfg.seed) for i in range(len(parts))]
        orgs = sorted(((a.address, train.subset(idx)) for a, idx in zip(accounts_, parts, strict=True)), key=lambda o: o[0].lower())
        if not strategy.works_on_sums:
            raise SimulationError(f"strategy {cfg.strategy!r} needs every update; secure aggregation reveals only their sum",
                                  hint="use --strategy fedavg, fedavgm or fedadam")  # fmt: skip
        cohort = SecureCohort(accounts_, SecureParams.for_members(len(orgs)))
        rule = ScoringRule.from_dict({"rule": "sample-share"})
    elif cfg.privacy != "public":
        raise SimulationError(f"unknown privacy mode {cfg.privacy!r}", hint="use public or secure-aggregation")
    planted = plant([a for a, _ in orgs], attack_specs, cfg.seed) if attack_specs else {}
    # On-chain order: members who train, then copiers and free-riders (they wait for something to copy).
    by_address = dict(orgs)
    orgs = [(a, by_address[a]) for a in submission_order([a for a, _ in orgs], planted)]
    # The test set stands in for the federation's public validation set: scores are computed on it.
    fed = LocalFederation.create(
        spec=spec, validation=test, strategy=cfg.strategy, strategy_params=params, scoring=rule, seed=cfg.seed,
        privacy=cohort.params.to_privacy() if cohort is not None else None,
        initial=_pretrained(cfg, spec, public) if public is not None else None,
    )
    feedback = {a: ErrorFeedback(spec) for a, _ in orgs}
    dp = dp_from_options(cfg.dp_epsilon, cfg.dp_delta if cfg.dp_epsilon is not None else None, cfg.dp_budget,
                         clip=cfg.dp_clip if cfg.dp_epsilon is not None else None)  # fmt: skip
    settings = TrainingSettings(
        epochs=cfg.local_epochs, batch_size=cfg.batch_size, lr=cfg.lr, mu=cfg.mu, absent_class_scale=cfg.absent_class_scale,
        codec=codec, dp=dp, class_weights=cfg.class_weights, optimizer=cfg.optimizer, error_feedback=cfg.error_feedback,
        logit_calibration=cfg.logit_calibration,
    )  # fmt: skip
    accounts = {}
    if dp is not None:
        for address, data in orgs:
            check_dp_delta(dp.delta, len(data))  # refuse before the first round, not in the middle of the run
            accounts[address] = PrivacyAccount(None, delta=dp.delta, budget=dp.budget, accountant=dp.accountant)
    result: dict[str, Any] = {
        "config": {**asdict(cfg), "hidden": list(cfg.hidden)},
        "model": {"spec": spec.to_dict(), "spec_digest": spec.digest(), "parameters": spec.num_parameters(),
                  "dense_float32_bytes": 4 * spec.num_parameters()},
        "strategy": {"name": strategy.name, "params": strategy.params()},
        "codec": codec.to_dict(),
        "data": {"train": len(train), "test": len(test), "classes": list(train.classes), "test_support": test.class_counts().tolist(),
                 "holdout": cfg.holdout if cfg.test is None else "test-file",
                 **({"novel_names": novel_names(cfg.dataset), "novel_test_rows": int(novel.sum())} if novel is not None else {})},
        "participants": [
            {"address": a, "samples": len(d), "class_counts": d.class_counts().tolist(), "families_seen": _families(d),
             "attack": planted.get(a)}
            for a, d in sorted(orgs, key=lambda o: o[0].lower())
        ],
        "scoring": rule.to_dict(),
        "privacy_mode": cfg.privacy,
        "genesis": {"kind": "pretrained" if public is not None else "seeded", "public_records": len(public) if public is not None else 0,
                    "model_digest": fed.base_model()[1].hex(), "metrics": evaluate(fed.weights, spec, test)},
        "rounds": [],
    }
    total_steps = cfg.rounds * len(orgs)
    for rnd in range(1, cfg.rounds + 1):
        started = time.perf_counter()
        _, base_digest = fed.base_model()
        sizes: dict[str, int] = {}
        submitted: list[tuple[str, bytes]] = []
        first_honest: bytes | None = None
        privacy: dict[str, dict[str, float]] = {}
        refused: dict[str, str] = {}
        trained: dict[str, Any] = {}
        for j, (address, data) in enumerate(orgs):
            task = RoundTask(rnd, address, base_digest, cfg.seed * 1_000_003 + rnd * 1009 + j)
            kind = planted.get(address)
            account = accounts.get(address)
            try:
                if cohort is not None:  # masked below, with every member's update at once
                    trained[address] = train_round(task, spec, fed.weights, data, settings, privacy=account)
                    if trained[address].mechanism is not None:
                        privacy[address] = {"epsilon": trained[address].epsilon_milli / 1000,
                                            "composed_epsilon": trained[address].privacy["composed_epsilon"]}  # fmt: skip
                    notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
                    continue
                if kind is None:
                    made = produce_update(task, spec, fed.weights, data, settings, feedback=feedback[address], privacy=account)
                else:
                    victim = first_honest if kind in COPY or kind in FREE_RIDE else None
                    made = attacked_update(kind, task, spec, fed.weights, data, settings, victim=victim, noise_seed=cfg.seed,
                                           feedback=feedback[address], privacy=account)  # fmt: skip
            except PrivacyBudgetExhausted as exc:
                refused[address] = str(exc)  # the member sits this round out, as a real participant would
                notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
                continue
            if made.feedback is not None:
                feedback[address] = made.feedback
            if made.trained.mechanism is not None:
                privacy[address] = {"epsilon": made.trained.epsilon_milli / 1000,
                                    "composed_epsilon": made.trained.privacy["composed_epsilon"]}  # fmt: skip
            if kind is None and first_honest is None:
                first_honest = made.blob
            sizes[address] = len(made.blob)
            submitted.append((address, made.blob))
            notify("train", (rnd - 1) * len(orgs) + j + 1, total_steps)
        members: list[dict[str, Any]] = []
        scoring: dict[str, Any] | None = None
        secure = None
        if cohort is not None and trained:
            subs, secure = cohort.run(rnd, base_digest, spec, trained)
            submitted = [(sub.participant, sub.data) for sub in subs]
            sizes = {sub.participant: len(sub.data) for sub in subs}
        if submitted:  # every member may have refused (budget spent): the model then stays as it was
            derived = fed.run_round(submitted, absent=sorted(refused), secure=secure)
            members = members_of(derived, planted)
            scoring = derived.score_report
        metrics = evaluate(fed.weights, spec, test)
        result["rounds"].append({
            "round": rnd,
            "metrics": metrics,
            "update_bytes": sizes,
            "update_bytes_total": sum(sizes.values()),
            "model_digest": model_digest(save_model_bytes(spec, fed.weights)),
            "seconds": round(time.perf_counter() - started, 3),
            "participants": members,
            "scoring": scoring,
            **({"novel": novel_report(fed.weights, spec, test, novel)} if novel is not None else {}),
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
    if cfg.personal_epochs:
        result["personal"] = _personal(cfg, spec, fed.weights, test, orgs, result.get("baselines"))
    return result


def _personal(cfg: SimulationConfig, spec: ModelSpec, weights: Any, test: Any, orgs: list[tuple[str, Any]],
              baselines: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per member, on its own distribution: the global model, its personal (fine-tuned) model, its local-only model."""
    from participant.personal import own_distribution, personalise

    local = {x["address"]: x for x in (baselines or {}).get("local_only", [])}
    out = []
    for j, (address, data) in sorted(enumerate(orgs), key=lambda o: o[1][0].lower()):
        own = own_distribution(test, data)
        # Ordinary softmax: the personal model is for the member's own traffic and may learn what it never sees there.
        mine, how = personalise(spec, weights, data, epochs=cfg.personal_epochs, seed=cfg.seed + 101 + j, batch_size=cfg.batch_size,
                         lr=cfg.lr, class_weights=cfg.class_weights, optimizer=cfg.optimizer,
                         absent_class_scale=1.0, logit_calibration=cfg.logit_calibration)  # fmt: skip
        out.append({"address": address, "own_test_rows": len(own), "choice": how, "global": evaluate(weights, spec, own),
                    "personalised": evaluate(mine, spec, own), "personalised_on_whole_test": evaluate(mine, spec, test),
                    **({"local_only": local[address]["own"]} if address in local else {})})  # fmt: skip
    return out


def _baselines(cfg: SimulationConfig, spec: ModelSpec, train: Any, test: Any, orgs: list[tuple[str, Any]], notify: Progress) -> dict[str, Any]:
    """Centralised (pooled data) and local-only models, trained for as many epochs as one party sees federated."""
    epochs = cfg.rounds * cfg.local_epochs
    init = init_model(spec, cfg.seed)
    common = dict(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, class_weights=cfg.class_weights, optimizer=cfg.optimizer,
                  logit_calibration=cfg.logit_calibration)
    notify("baseline", 0, len(orgs) + 1)
    central = train_local(spec, init, train, seed=cfg.seed + 7, **common)  # type: ignore[arg-type]
    out: dict[str, Any] = {"epochs": epochs, "centralised": evaluate(central.weights, spec, test), "local_only": []}
    for j, (address, data) in enumerate(orgs):
        notify("baseline", j + 1, len(orgs) + 1)
        local = train_local(spec, init, data, seed=cfg.seed + 11 + j, **common)  # type: ignore[arg-type]
        out["local_only"].append({"address": address, "metrics": evaluate(local.weights, spec, test)})
        if cfg.personal_epochs:
            from participant.personal import own_distribution

            out["local_only"][-1]["own"] = evaluate(local.weights, spec, own_distribution(test, data))
    return out
