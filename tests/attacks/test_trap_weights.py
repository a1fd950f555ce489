"""A hostile coordinator publishes a crafted model instead of the round's aggregate (trap weights, issue 12.1).

Played on a real anvil with the compiled ledger, the embedded store and the real participant
service (torch): the coordinator finalises a model of its own making, with a manifest that
names it; every member re-derives that round before training on its model.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from contracts.anvil import LocalAnvil
from contracts.client import RoundState
from federation.canonical import canonical_json
from federation.model import save_model_bytes
from fedledger.audit import Auditor
from ipfs import cid_to_digest
from participant.service import BaseRefused
from tests.helpers.runtime import Env, make_env, run_round


def _finalise_crafted(env: Env, round_id: int) -> str:
    """Close ``round_id`` honestly up to the derivation, then finalise a crafted model in place of the aggregate."""
    coord = env.coordinator()
    coord.reveal_holdout(round_id)
    result = coord.replay.derive(round_id).result
    rng = np.random.default_rng(0)
    trap = {k: np.array(v, dtype=np.float32) for k, v in result.weights.items()}
    # A first layer of rarely-firing neurons: large random weights, strongly negative biases.
    trap["layers.00.weight"] = (rng.normal(size=trap["layers.00.weight"].shape) * 5).astype(np.float32)
    trap["layers.00.bias"] = np.full_like(trap["layers.00.bias"], -20.0)
    crafted = save_model_bytes(env.fed.descriptor.spec, trap)
    gcid = env.store.put(crafted)
    manifest = dict(result.manifest, global_model=gcid)  # a manifest that names the crafted model
    mcid = env.store.put(canonical_json(manifest))
    env.coordinator_ledger.finalize_round(
        round_id, cid_to_digest(gcid), cid_to_digest(mcid), result.aggregated, [result.scores[a] for a in result.aggregated]
    )
    return gcid


def test_members_refuse_to_train_on_a_model_that_is_not_the_rounds_aggregate(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: a participant trained on whatever model the coordinator finalised, checking only its
    digest and format. A coordinator that published a crafted model (a first layer of rarely-firing
    neurons tuned on the public validation set) read, from one int8 update of 200 private flows,
    the protocol, service and flag fields and the sign of every numeric feature of 115 of them.

    Now a member re-derives the round that produced its base (the audit's derivation, fed from
    the chain and the store) before training, and refuses a model the derivation does not give:
    BaseRefused, nothing trained, nothing kept, nothing submitted; the service keeps running and
    skips the round. The round with the crafted model aborts for want of updates, the admin
    rebases the lineage on the last honest round, and the next round trains on it. The audit
    names the crafted round a mismatch and verifies the others. The verification's cost per
    round is measured and printed."""
    env = make_env(tmp_path, chain)
    assert run_round(env, [0, 1, 2]).finalized
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    costs = []
    for i in range(3):
        done = env.participant(i).step()
        assert done is not None and done.verify_seconds > 0  # it re-derived round 1 before training on its model
        costs.append(done.verify_seconds)
    for i in range(3):
        env.participant(i).step()
    print(f"\nverifying round 1 before training on its model: {', '.join(f'{s:.3f}' for s in costs)} s per member")
    assert max(costs) < 30

    crafted = _finalise_crafted(env, 2)
    assert env.ledger.latest_model() == cid_to_digest(crafted)
    assert coord.step(None) == "opened"  # round 3 must start from the crafted model
    events: list[tuple[str, dict]] = []
    member = env.participant(0, on_event=lambda kind, info: events.append((kind, info)))
    with pytest.raises(BaseRefused, match="is not the aggregate of its updates") as refused:
        member.step()
    print(f"member 0: {refused.value}")
    assert crafted in str(refused.value) and refused.value.hint
    assert [k for k, _ in events] == ["verified"] and events[0][1]["ok"] is False  # never fetched or trained
    assert env.ledger.get_submission(3, env.orgs[0].address) is None
    assert not list((member.fed_dir / "updates").glob("round-3.*"))
    for i in (1, 2):
        with pytest.raises(BaseRefused):
            env.participant(i).step()

    stop = threading.Event()
    skipped: list[dict] = []
    worker = threading.Thread(
        target=lambda: env.participant(1, on_event=lambda k, info: k == "skipped" and skipped.append(info)).run(stop=stop),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=3)
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive() and skipped and skipped[0]["kind"] == "BaseRefused"  # it kept running, refusing

    env.close_submissions(3)
    out = coord.close_round(3)
    assert out is not None and not out.finalized and env.ledger.get_round(3).state == RoundState.ABORTED
    env.ledger.rebase_lineage(1)  # the admin's way back to the last honest model
    fourth = run_round(env, [0, 1, 2], coord)
    assert fourth.finalized and len(fourth.result.aggregated) == 3

    report = Auditor(env.ledger, env.store).audit()
    assert [r.verdict for r in report.rounds] == ["verified", "mismatch", "aborted", "verified"]
    assert any("global model" in m for m in report.rounds[1].mismatches)
    assert [(r["from_round"], r["to_round"]) for r in report.rebases] == [(2, 1)]
