"""A member's DP state under attack: history that forgets, residuals that leak, files others can read, noise anyone can regenerate.

One organisation takes part in two federations on a real anvil (two ledgers) with the same
flows and the same state directory, through the real participant service (opacus DP-SGD),
the coordinator and the embedded store.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from contracts.anvil import LocalAnvil
from federation.model import load_model_bytes
from federation.privacy import composed_epsilon
from federation.updates import decode_update
from ipfs import digest_to_cid
from participant.budget import PrivacyBudgetExhausted
from participant.dp_training import DPConfig
from participant.service import ParticipantService
from participant.update import RoundTask, TrainingSettings
from tests.helpers.runtime import FAST, Env, make_env

DP_FAST = TrainingSettings(epochs=1, batch_size=256, lr=0.005, deadline_margin=0.5, dp=DPConfig(epsilon=1.0, delta=1e-5))


def _member(env: Env, state_dir: Path, settings: TrainingSettings, data=None) -> ParticipantService:  # noqa: ANN001
    """Organisation 0 of ``env``'s federation, keeping its state in ``state_dir``."""
    return ParticipantService(
        env.ledger.with_account(env.orgs[0]), env.store, env.fed.descriptor, env.data[0] if data is None else data,
        state_dir=state_dir, descriptor_cid=env.fed.descriptor_cid, settings=settings,
    )  # fmt: skip


def _round(env: Env, member: ParticipantService) -> None:
    """One round: ``member`` (organisation 0) and organisations 1 and 2 commit, reveal, and the coordinator finalises."""
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    assert member.step() is not None
    for i in (1, 2):
        assert env.participant(i).step() is not None
    member.step()
    for i in (1, 2):
        env.participant(i).step()
    out = coord.close_round(round_id)
    assert out is not None and out.finalized and env.orgs[0].address in out.result.aggregated


def test_privacy_spent_in_one_federation_composes_with_another_on_the_same_flows(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: the privacy history was keyed by round id only, in a state directory tied to no
    ledger. Three DP rounds in federation A composed to epsilon 3.184; federation B's round 1 then
    overwrote A's round 1, and the total still read 3.184 after four releases of the same flows.

    Now entries are keyed by (chain id, ledger, descriptor) and round and tagged with the flows'
    fingerprint: after A's three rounds and B's first, the history holds four entries and the
    composed total is the accountant's figure for all four. A budget between the three-round and
    the four-round totals refuses B's round before anything is trained or submitted."""
    fed_a, fed_b = make_env(tmp_path / "a", chain), make_env(tmp_path / "b", chain)
    assert fed_a.ledger.address != fed_b.ledger.address
    state = tmp_path / "org0-state"
    member_a = _member(fed_a, state, DP_FAST)
    for _ in range(3):
        _round(fed_a, member_a)
    assert member_a.privacy is not None
    history = member_a.privacy.history()
    three = member_a.privacy.composed()
    assert len(history) == 3 and three == pytest.approx(composed_epsilon(history, 1e-5))
    four_expected = composed_epsilon([*history, history[-1]], 1e-5)
    assert four_expected > three

    budget = (three + four_expected) / 2
    capped = _member(fed_b, state, TrainingSettings(**{**DP_FAST.__dict__, "dp": DPConfig(epsilon=1.0, delta=1e-5, budget=budget)}),
                     data=fed_a.data[0])  # fmt: skip
    coord_b = fed_b.coordinator()
    assert coord_b.step(None) == "opened"
    before = (state / "privacy-history.json").read_bytes()
    with pytest.raises(PrivacyBudgetExhausted, match="privacy budget exhausted"):
        capped.step()
    assert fed_b.ledger.get_submission(1, fed_b.orgs[0].address) is None
    assert (state / "privacy-history.json").read_bytes() == before  # a refusal records nothing

    member_b = _member(fed_b, state, DP_FAST, data=fed_a.data[0])  # the same flows, no budget
    assert member_b.step() is not None
    for i in (1, 2):
        fed_b.participant(i).step()
    for svc in (member_b, fed_b.participant(1), fed_b.participant(2)):
        svc.step()
    assert coord_b.close_round(1).finalized  # type: ignore[union-attr]
    assert member_b.privacy is not None
    summary = member_b.privacy.summary()
    print(f"\ncomposed after A's three rounds {three:.3f}; after B's first {summary['composed_epsilon']:.3f}")
    assert len(summary["federations"]) == 2 and len(member_b.privacy.history()) == 4
    assert summary["composed_epsilon"] == pytest.approx(four_expected)
    assert [r["round"] for r in summary["rounds"]] == [1]  # B's own rounds; the total runs over both


def test_a_residual_is_never_carried_into_another_mode_or_federation(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: the error-feedback residual was keyed only by the model spec, so a residual left by
    plain training (a function of the flows, never noised) was added un-noised into the member's
    next DP update, and into its updates for any other federation.

    Now the residual is kept per federation and tagged with the mode: after a plain round in A
    the residual is non-zero for plain training in A, and a fresh zero for DP training in A and
    for plain training in B (same state directory)."""
    fed_a, fed_b = make_env(tmp_path / "a", chain), make_env(tmp_path / "b", chain)
    state = tmp_path / "org0-state"
    plain_a = _member(fed_a, state, FAST)
    _round(fed_a, plain_a)
    assert _member(fed_a, state, FAST)._error_feedback().residual_norm() > 0
    assert _member(fed_a, state, DP_FAST)._error_feedback().residual_norm() == 0
    assert _member(fed_b, state, FAST, data=fed_a.data[0])._error_feedback().residual_norm() == 0
    # A DP round in A starts from a zero residual, and leaves one only DP training in A will use.
    _round(fed_a, _member(fed_a, state, DP_FAST))
    assert _member(fed_a, state, DP_FAST)._error_feedback().residual_norm() > 0
    assert _member(fed_a, state, FAST)._error_feedback().residual_norm() == 0


def test_state_files_are_the_owners_alone(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: the residual and the privacy history were written 0644, readable by every user of the
    host; both are functions of the member's flows.

    Now, after a DP round with error feedback (privacy history, residual, the committed update kept
    for its reveal, the reveal marker), every file in the state directory is 0600 and every
    directory 0700, whatever the umask."""
    env = make_env(tmp_path, chain)
    state = tmp_path / "org0-state"
    old = os.umask(0o022)
    try:
        _round(env, _member(env, state, DP_FAST))
    finally:
        os.umask(old)
    files = [p for p in state.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"privacy-history.json", "error-feedback.safetensors", "round-1.update", "round-1.revealed"} <= names
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o600"}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in [state, *state.rglob("*")] if p.is_dir()} == {"0o700"}


def test_dp_noise_cannot_be_regenerated_from_public_values(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: training was seeded from sha256 of the descriptor's seed, the round and the member's
    address, all public, and the DP noise was drawn from that seed: regenerating and subtracting it
    recovered the clipped update to about 1e-7, so the stated (epsilon, delta) did not hold.

    Now the noise and the Poisson sampling come from the operating system's CSPRNG: the service
    making the same member's update twice for the same round, from the same public seed, gives
    two different updates (far apart, not a rounding difference), while without DP it gives the
    same bytes (training stays deterministic, which crash recovery relies on)."""
    env = make_env(tmp_path, chain)
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    info = env.ledger.get_round(1)
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), env.fed.descriptor.spec)

    def made(settings: TrainingSettings, state: str) -> bytes:
        svc = _member(env, tmp_path / state, settings)
        task = RoundTask(1, svc.address, info.base_model, svc.round_seed(1), env.ledger.chain_id, env.ledger.address)
        return svc.make_update(task, base, info.deadline).blob

    first, second = made(DP_FAST, "s1"), made(DP_FAST, "s2")
    assert first != second
    spec = env.fed.descriptor.spec
    (_, d1), (_, d2) = decode_update(first, spec), decode_update(second, spec)
    diff = np.sqrt(sum(float(np.sum((d1[k].astype(np.float64) - d2[k]) ** 2)) for k in d1))
    norm = np.sqrt(sum(float(np.sum(d1[k].astype(np.float64) ** 2)) for k in d1))
    print(f"\ntwo DP updates from one public seed: |a - b| = {diff:.4g}, |a| = {norm:.4g}")
    assert diff > 0.1 * norm
    assert made(FAST, "p1") == made(FAST, "p2")
