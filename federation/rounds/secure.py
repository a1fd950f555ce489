"""One secure-aggregation round, derived: from the chain's member sets and the store's bundles to the global model.

The same pure function as :func:`federation.rounds.derive.derive_round` for federations in
``secure-aggregation`` mode, run by the coordinator, every auditor and every participant
that checks its base model. No update is ever decoded on its own: the masks are removed
(:func:`federation.secagg.unmask`), the sum gives Σq·x and Σq, and the strategy (one that
works on sums: FedAvg, FedAvgM, FedAdam) turns their ratio into the next model.

What this mode gives up, by construction: per-update validation beyond the header (the clip
range is the bound on what any member adds), robust rules, defences that compare updates,
and scores of quality: a member's score is its share of the round's sample weight
(:func:`federation.rounds.scoring.sample_share`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from federation.metrics import evaluate
from federation.model import save_model_bytes
from federation.rounds.record import round_header, submission_entry
from federation.rounds.scoring import ScoringRule, sample_share
from federation.rounds.validation import Verdict
from federation.secagg import (
    MaskedSubmission,
    SecureParams,
    SecureRound,
    decode_sum,
    unmask,
)
from ipfs import cid_to_digest, content_cid

if TYPE_CHECKING:
    from federation.rounds.derive import RoundInputs, RoundResult


@dataclass(frozen=True)
class SecureInputs:
    """What a secure round adds to a round's inputs: its members and keys, and the bundles the chain references."""

    round: SecureRound
    bundles: Mapping[str, bytes | None]  # every member that published shares on chain -> its bundle (None: not fetched)
    bundle_cids: Mapping[str, str]
    reveals: Mapping[str, bytes | None]  # every member that revealed shares on chain -> its reveal bundle
    reveal_cids: Mapping[str, str]


def derive_secure_round(inputs: RoundInputs, strategy: Any, manifest_format: str) -> RoundResult:
    """Unmask, aggregate, score and describe one secure round; :class:`federation.secagg.UnmaskError` if it cannot be unmasked."""
    from federation.rounds.derive import RoundResult, _round_floats

    desc, spec = inputs.descriptor, inputs.descriptor.spec
    sec = inputs.secure
    if sec is None:
        raise ValueError("a secure-aggregation round needs its secure inputs")
    params = SecureParams.from_privacy(desc.privacy)
    base_hex = cid_to_digest(content_cid(inputs.base_model)).hex()
    subs = [MaskedSubmission(s.participant, s.num_samples, s.epsilon_milli, s.data, s.fetch_error) for s in inputs.submissions]
    un = unmask(sec.round, spec, base_hex, sec.bundles, subs, sec.reveals)
    total, weight = decode_sum(un.total, spec)
    state = strategy.state_from_bytes(inputs.state_in) if inputs.state_in else None
    agg = strategy.aggregate_sum(inputs.base_weights, total, float(weight), state)
    weights = agg.weights
    global_bytes = save_model_bytes(spec, weights)
    state_out = strategy.state_to_bytes(agg.state) if agg.state else None
    metrics: dict[str, Any] = _round_floats(evaluate(weights, spec, inputs.validation)) if inputs.validation is not None else {}
    rule = ScoringRule.from_dict(desc.scoring)
    scores = {s.participant: 0 for s in inputs.submissions}
    scores.update(sample_share(un.weight_q, rule))

    verdicts = []
    for s in inputs.submissions:
        if s.participant in un.weight_q:
            verdicts.append(Verdict(s.participant, True, weight=float(un.weight_q[s.participant]),
                                    privacy=un.privacy.get(s.participant)))  # fmt: skip
        else:
            why = un.left_out.get(s.participant) or un.statuses.get(s.participant, "not in the sum")
            # An update not fetched in time keeps its availability reason: the audit tells that apart.
            verdicts.append(Verdict(s.participant, False, "left-out" if s.data is not None else (s.fetch_error or "unavailable"), why))
    submitted = {s.participant for s in inputs.submissions}
    manifest = {
        **round_header(inputs, strategy, global_bytes, state_out, manifest_format),
        "submissions": [submission_entry(s, v, scores[s.participant]) for s, v in zip(inputs.submissions, verdicts, strict=True)],
        "absent": sorted(a for a in inputs.eligible if a not in submitted),
        "aggregation_order": list(un.survivors),
        "secure_aggregation": {
            **{k: v for k, v in params.to_privacy().items() if k != "mode"},
            "scale_bits": params.scale_bits,
            "members": [
                {"participant": m, "key": sec.round.member_keys[m].hex(), "shares": sec.bundle_cids.get(m),
                 "reveal": sec.reveal_cids.get(m), "status": un.statuses[m]}
                for m in sec.round.members
            ],
            "dropped": list(un.dropped),
            "weight_sum": int(weight),
            "findings": [f.to_dict() for f in un.findings],
        },  # fmt: skip
        "bounds": {},
        "scoring": dict(desc.scoring),
        "scored_on": inputs.scoring_set or desc.validation,
        "validation": desc.validation,
        "metrics": metrics,
    }
    return RoundResult(global_bytes, state_out, manifest, scores, list(un.survivors), verdicts, metrics,
                       {k: np.asarray(v) for k, v in weights.items()}, None, [])  # fmt: skip
