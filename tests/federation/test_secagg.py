"""The secure-aggregation primitives and the unmasking, in one process: five members, no chain.

The end-to-end rounds (chain, store, services, audit) are in tests/secure/.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.model import ModelSpec
from federation.secagg import (
    InvalidBundle,
    InvalidSecureParams,
    MaskedSubmission,
    RevealBundle,
    RoundSecrets,
    SecureParams,
    SecureRound,
    ShareBundle,
    UnmaskError,
    check_bundle,
    deal,
    decode_sum,
    encode_masked,
    mask_vector,
    quantise_update,
    reveal,
    unmask,
)
from federation.secagg.shares import combine_shares, reconstruct, split_secret
from federation.updates import UpdateHeader

SPEC = ModelSpec(schema_id="test/v1", input_dim=12, hidden=(8,), classes=("normal", "dos", "probe"))
LEDGER = "0x" + "ab" * 20
BASE = "cd" * 32


class Members:
    """Five members with Ethereum and X25519 keys, dealing and masking for one round."""

    def __init__(self, n: int = 5, threshold: int = 3) -> None:
        self.accounts = {a.address: a for a in (Account.create() for _ in range(n))}
        self.keys = {a: X25519PrivateKey.generate() for a in self.accounts}
        self.params = SecureParams.for_members(n, threshold)
        self.rnd = SecureRound(31337, LEDGER, 1, self.params, {a: k.public_key().public_bytes_raw() for a, k in self.keys.items()})
        self.secrets = {a: RoundSecrets.fresh() for a in self.accounts}
        rng = np.random.default_rng(1)
        self.deltas = {a: {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SPEC.tensor_shapes().items()}
                       for a in self.accounts}  # fmt: skip
        self.samples = {a: 500 + 100 * i for i, a in enumerate(self.rnd.members)}

    def sign(self, who: str):  # noqa: ANN201
        return lambda d: bytes(self.accounts[who].sign_message(encode_defunct(primitive=d)).signature)

    def bundles(self) -> dict[str, bytes]:
        return {a: deal(self.rnd, a, self.secrets[a], self.keys[a], self.sign(a)).to_bytes() for a in self.rnd.members}

    def masked(self, who: str, peers: dict[str, ShareBundle]) -> MaskedSubmission:
        words = quantise_update(self.deltas[who], SPEC, self.samples[who], self.params)
        y = mask_vector(self.rnd, who, self.secrets[who], words, peers)
        header = UpdateHeader(participant=who, round_id=1, base_model=BASE, spec_digest=SPEC.digest(),
                              num_samples=self.samples[who], chain_id=31337, ledger=LEDGER, masked=True)  # fmt: skip
        return MaskedSubmission(who, self.samples[who], 0, encode_masked(header, y))

    def expected(self, members) -> dict[str, np.ndarray]:  # noqa: ANN001
        return {k: sum(np.rint(np.clip(self.deltas[a][k].astype(np.float64).reshape(-1), -1, 1) * self.params.weight_q(self.samples[a]))
                       for a in members) for k in SPEC.tensor_shapes()}  # fmt: skip


@pytest.fixture(scope="module")
def five() -> Members:
    return Members()


def test_fewer_than_the_threshold_of_shares_do_not_rebuild_a_secret() -> None:
    secret = os.urandom(32)
    shares = split_secret(secret, 3, 5)
    assert combine_shares(shares[1:4]) == secret and combine_shares([shares[0], shares[2], shares[4]]) == secret
    assert combine_shares(shares[:2]) != secret  # two points of a degree-2 polynomial say nothing of its constant
    found, _ = reconstruct(shares[:2], 3, lambda s: s == secret)
    assert found is None


def test_the_unmasked_sum_is_exactly_the_sum_of_the_members_fixed_point_updates(five: Members) -> None:
    raw = five.bundles()
    peers = {a: check_bundle(five.rnd, a, b) for a, b in raw.items()}
    subs = [five.masked(a, peers) for a in five.rnd.members]
    reveals = {a: reveal(five.rnd, a, five.keys[a], peers, set(five.rnd.members)).to_bytes() for a in five.rnd.members}
    out = unmask(five.rnd, SPEC, BASE, raw, subs, reveals)
    total, weight = decode_sum(out.total, SPEC)
    expected = five.expected(five.rnd.members)
    assert all(np.array_equal(total[k], expected[k]) for k in expected)
    assert weight == sum(five.params.weight_q(n) for n in five.samples.values()) and out.findings == []
    # One masked vector alone is nowhere near its member's words (the masks are uniform in Z_2^32).
    words = quantise_update(five.deltas[subs[0].participant], SPEC, subs[0].num_samples, five.params)
    assert np.mean(np.frombuffer(subs[0].data[-4 * len(words):], "<u4") == words) < 0.01


def test_a_member_cannot_be_unmasked_from_fewer_than_the_threshold_of_reveals(five: Members) -> None:
    """Only two of five reveal: neither any seed nor any mask key can be rebuilt, and the unmasking says so."""
    raw = five.bundles()
    peers = {a: check_bundle(five.rnd, a, b) for a, b in raw.items()}
    subs = [five.masked(a, peers) for a in five.rnd.members]
    two = five.rnd.members[:2]
    reveals = {a: reveal(five.rnd, a, five.keys[a], peers, set(five.rnd.members)).to_bytes() for a in two}
    with pytest.raises(UnmaskError, match="cannot unmask yet: .*2 seed and 0 key shares revealed, the threshold is 3"):
        unmask(five.rnd, SPEC, BASE, raw, subs, reveals)


def test_a_dropout_after_sharing_is_removed_with_its_key_shares(five: Members) -> None:
    raw = five.bundles()
    peers = {a: check_bundle(five.rnd, a, b) for a, b in raw.items()}
    stay = five.rnd.members[1:]
    subs = [five.masked(a, peers) for a in stay]
    reveals = {a: reveal(five.rnd, a, five.keys[a], peers, set(stay)).to_bytes() for a in stay}
    out = unmask(five.rnd, SPEC, BASE, raw, subs, reveals)
    total, _ = decode_sum(out.total, SPEC)
    assert out.dropped == [five.rnd.members[0]] and all(np.array_equal(total[k], v) for k, v in five.expected(stay).items())


def test_the_fixed_point_range_never_wraps_at_the_largest_honest_sum() -> None:
    p = SecureParams.for_members(50, clip=2.0)
    assert 50 * p.clip * p.scale < 2**31 and 50 * p.clip * p.scale * 2 >= 2**31  # the largest scale that is safe
    delta = {k: np.full(s, 1e9, dtype=np.float32) for k, s in SPEC.tensor_shapes().items()}  # clipped to 2.0
    words = [quantise_update(delta, SPEC, 10**9, p) for _ in range(50)]
    total = np.zeros_like(words[0])
    for w in words:
        total += w
    values, weight = decode_sum(total, SPEC)
    assert all(np.all(v == 50 * 2.0 * p.scale) for v in values.values()) and weight == 50 * p.scale


@pytest.mark.parametrize(
    ("privacy", "problem"),
    [
        ({"mode": "secure-aggregation", "threshold": 2, "max_members": 5, "clip": 1.0, "weight_cap": 10, "share_seconds": 60},
         "threshold must exceed half"),
        ({"mode": "secure-aggregation", "threshold": 3, "max_members": 5, "clip": "1", "weight_cap": 10, "share_seconds": 60},
         "clip is a number"),
        ({"mode": "secure-aggregation", "threshold": 3, "max_members": 5, "clip": 1.0, "weight_cap": 10},
         "missing keys \\['share_seconds'\\]"),
        ({"mode": "secure-aggregation", "threshold": 600, "max_members": 1000, "clip": 1000.0, "weight_cap": 10,
          "share_seconds": 60}, "bits of precision"),
    ],
)  # fmt: skip
def test_unsound_parameters_are_refused_by_name(privacy: dict, problem: str) -> None:
    with pytest.raises(InvalidSecureParams, match=problem):
        SecureParams.from_privacy(privacy)


def test_a_bundle_for_another_round_or_member_set_is_refused(five: Members) -> None:
    raw = five.bundles()
    sender = five.rnd.members[0]
    other = SecureRound(31337, LEDGER, 2, five.params, five.rnd.member_keys)
    with pytest.raises(InvalidBundle, match="is for round 1"):
        check_bundle(other, sender, raw[sender])
    with pytest.raises(InvalidBundle, match="names .* as its sender"):
        check_bundle(five.rnd, five.rnd.members[1], raw[sender])
    fewer = SecureRound(31337, LEDGER, 1, five.params, dict(list(five.rnd.member_keys.items())[:4]))
    with pytest.raises(InvalidBundle, match="another set of members"):
        check_bundle(fewer, sender, raw[sender])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=4096), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=6), max_leaves=40,
).map(lambda v: __import__("json").dumps(v).encode())))  # fmt: skip
def test_hostile_bundles_are_refused_in_bounded_time(data: bytes) -> None:
    for parse in (ShareBundle.parse, RevealBundle.parse):
        t0 = time.perf_counter()
        with pytest.raises(InvalidBundle):
            parse(data)
        assert time.perf_counter() - t0 < 1.0
