"""Members and a coordinator that cheat a secure round: what the unmasking and the audit make of each.

Each attacker is a real member running the real protocol with one step changed (the dealer's
shares, the revealer's shares, the masked bytes), on a real anvil chain and the real store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import participant.secure as member_side
from contracts.anvil import LocalAnvil
from federation.model import load_model_bytes, save_model_bytes
from federation.secagg.shares import (
    SEED,
    RevealBundle,
    Share,
    encrypt_share,
    share_message,
)
from fedledger.audit import Auditor
from ipfs import cid_to_digest, digest_to_cid
from participant.service import BaseRefused
from tests.helpers.runtime import manifest_of
from tests.helpers.secure import (
    bind_keys,
    make_secure_env,
    pass_share_phase,
    run_secure_round,
)


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil() as node:
        yield node


def _round_until_commit(env, attacker: int, monkeypatch, **patches) -> int:  # noqa: ANN001, ANN003
    """Open a round; every member shares and commits, ``attacker`` with ``patches`` applied to its own steps."""
    coord = env.coordinator()
    bind_keys(env)
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    for phase in ("share", "commit"):
        for i in range(5):
            with monkeypatch.context() as m:
                if i == attacker:
                    for name, fn in patches.get(phase, {}).items():
                        m.setattr(member_side, name, fn)
                assert (env.participant(i).step() is None) == (phase == "share")
        if phase == "share":
            pass_share_phase(env, round_id)
    return round_id


def _reveal_all(env, round_id: int, monkeypatch, attacker: int | None = None, **patches) -> None:  # noqa: ANN001, ANN003
    env.close_submissions(round_id)
    # Masked bytes first, then the shares; a member whose fetch of a peer's update outlasts its short
    # wait looks again on its next step, as in `participant run`: step until all five reveals are on chain.
    for _ in range(10):
        for i in range(5):
            with monkeypatch.context() as m:
                if i == attacker:
                    for name, fn in patches.items():
                        m.setattr(member_side, name, fn)
                env.participant(i).step()
        if env.ledger.round_phases(round_id).reveal_count >= 5:
            break


def test_a_dealer_that_signs_a_bad_share_is_named_and_the_round_survives(tmp_path: Path, chain: LocalAnvil, monkeypatch) -> None:
    """Member 4 deals the first member a seed share off its polynomial, signed: the first shares tried do not
    rebuild its committed seed, another subset does, and the manifest and the audit name member 4 as the dealer."""
    env = make_secure_env(tmp_path, chain)
    real_deal = member_side.deal

    def bad_deal(rnd, me, secrets, member_key, sign):  # noqa: ANN001, ANN202
        bundle = real_deal(rnd, me, secrets, member_key, sign)
        victim = rnd.members[0]
        value = bytes(33 * [7])
        share = Share(me, victim, SEED, 1, value, sign(share_message(rnd.ctx, me, victim, SEED, 1, value)))
        bundle.ciphertexts[victim][SEED] = encrypt_share(share, rnd.ctx, member_key, rnd.member_keys[victim])
        return bundle

    round_id = _round_until_commit(env, 4, monkeypatch, share={"deal": bad_deal})
    _reveal_all(env, round_id, monkeypatch)
    out = env.coordinator().close_round(round_id)
    assert out is not None and out.finalized and len(out.result.aggregated) == 5
    dealer = env.orgs[4].address
    findings = manifest_of(env, round_id)["secure_aggregation"]["findings"]
    assert any(f["party"] == dealer and "not on its polynomial" in f["problem"] for f in findings), findings
    verdict = Auditor(env.ledger, env.store).audit().rounds[0]
    assert verdict.ok and any(dealer in n and "not on its polynomial" in n for n in verdict.notes), verdict


def test_a_revealer_that_forges_a_share_is_named_and_its_share_not_counted(tmp_path: Path, chain: LocalAnvil, monkeypatch) -> None:
    """Member 0 reveals a share of member 4's seed with a value member 4 never signed: it is refused and named
    against member 0 (the revealer), and the round is unmasked with the others' shares."""
    env = make_secure_env(tmp_path, chain)
    round_id = _round_until_commit(env, None, monkeypatch)  # type: ignore[arg-type]
    real_reveal = member_side.reveal
    victim = env.orgs[4].address

    def forged(rnd, me, member_key, peers, masked_in):  # noqa: ANN001, ANN202
        bundle = real_reveal(rnd, me, member_key, peers, masked_in)
        shares = tuple(Share(s.dealer, s.recipient, s.kind, s.index, bytes(33), s.signature) if s.dealer == victim else s
                       for s in bundle.shares)  # fmt: skip
        return RevealBundle(bundle.chain_id, bundle.ledger, bundle.round_id, bundle.sender, shares, bundle.complaints)

    _reveal_all(env, round_id, monkeypatch, attacker=0, reveal=forged)
    out = env.coordinator().close_round(round_id)
    assert out is not None and out.finalized and len(out.result.aggregated) == 5
    liar = env.orgs[0].address
    findings = manifest_of(env, round_id)["secure_aggregation"]["findings"]
    assert {"party": liar, "problem": f"revealed a seed share of {victim} that {victim} did not sign"} in findings
    assert Auditor(env.ledger, env.store).audit().ok


def test_a_masked_update_bound_to_another_round_is_left_out_and_named(tmp_path: Path, chain: LocalAnvil, monkeypatch) -> None:
    """Member 4 commits a masked update whose header binds another round: every member sees it refused, reveals its
    key shares, and the round goes on without it; the manifest names why."""
    env = make_secure_env(tmp_path, chain)
    real_encode = member_side.encode_masked

    def wrong_round(header, masked):  # noqa: ANN001, ANN202
        from dataclasses import replace

        return real_encode(replace(header, round_id=header.round_id + 1), masked)

    round_id = _round_until_commit(env, 4, monkeypatch, commit={"encode_masked": wrong_round})
    _reveal_all(env, round_id, monkeypatch)
    out = env.coordinator().close_round(round_id)
    assert out is not None and out.finalized and len(out.result.aggregated) == 4
    cheat = env.orgs[4].address
    entry = next(e for e in manifest_of(env, round_id)["submissions"] if e["participant"] == cheat)
    assert entry["status"] == "rejected" and "round-mismatch" in entry["detail"]
    assert Auditor(env.ledger, env.store).audit().ok


def test_a_masked_update_altered_after_masking_stops_the_round_and_the_audit_says_why(tmp_path: Path, chain: LocalAnvil, monkeypatch) -> None:
    """Member 4 adds noise to its masked words: well-formed, so its seed is revealed, but the unmasked weights no
    longer sum to what the chain's sample counts give. The coordinator refuses to finalise a sum it cannot vouch
    for; after the grace period the round is aborted and the audit of the aborted round names the check that failed.
    (Which member did it cannot be told: only the sum is ever in the clear.)"""
    env = make_secure_env(tmp_path, chain, abort_grace=300)
    real_encode = member_side.encode_masked

    def noisy(header, masked):  # noqa: ANN001, ANN202
        return real_encode(header, masked + np.uint32(12345))

    round_id = _round_until_commit(env, 4, monkeypatch, commit={"encode_masked": noisy})
    _reveal_all(env, round_id, monkeypatch)
    coord = env.coordinator()
    assert coord.close_round(round_id) is None  # waits: the sum fails its check
    info = env.ledger.get_round(round_id)
    env.chain.increase_time(info.deadline + 300 - env.chain.block_timestamp() + 1)
    out = coord.close_round(round_id)
    assert out is not None and not out.finalized and "not made by the protocol" in (out.reason or "")
    verdict = Auditor(env.ledger, env.store).audit().rounds[0]
    assert verdict.state == "aborted" and any("not made by the protocol" in n for n in verdict.notes), verdict.notes


def test_a_coordinator_that_publishes_another_model_is_caught_and_nobody_trains_on_it(tmp_path: Path, chain: LocalAnvil) -> None:
    """The coordinator unmasks honestly but finalises a crafted model (say, trap weights): the audit re-runs the
    unmasking and finds another model, and every member refuses to train on it in the next round."""
    env = make_secure_env(tmp_path, chain)
    round_id = run_secure_round(env, close=False)
    coord = env.coordinator()
    coord.reveal_holdout(round_id)
    result = coord.replay.derive(round_id).result
    spec = env.fed.descriptor.spec
    _, weights = load_model_bytes(result.global_model, spec)
    crafted = {k: (v * 3).astype(np.float32) for k, v in weights.items()}
    gcid, mcid = env.store.put(save_model_bytes(spec, crafted)), env.store.put(result.manifest_bytes)
    env.coordinator_ledger.finalize_round(round_id, cid_to_digest(gcid), cid_to_digest(mcid), result.aggregated,
                                          [result.scores[a] for a in result.aggregated])  # fmt: skip
    verdict = Auditor(env.ledger, env.store).audit().rounds[0]
    assert verdict.verdict == "mismatch" and any("global model" in m for m in verdict.mismatches)
    assert coord.step(None) == "opened"
    with pytest.raises(BaseRefused, match="not the aggregate of its updates"):
        env.participant(0).step()
    assert digest_to_cid(env.ledger.latest_model()) == gcid
