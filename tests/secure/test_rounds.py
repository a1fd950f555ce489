"""Secure rounds end to end on a real anvil chain and the real store, re-derived by the audit.

Five organisations; the round is driven on the chain's clock. Each test names what a member
or the coordinator could do to the round and what the chain, the unmasking and the audit make
of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.anvil import LocalAnvil
from federation.model import load_model_bytes
from federation.secagg import SecureParams, quantise_update
from fedledger.audit import Auditor
from ipfs import digest_to_cid
from tests.helpers.runtime import manifest_of
from tests.helpers.secure import make_secure_env, run_secure_round, training_delta


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil() as node:
        yield node


def _audit_ok(env) -> None:  # noqa: ANN001
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, [(v.round_id, v.verdict, v.mismatches, v.unavailable) for v in report.rounds]
    return report


def test_secure_rounds_are_finalised_verified_by_the_audit_and_equal_the_public_aggregate(tmp_path: Path, chain: LocalAnvil) -> None:
    """Two rounds: every member in the sum, the manifest names the mode, the audit re-derives every byte, and
    the global model is the weighted mean of the clipped updates to within the quantisation step."""
    env = make_secure_env(tmp_path, chain)
    params = SecureParams.from_privacy(env.fed.descriptor.privacy)
    spec = env.fed.descriptor.spec
    for round_id in (1, 2):
        outcome = run_secure_round(env)
        assert outcome is not None and outcome.finalized, outcome
        assert len(outcome.result.aggregated) == 5
        manifest = manifest_of(env, round_id)
        assert manifest["privacy"] == "secure-aggregation" and manifest["scoring"]["rule"] == "sample-share"
        assert {m["status"] for m in manifest["secure_aggregation"]["members"]} == {"in the sum"}
        # The same updates averaged in the clear, with the same weights and clip.
        info = env.ledger.get_round(round_id)
        _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), spec)
        _, got = load_model_bytes(env.store.get(digest_to_cid(info.global_model)), spec)
        deltas = [training_delta(env, i, round_id) for i in range(5)]
        wq = [params.weight_q(n) for _, n in deltas]
        for name in spec.tensor_shapes():
            clipped = [np.clip(d[name].astype(np.float64), -params.clip, params.clip) for d, _ in deltas]
            mean = sum(w * c for w, c in zip(wq, clipped, strict=True)) / sum(wq)
            # Each quantised term is off by at most 1/2, the sum of weights exactly right: n/2 over Σq, plus float32.
            bound = len(wq) / (2 * sum(wq)) + 1e-6 * (np.abs(base[name]) + np.abs(mean) + 1)
            err = np.abs(got[name].astype(np.float64) - (base[name].astype(np.float64) + mean))
            assert np.all(err <= bound), (name, float(err.max()))
            assert float(np.abs(mean).max()) > 100 * float(bound.max())  # the comparison is not vacuous
    _audit_ok(env)


def test_no_plaintext_update_of_a_secure_round_is_anywhere_in_the_store(tmp_path: Path, chain: LocalAnvil) -> None:
    """Every block the round left in the store is scanned for any piece of any member's update: float32 delta
    bytes or its quantised words. In public mode (the control) the pieces are found."""
    env = make_secure_env(tmp_path, chain)
    params = SecureParams.from_privacy(env.fed.descriptor.privacy)
    assert run_secure_round(env).finalized
    rng = np.random.default_rng(0)
    needles = []
    for i in range(5):
        delta, n = training_delta(env, i, 1)
        words = quantise_update(delta, env.fed.descriptor.spec, n, params).tobytes()
        raw = b"".join(np.asarray(delta[k], dtype="<f4").tobytes() for k in sorted(delta))
        for blob in (words, raw):
            needles += [blob[o : o + 16] for o in rng.integers(0, len(blob) - 16, 20)]
    blocks = [p.read_bytes() for p in (env.store_dir / "blocks").rglob("*.data")]
    assert len(blocks) > 20
    assert not [k for k, needle in enumerate(needles) if any(needle in b for b in blocks)]
    # The control: the same scan finds a member's quantised words the moment they are stored in the clear.
    delta, n = training_delta(env, 0, 1)
    env.store.put(quantise_update(delta, env.fed.descriptor.spec, n, params).tobytes())
    blocks = [p.read_bytes() for p in (env.store_dir / "blocks").rglob("*.data")]
    assert sum(1 for needle in needles[:20] if any(needle in b for b in blocks)) == 20


def test_members_that_drop_after_sharing_are_recovered_and_the_round_verifies(tmp_path: Path, chain: LocalAnvil) -> None:
    """One member, then two, share and never commit: their pairwise masks are removed with the key shares the
    others reveal, and the round is finalised with the rest and verified."""
    env = make_secure_env(tmp_path, chain)
    one = run_secure_round(env, commit=[0, 2, 3, 4])
    assert one.finalized and len(one.result.aggregated) == 4
    dropped = env.orgs[1].address
    sa = manifest_of(env, 1)["secure_aggregation"]
    assert sa["dropped"] == [dropped]
    assert next(m for m in sa["members"] if m["participant"] == dropped)["status"] == "dropped after sharing"
    two = run_secure_round(env, commit=[0, 1, 2])
    assert two.finalized and sorted(two.result.aggregated) == sorted(env.orgs[i].address for i in (0, 1, 2))
    assert sorted(manifest_of(env, 2)["secure_aggregation"]["dropped"]) == sorted(env.orgs[i].address for i in (3, 4))
    _audit_ok(env)


def test_a_member_that_drops_before_sharing_is_left_out_and_the_round_verifies(tmp_path: Path, chain: LocalAnvil) -> None:
    env = make_secure_env(tmp_path, chain)
    out = run_secure_round(env, share=[0, 1, 2, 3])
    assert out.finalized and len(out.result.aggregated) == 4
    silent = env.orgs[4].address
    sa = manifest_of(env, 1)["secure_aggregation"]
    assert next(m for m in sa["members"] if m["participant"] == silent)["status"] == "did not share"
    assert silent in manifest_of(env, 1)["absent"]
    _audit_ok(env)


def test_a_member_whose_masked_update_never_comes_is_left_out_by_the_others_reveals(tmp_path: Path, chain: LocalAnvil) -> None:
    """A member commits, then withholds its masked bytes: once the reveal window passes, the others reveal its key
    shares instead of its seed shares, so its masks come off the others' vectors and the round goes on without it."""
    env = make_secure_env(tmp_path, chain, reveal_seconds=20)
    round_id = run_secure_round(env, reveal=[0, 1, 2, 3], close=False)
    coord = env.coordinator()
    assert coord.close_round(round_id) is None  # waiting: one member's masked bytes and shares are not in
    env.chain.increase_time(21)
    for i in (0, 1, 2, 3):
        env.participant(i).step()
    out = coord.close_round(round_id)
    assert out is not None and out.finalized and len(out.result.aggregated) == 4
    withheld = env.orgs[4].address
    entry = next(m for m in manifest_of(env, round_id)["secure_aggregation"]["members"] if m["participant"] == withheld)
    assert entry["status"].startswith("left out")
    _audit_ok(env)
    # Its seed stays secret: no member revealed a share of it, so its masked update, were it ever out, hides its update.
    reveals = [json.loads(env.store.get(m["reveal"])) for m in manifest_of(env, round_id)["secure_aggregation"]["members"]
               if m["reveal"]]  # fmt: skip
    assert not [s for r in reveals for s in r["shares"] if s["from"] == withheld and s["kind"] == "seed"]
    # Its software never reveals once the round is over...
    late = env.participant(4)
    late.step()
    cid = digest_to_cid(env.ledger.get_submission(round_id, withheld).update)
    assert not env.store.has(cid)
    # ...and bytes put by hand after the round make it disputed (revealed late), never a mismatch.
    env.store.put(late._pending(round_id))
    verdict = Auditor(env.ledger, env.store).audit().rounds[0]
    assert verdict.verdict == "disputed" and not verdict.mismatches, verdict
