"""A member's side of a secure-aggregation round, as pure functions of what the chain and the store say.

After Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
Learning" (CCS 2017), and Bell et al., "Secure Single-Server Aggregation with (Poly)Logarithmic
Overhead" (SecAgg+, CCS 2020), with the server's bookkeeping moved onto the ledger:

1. **share** (while the share phase is open): fresh round secrets, a self-mask seed b and
   an X25519 mask key s; t-of-n shares of both, signed and encrypted to every member of the
   round (:func:`deal`); the bundle goes to the store, its digest on chain;
2. **mask** (once the share phase closes, the chain fixes who shared): the member's
   fixed-point update and weight, plus PRG(b), plus ±PRG(s_uv) for every peer v that shared
   a valid bundle (:func:`mask_vector`); its digest is the member's commitment on chain;
3. **reveal** (once submissions close): the masked bytes go to the store; then, for each
   peer, the share of its seed if its masked vector is in, else the share of its mask key
   (:func:`reveal`) — never both, so nobody can both strip a member's pairwise masks and its
   self mask.

The round's members are the members eligible when it opened whose X25519 key was bound on
chain before it opened, in address order; the chain's events fix them for everyone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils import to_checksum_address

from faults import FedLedgerError
from federation.secagg.params import SecureParams
from federation.secagg.prg import (
    context,
    expand,
    pairwise_key,
    pairwise_sign,
    self_mask,
)
from federation.secagg.shares import (
    KEY,
    SEED,
    InvalidBundle,
    RevealBundle,
    Share,
    ShareBundle,
    by_address,
    decrypt_share,
    encrypt_share,
    seed_commitment,
    share_message,
    split_secret,
)


class SecureRoundError(FedLedgerError):
    """A secure-aggregation round this member cannot take part in as the protocol requires."""


@dataclass(frozen=True)
class SecureRound:
    """Who takes part in one secure round, with what keys, under which parameters."""

    chain_id: int
    ledger: str
    round_id: int
    params: SecureParams
    member_keys: Mapping[str, bytes]  # the round's members -> their X25519 public keys (bound on chain)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ledger", to_checksum_address(self.ledger))
        object.__setattr__(self, "member_keys", {to_checksum_address(a): bytes(k) for a, k in self.member_keys.items()})

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(by_address(self.member_keys))

    @property
    def ctx(self) -> bytes:
        return context(self.chain_id, self.ledger, self.round_id)

    def index_of(self, member: str) -> int:
        return self.members.index(member) + 1

    def check_size(self) -> None:
        n, p = len(self.member_keys), self.params
        if n > p.max_members:
            raise SecureRoundError(f"round {self.round_id} has {n} members with keys; the federation allows {p.max_members}")
        if n < p.threshold:
            raise SecureRoundError(f"round {self.round_id} has {n} members with keys, fewer than the threshold of {p.threshold}")


@dataclass(frozen=True)
class RoundSecrets:
    """A member's two secrets for one round (kept 0600 until the round closes)."""

    seed: bytes
    mask_private: bytes

    @classmethod
    def fresh(cls) -> RoundSecrets:
        return cls(os.urandom(32), X25519PrivateKey.generate().private_bytes_raw())

    def to_bytes(self) -> bytes:
        return self.seed + self.mask_private

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundSecrets:
        if len(data) != 64:
            raise ValueError("round secrets are 64 bytes")
        return cls(data[:32], data[32:])

    @property
    def mask_key(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.mask_private)


def deal(
    rnd: SecureRound, me: str, secrets: RoundSecrets, member_key: X25519PrivateKey, sign: Callable[[bytes], bytes]
) -> ShareBundle:
    """The share bundle ``me`` publishes: its mask key, its seed commitment, a signed encrypted share of each secret per member."""
    rnd.check_size()
    members, t, ctx = rnd.members, rnd.params.threshold, rnd.ctx
    if me not in members:
        raise SecureRoundError(f"{me} has no key bound on chain for round {rnd.round_id}")
    seeds = split_secret(secrets.seed, t, len(members))
    keys = split_secret(secrets.mask_private, t, len(members))
    ciphertexts: dict[str, dict[str, bytes]] = {}
    for k, recipient in enumerate(members, start=1):
        ciphertexts[recipient] = {}
        for kind, shares in ((SEED, seeds), (KEY, keys)):
            index, value = shares[k - 1]
            assert index == k
            share = Share(me, recipient, kind, k, value, sign(share_message(ctx, me, recipient, kind, k, value)))
            ciphertexts[recipient][kind] = encrypt_share(share, ctx, member_key, rnd.member_keys[recipient])
    return ShareBundle(
        rnd.chain_id, rnd.ledger, rnd.round_id, me, members, t, secrets.mask_key.public_key().public_bytes_raw(),
        seed_commitment(ctx, me, secrets.seed), ciphertexts,
    )  # fmt: skip


def check_bundle(rnd: SecureRound, sender: str, data: bytes) -> ShareBundle:
    """``sender``'s bundle for this round, or :class:`InvalidBundle` naming why it is not one."""
    bundle = ShareBundle.parse(data)
    if (bundle.chain_id, bundle.ledger, bundle.round_id) != (rnd.chain_id, rnd.ledger, rnd.round_id):
        raise InvalidBundle(f"is for round {bundle.round_id} of {bundle.ledger} on chain {bundle.chain_id}")
    if bundle.sender != sender:
        raise InvalidBundle(f"names {bundle.sender} as its sender")
    if bundle.members != rnd.members:
        raise InvalidBundle("deals to another set of members than the chain's")
    if bundle.threshold != rnd.params.threshold:
        raise InvalidBundle(f"uses threshold {bundle.threshold}, the federation's is {rnd.params.threshold}")
    return bundle


def mask_vector(
    rnd: SecureRound, me: str, secrets: RoundSecrets, values: np.ndarray, peers: Mapping[str, ShareBundle]
) -> np.ndarray:
    """``values`` (the member's fixed-point words) plus its self mask and a pairwise mask with every peer."""
    count = len(values)
    y = np.array(values, dtype=np.uint32)
    y += self_mask(secrets.seed, rnd.ctx, me, count)
    own = secrets.mask_key
    for peer in by_address(peers):
        if peer == me:
            continue
        mask = expand(pairwise_key(own, peers[peer].mask_key, rnd.ctx, me, peer), count)
        if pairwise_sign(me, peer) > 0:
            y += mask
        else:
            y -= mask
    return y


def reveal(
    rnd: SecureRound,
    me: str,
    member_key: X25519PrivateKey,
    peers: Mapping[str, ShareBundle],
    masked_in: set[str],
) -> RevealBundle:
    """For each peer (``me`` included), the share of its seed if its masked vector is in ``masked_in``, else of its mask key."""
    ctx, index = rnd.ctx, rnd.index_of(me)
    shares, complaints = [], []
    for dealer in by_address(peers):
        kind = SEED if dealer in masked_in else KEY
        share = decrypt_share(peers[dealer].ciphertexts[me][kind], ctx, member_key, rnd.member_keys[dealer], dealer, me, kind)
        if share is None or share.index != index or not share.verify(ctx):
            complaints.append(dealer)
            continue
        shares.append(share)
    return RevealBundle(rnd.chain_id, rnd.ledger, rnd.round_id, me, tuple(shares), tuple(complaints))
