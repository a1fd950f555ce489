"""Secure-aggregation federations for the tests: five organisations on a real anvil chain and the real store.

Rounds are driven step by step on the chain's clock (never by sleeping): every member binds
its key, the coordinator opens, the sharers share, the committers train and commit, and,
once submissions close, every committer reveals its masked bytes and then its shares.
"""

from __future__ import annotations

from pathlib import Path

from contracts.anvil import LocalAnvil
from federation.secagg import SecureParams
from tests.helpers.runtime import Env, make_env

SHARE_SECONDS = 120


def make_secure_env(tmp_path: Path, chain: LocalAnvil, *, participants: int = 5, threshold: int = 3,
                    min_updates: int = 2, share_seconds: int = SHARE_SECONDS, **federation: object) -> Env:  # fmt: skip
    params = SecureParams.for_members(participants, threshold, share_seconds=share_seconds)
    options: dict[str, object] = {"reveal_seconds": 60, **federation}  # a window that outlasts a test's steps
    return make_env(tmp_path, chain, participants=participants, min_updates=min_updates, privacy=params.to_privacy(),
                    **options)  # fmt: skip


def bind_keys(env: Env, members: list[int] | None = None) -> None:
    for i in members if members is not None else range(len(env.orgs)):
        env.participant(i).step()


def pass_share_phase(env: Env, round_id: int) -> None:
    phases = env.ledger.round_phases(round_id)
    if phases.share_count < phases.eligible:
        env.chain.increase_time(max(1, phases.share_deadline - env.chain.block_timestamp() + 1))


def run_secure_round(env: Env, coordinator=None, *, share: list[int] | None = None, commit: list[int] | None = None,  # noqa: ANN001
                     reveal: list[int] | None = None, close: bool = True):  # fmt: skip
    """One round: ``share`` deal shares, ``commit`` (default: the sharers) commit, ``reveal`` (default: the committers) reveal."""
    everyone = list(range(len(env.orgs)))
    share = everyone if share is None else share
    commit = share if commit is None else commit
    reveal = commit if reveal is None else reveal
    coord = coordinator or env.coordinator()
    if env.ledger.current_round() == 0:
        bind_keys(env)
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    for i in share:
        assert env.participant(i).step() is None  # deals and publishes its shares
    pass_share_phase(env, round_id)
    for i in commit:
        assert env.participant(i).step() is not None  # trains, masks and commits
    env.close_submissions(round_id)
    # First the masked bytes, then (once every committed update is in) the shares. A member whose
    # fetch of a peer's update outlasts its short wait looks again on its next step, as it would
    # in `participant run`: step until every revealer's shares are on chain (bounded).
    for _ in range(10):
        for i in reveal:
            env.participant(i).step()
        if env.ledger.round_phases(round_id).reveal_count >= len(reveal):
            break
    if not close:
        return round_id
    return coord.close_round(round_id)


def training_delta(env: Env, i: int, round_id: int) -> tuple[dict, int]:
    """Member ``i``'s update in ``round_id`` as it trained it (training without DP is deterministic), and its samples."""
    from federation.model import load_model_bytes
    from ipfs import digest_to_cid
    from participant.update import RoundTask, train_round
    from tests.helpers.runtime import FAST

    info = env.ledger.get_round(round_id)
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), env.fed.descriptor.spec)
    p = env.participant(i)
    task = RoundTask(round_id, p.address, info.base_model, p.round_seed(round_id), env.ledger.chain_id, env.ledger.address)
    trained = train_round(task, env.fed.descriptor.spec, base, env.data[i], FAST)
    return trained.delta, trained.num_samples
