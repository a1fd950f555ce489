"""Helpers for the explorer's tests: a small federation with a tampered round, and the explorer over it."""

from __future__ import annotations

from pathlib import Path

from federation.model import load_model_bytes
from federation.rounds.derive import RoundInputs, SubmissionInput, derive_round
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.index import FederationIndex
from ipfs import cid_to_digest, digest_to_cid
from tests.helpers.runtime import Env

TAMPER_BONUS = 500


def finalize_with_inflated_scores(env: Env) -> int:
    """A round a dishonest coordinator finalises with the right model and manifest but every score +500."""
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    for i in range(len(env.orgs)):
        env.participant(i).step()
    info = env.ledger.get_round(round_id)
    subs = env.ledger.submitters(round_id)
    base = env.store.get(digest_to_cid(info.base_model))
    records = [env.ledger.get_submission(round_id, a) for a in subs]
    result = derive_round(RoundInputs(
        round_id, env.fed.descriptor_cid, env.fed.descriptor, base, load_model_bytes(base)[1], coord.previous_state(round_id),
        [SubmissionInput(a, s.update, s.num_samples, s.epsilon_milli, env.store.get(digest_to_cid(s.update)))
         for a, s in zip(subs, records, strict=True)],
        validation=coord.validation,
    ))  # fmt: skip
    g, m = env.store.put(result.global_model), env.store.put(result.manifest_bytes)
    env.ledger.finalize_round(round_id, cid_to_digest(g), cid_to_digest(m), subs, [result.scores[a] + TAMPER_BONUS for a in subs])
    return round_id


def explorer_over(env: Env, cache_dir: Path, **kw) -> tuple[FederationIndex, ChainDetails]:  # noqa: ANN003
    index = FederationIndex(env.ledger, env.store, cache_dir=cache_dir, descriptor_cid=env.fed.descriptor_cid, **kw)
    return index, ChainDetails(env.ledger, env.store)
