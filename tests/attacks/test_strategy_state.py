"""A hostile coordinator forges the server-optimiser state carried between rounds (issue 12.3).

A real anvil with the compiled ledger, the embedded store on disk, real participants (torch) and
the audit, in a FedAvgM federation (server momentum 0.9): the momentum buffer each round leaves
is not on chain, only named by CID in the manifest the coordinator writes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contracts.anvil import LocalAnvil
from federation.rounds.derive import derive_round
from federation.rounds.strategies import strategy_from_name
from fedledger.audit import Auditor
from ipfs import cid_to_digest, content_cid
from participant.service import BaseRefused
from tests.helpers.runtime import Env, make_env, run_round


def _finalise_with_forged_state(env: Env, round_id: int) -> tuple[str, str]:
    """Close ``round_id`` on the real updates, but with a momentum buffer of the coordinator's choosing."""
    coord = env.coordinator()
    coord.reveal_holdout(round_id)
    inputs = coord.replay.gather(round_id)
    strategy = strategy_from_name("fedavgm", momentum=0.9)
    honest = strategy.state_from_bytes(inputs.state_in)
    rng = np.random.default_rng(1)
    # A momentum that pushes every weight a chosen way: the members' updates are all real, only the
    # state the coordinator says it carried over is not.
    forged = strategy.state_to_bytes({k: (rng.normal(size=v.shape) * 0.5).astype(np.float32) for k, v in honest.items()})
    assert forged != inputs.state_in
    env.store.put(forged)
    result = derive_round(dataclasses.replace(inputs, state_in=forged))
    assert result.manifest["state_in"] == content_cid(forged)  # a manifest consistent with what was done
    gcid, mcid = coord.publish(result)
    env.coordinator_ledger.finalize_round(
        round_id, cid_to_digest(gcid), cid_to_digest(mcid), result.aggregated, [result.scores[a] for a in result.aggregated]
    )
    return gcid, content_cid(forged)


def test_a_forged_momentum_state_is_a_mismatch_and_members_refuse_the_model_it_gave(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: the coordinator read the strategy state for a round from the previous finalised
    round's manifest (its `state_out` CID), a file the coordinator itself writes and nothing on
    chain binds. A coordinator could carry any momentum buffer into a round (here one drawn to push
    every weight a chosen way), aggregate the members' real updates with it and write a manifest
    that names it; the members then trained on the result.

    Now the state is never read from a manifest: the coordinator, every member before training and
    the audit re-derive it from the rounds before (genesis, the chain's updates, the descriptor).
    The forged round is a mismatch naming its `state_in` and its global model, the honest round
    before it verifies, and every member refuses to train on the forged round's model."""
    env = make_env(tmp_path, chain, strategy="fedavgm", strategy_params={"momentum": 0.9})
    assert run_round(env, [0, 1, 2]).finalized
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    for i in range(3):
        assert env.participant(i).step() is not None
    env.close_submissions(2)
    for i in range(3):
        env.participant(i).step()
    gcid, forged = _finalise_with_forged_state(env, 2)

    report = Auditor(env.ledger, env.store).audit()
    assert [r.verdict for r in report.rounds] == ["verified", "mismatch"]
    problems = " ".join(report.rounds[1].mismatches)
    print(f"\naudit of round 2: {problems}")
    assert "global model" in problems and f"state_in is {forged}" in problems

    assert coord.step(None) == "opened"  # round 3 starts from the forged round's model
    for i in range(3):
        with pytest.raises(BaseRefused, match="is not the aggregate of its updates") as refused:
            env.participant(i).step()
        assert gcid in str(refused.value)
        assert env.ledger.get_submission(3, env.orgs[i].address) is None
