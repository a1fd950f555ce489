"""Helpers for the explorer's tests: a small federation with a tampered round, and the explorer over it."""

from __future__ import annotations

from pathlib import Path

from fedledger.explorer.details import ChainDetails
from fedledger.explorer.index import FederationIndex
from ipfs import cid_to_digest
from tests.helpers.runtime import Env

TAMPER_BONUS = 500


def finalize_with_inflated_scores(env: Env) -> int:
    """A round a dishonest coordinator finalises with the right model and manifest but every score +500."""
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    for i in range(len(env.orgs)):
        env.participant(i).step()
    env.close_submissions(round_id)
    for i in range(len(env.orgs)):
        env.participant(i).step()  # reveal
    coord.reveal_holdout(round_id)
    result = coord.replay.derive(round_id).result
    g, m = env.store.put(result.global_model), env.store.put(result.manifest_bytes)
    paid = list(result.aggregated)
    env.coordinator_ledger.finalize_round(
        round_id, cid_to_digest(g), cid_to_digest(m), paid, [result.scores[a] + TAMPER_BONUS for a in paid]
    )
    return round_id


def explorer_over(env: Env, cache_dir: Path, **kw) -> tuple[FederationIndex, ChainDetails]:  # noqa: ANN003
    index = FederationIndex(env.ledger, env.store, cache_dir=cache_dir, descriptor_cid=env.fed.descriptor_cid, **kw)
    return index, ChainDetails(env.ledger, env.store)
