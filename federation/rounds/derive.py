"""One round, derived: from the round's inputs to the global model, the scores and the manifest.

This is the single function the coordinator (to finalise a round), the auditor (to check
it) and every participant (to check the model it is about to train on) run. It is pure:
the same inputs give the same global model bytes, the same scores and the same manifest
bytes, on any machine. Everything time-dependent (which updates could be fetched before
the reveal window closed) is an input, recorded in the manifest; everything else comes
from the chain (the members eligible when the round opened, the submissions, the quorum)
and the store (the descriptor, the base model, the scoring set, last round's updates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation.canonical import canonical_json
from federation.descriptor import Descriptor
from federation.manifest import MANIFEST_FORMAT
from federation.model import save_model_bytes
from federation.rounds.assessment import AcceptedUpdate, assess_round
from federation.rounds.defences import DefenceParams
from federation.rounds.record import round_header, submission_entry
from federation.rounds.scoring import ScoringRule, round_seed
from federation.rounds.secure import SecureInputs, derive_secure_round
from federation.rounds.strategies import Strategy, strategy_from_name
from federation.rounds.validation import (
    Binding,
    SubmissionInput,
    Verdict,
    validate_submission,
)
from federation.secagg.params import MODE as SECURE_MODE
from federation.updates import NO_LEDGER
from flows import FlowDataset
from ipfs import cid_to_digest, content_cid


@dataclass(frozen=True)
class RoundInputs:
    round_id: int
    descriptor_cid: str
    descriptor: Descriptor
    base_model: bytes  # canonical bytes of the round's base model
    base_weights: Mapping[str, np.ndarray]
    state_in: bytes | None  # strategy state after the base round, re-derived (None before the first)
    submissions: Sequence[SubmissionInput]  # in on-chain order
    eligible: Sequence[str] = ()  # the members the chain counted eligible when the round opened
    validation: FlowDataset | None = None  # the scoring set: the round's hold-out, else the public validation set
    scoring_set: str | None = None  # its CID, recorded in the manifest
    chain_id: int = 0
    ledger: str = NO_LEDGER
    quorum: int = 1  # the ledger's minUpdates
    base_round: int = 0  # the round whose model is the base (0 = genesis)
    previous: Sequence[AcceptedUpdate] = ()  # the updates aggregated in the base round (replay detection)
    # False only in benchmarks of the model alone (scores are then 0); every real round is scored.
    score_contributions: bool = True
    secure: SecureInputs | None = None  # a secure-aggregation round's members, keys and bundles


@dataclass
class RoundResult:
    global_model: bytes
    state_out: bytes | None
    manifest: dict[str, Any]
    scores: dict[str, int]  # participant -> integer score, for every submitter (rejected ones score 0)
    aggregated: list[str] = field(default_factory=list)  # the participants in the model, in address order: scored on chain
    verdicts: list[Verdict] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # the global model's tensors (global_model decoded)
    score_report: dict[str, Any] | None = None  # what scoring cost (evaluations, wall seconds), when it ran
    accepted: list[AcceptedUpdate] = field(default_factory=list)  # the validated updates, decoded (for the next round)

    @property
    def aggregated_updates(self) -> list[AcceptedUpdate]:
        """The decoded updates that went into the model: the next round's replay check compares against them."""
        keep = set(self.aggregated)
        return [u for u in self.accepted if u.participant in keep]

    @property
    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest)


def strategy_of(descriptor: Descriptor) -> Strategy:
    return strategy_from_name(descriptor.strategy, **descriptor.strategy_params)


def scoring_of(descriptor: Descriptor) -> tuple[ScoringRule, DefenceParams]:
    """The descriptor's scoring rule, and the copy / free-rider thresholds (its optional ``defences`` key)."""
    entry = dict(descriptor.scoring)
    defences = entry.pop("defences", None)
    return ScoringRule.from_dict(entry), DefenceParams.from_dict(defences)


def derive_round(inputs: RoundInputs) -> RoundResult:
    """Validate, aggregate, score and describe one round. Deterministic; raises only on unusable inputs."""
    desc = inputs.descriptor
    if desc.privacy_mode == SECURE_MODE:
        return derive_secure_round(inputs, strategy_of(desc), MANIFEST_FORMAT)
    spec = desc.spec
    strategy = strategy_of(desc)
    # The header binds the base model by the digest the chain records (its root block's sha2-256).
    base_hex = cid_to_digest(content_cid(inputs.base_model)).hex()
    rule, defences = scoring_of(desc)
    binding = Binding(inputs.chain_id, inputs.ledger, inputs.round_id, base_hex)
    verdicts: list[Verdict] = []
    accepted: list[AcceptedUpdate] = []
    for sub in inputs.submissions:
        verdict, delta = validate_submission(sub, binding, spec, desc.max_update_bytes)
        if delta is not None:
            accepted.append(AcceptedUpdate(sub.participant, sub.digest, sub.num_samples, delta))
        verdicts.append(verdict)

    state = strategy.state_from_bytes(inputs.state_in) if inputs.state_in else None
    # Every auditor draws the same GTG permutations: the seed is on-chain data only.
    seed = round_seed(inputs.round_id, bytes.fromhex(base_hex), [s.digest for s in inputs.submissions])
    assessed = assess_round(
        strategy=strategy, spec=spec, base_weights=inputs.base_weights, state=state, accepted=accepted,
        validation=inputs.validation, scoring=rule, seed=seed, defences=defences,
        score_contributions=inputs.score_contributions, previous=inputs.previous,
    )  # fmt: skip
    weights, new_state, order = assessed.weights, assessed.state, assessed.order
    for v in verdicts:
        if v.participant in assessed.samples:
            v.weight = strategy.effective_weight(assessed.samples[v.participant])
    global_bytes = save_model_bytes(spec, weights)
    state_out = strategy.state_to_bytes(new_state) if new_state else None
    metrics: dict[str, Any] = _round_floats(assessed.metrics) if inputs.validation is not None else {}
    scores = {s.participant: 0 for s in inputs.submissions}
    scores.update(assessed.scores)
    scoring_entry: dict[str, Any] = dict(desc.scoring)
    if assessed.report is not None and rule.rule == "gtg-shapley":
        scoring_entry["report"] = assessed.report.summary()
    submitted = {s.participant for s in inputs.submissions}

    manifest = {
        **round_header(inputs, strategy, global_bytes, state_out, MANIFEST_FORMAT),
        "submissions": [
            submission_entry(
                s, v, scores[s.participant],
                # Only flagged updates carry these keys, so manifests of clean rounds keep their bytes.
                **({"flags": assessed.flags_of(s.participant)} if assessed.flags_of(s.participant) else {}),
                **({"aggregated": False} if v.accepted and s.participant not in order else {}),
            )
            for s, v in zip(inputs.submissions, verdicts, strict=True)
        ],
        "absent": sorted(a for a in inputs.eligible if a not in submitted),
        "aggregation_order": order,
        "bounds": assessed.bounds,
        "scoring": scoring_entry,
        "scored_on": inputs.scoring_set or desc.validation,
        "validation": desc.validation,
        "metrics": metrics,
    }
    report = None if assessed.report is None else {**assessed.report.summary(), "seconds": round(assessed.report.seconds, 3)}
    return RoundResult(global_bytes, state_out, manifest, scores, list(order), verdicts, metrics, weights, report, accepted)


def _round_floats(obj: Any) -> Any:
    """Metrics rounded to 6 decimals: JSON-stable, and far below any difference that matters."""
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {str(k): _round_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round_floats(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        return round(float(obj), 6)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj
