"""Shamir shares of a member's two round secrets, how they travel, and how anyone checks them.

A member deals, for its round secrets (the self-mask seed and the private mask key, 32
bytes each), t-of-n Shamir shares to every member of the round (itself included): share
``k`` goes to the k-th member in address order. Each share is signed by its dealer with
its Ethereum key (an EIP-191 signature over the round's context, dealer, recipient, kind,
index and value), then encrypted to its recipient with ChaCha20-Poly1305 under a key from
the two members' X25519 keys. The bundle of ciphertexts goes to the store and its digest
on chain (``publishShares``), so the chain says who dealt what.

After the round stops taking submissions, each member reveals in the clear, for every
peer, one share: of the seed if the peer's masked vector is in, of the mask key if not
(``revealShares``). A revealed share carries its dealer's signature, so anyone can tell a
share its dealer made (if it does not reconstruct the dealer's committed secret, the dealer
lied) from one the revealer made up (no valid signature: the revealer lied).

Shamir's scheme over GF(2^128) is pycryptodome's (16-byte secrets): a 32-byte secret is
shared as two halves with the same indices. Only the framing here is ours.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from eth_keys import keys
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak, to_checksum_address

from federation.canonical import canonical_json, parse_bounded_json
from federation.secagg.prg import address_bytes, share_key

SHARES_FORMAT = "fedledger-secagg-shares/1"
REVEAL_FORMAT = "fedledger-secagg-reveal/1"
SEED, KEY = "seed", "key"  # the two kinds of share
KINDS = (SEED, KEY)
_KIND_BYTE = {SEED: b"\x01", KEY: b"\x02"}
SIG_BYTES = 65
PLAIN_BYTES = 2 + 32 + SIG_BYTES
MAX_BUNDLE_BYTES = 4 << 20  # 1,000 members' shares fit in well under a MiB
MAX_COMBINE_TRIES = 64  # subsets tried when the first t shares do not reconstruct the committed secret


class InvalidBundle(ValueError):
    """A share or reveal bundle that is not what the protocol says (named, attributed to its sender)."""


# -- Shamir over two 16-byte halves --------------------------------------------------------------
def split_secret(secret: bytes, threshold: int, count: int) -> list[tuple[int, bytes]]:
    """``count`` shares (index 1..count, 32 bytes each) of a 32-byte secret, any ``threshold`` of which rebuild it."""
    if len(secret) != 32:
        raise ValueError("secrets are 32 bytes")
    hi = Shamir.split(threshold, count, secret[:16])
    lo = Shamir.split(threshold, count, secret[16:])
    return [(i, h + l_) for (i, h), (j, l_) in zip(hi, lo, strict=True) if i == j]


def combine_shares(shares: Sequence[tuple[int, bytes]]) -> bytes:
    """The secret behind ``shares`` (exactly the threshold's number of them; more are not checked here)."""
    hi = Shamir.combine([(i, v[:16]) for i, v in shares])
    lo = Shamir.combine([(i, v[16:]) for i, v in shares])
    return hi + lo


def reconstruct(shares: Sequence[tuple[int, bytes]], threshold: int, check: Callable[[bytes], bool]) -> tuple[bytes | None, list[int]]:
    """The secret that passes ``check`` from ``threshold`` of ``shares``, and the indices of shares off its polynomial.

    Tries the lowest indices first, then other subsets (bounded); (None, []) if none passes.
    """
    shares = sorted(dict(shares).items())
    if len(shares) < threshold:
        return None, []
    for tries, subset in enumerate(itertools.combinations(shares, threshold)):
        if tries >= MAX_COMBINE_TRIES:
            break
        secret = combine_shares(subset)
        if check(secret):
            base = list(subset[: threshold - 1])
            bad = [i for i, v in shares if (i, v) not in subset and not check(combine_shares([*base, (i, v)]))]
            return secret, bad
    return None, []


# -- the signed share --------------------------------------------------------------------------
def share_message(ctx: bytes, dealer: str, recipient: str, kind: str, index: int, value: bytes) -> bytes:
    """The 32-byte digest a dealer signs for one share."""
    body = b"fedledger/secagg/share" + ctx + address_bytes(dealer) + address_bytes(recipient) + _KIND_BYTE[kind]
    return hashlib.sha256(body + index.to_bytes(2, "big") + value).digest()


def eip191_hash(digest: bytes) -> bytes:
    """keccak256 of the EIP-191 personal message of a 32-byte digest (what wallets sign)."""
    return keccak(b"\x19Ethereum Signed Message:\n32" + digest)


def signer_of(digest: bytes, signature: bytes) -> str | None:
    """The address whose key made ``signature`` over ``digest`` (EIP-191), or None if it is not a signature."""
    if len(signature) != SIG_BYTES:
        return None
    v = signature[64]
    try:
        sig = keys.Signature(signature[:64] + bytes([v - 27 if v >= 27 else v]))
        return sig.recover_public_key_from_msg_hash(eip191_hash(digest)).to_checksum_address()
    except (BadSignature, ValidationError, ValueError):
        return None


def _nonce(kind: str) -> bytes:
    return _KIND_BYTE[kind] + bytes(11)  # one key per (round, dealer, recipient), one nonce per kind


def _aad(ctx: bytes, dealer: str, recipient: str, kind: str) -> bytes:
    return ctx + address_bytes(dealer) + address_bytes(recipient) + _KIND_BYTE[kind]


@dataclass(frozen=True)
class Share:
    """One share in the clear, as its recipient holds it and reveals it."""

    dealer: str
    recipient: str
    kind: str
    index: int
    value: bytes
    signature: bytes

    def verify(self, ctx: bytes) -> bool:
        return signer_of(share_message(ctx, self.dealer, self.recipient, self.kind, self.index, self.value),
                         self.signature) == self.dealer  # fmt: skip


def encrypt_share(share: Share, ctx: bytes, own: X25519PrivateKey, recipient_key: bytes) -> bytes:
    key = share_key(own, recipient_key, ctx, share.dealer, share.recipient)
    plain = share.index.to_bytes(2, "big") + share.value + share.signature
    return ChaCha20Poly1305(key).encrypt(_nonce(share.kind), plain, _aad(ctx, share.dealer, share.recipient, share.kind))


def decrypt_share(
    ciphertext: bytes, ctx: bytes, own: X25519PrivateKey, dealer_key: bytes, dealer: str, recipient: str, kind: str
) -> Share | None:
    """The share ``dealer`` encrypted to ``recipient`` (whose private key is ``own``), or None if it does not decrypt."""
    key = share_key(own, dealer_key, ctx, dealer, recipient)
    try:
        plain = ChaCha20Poly1305(key).decrypt(_nonce(kind), ciphertext, _aad(ctx, dealer, recipient, kind))
    except InvalidTag:
        return None
    if len(plain) != PLAIN_BYTES:
        return None
    return Share(dealer, recipient, kind, int.from_bytes(plain[:2], "big"), plain[2:34], plain[34:])


# -- bundles -----------------------------------------------------------------------------------
def _hex(value: Any, size: int | None, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_BUNDLE_BYTES:
        raise InvalidBundle(f"{what} is not hex text")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidBundle(f"{what} is not hex text") from None
    if size is not None and len(raw) != size:
        raise InvalidBundle(f"{what} is {len(raw)} bytes, not {size}")
    return raw


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise InvalidBundle(f"{what} is not an address")
    try:
        return to_checksum_address(value)
    except ValueError:
        raise InvalidBundle(f"{what} is not an address") from None


def _parse(data: bytes, fmt: str, keys_: set[str]) -> dict[str, Any]:
    try:
        obj = parse_bounded_json(data, max_bytes=MAX_BUNDLE_BYTES, max_depth=8)
    except ValueError as exc:
        raise InvalidBundle(str(exc)) from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InvalidBundle(f"not a {fmt} document")
    if set(obj) != keys_:
        raise InvalidBundle(f"has keys {sorted(obj)}, expected {sorted(keys_)}")
    if canonical_json(obj) != bytes(data):
        raise InvalidBundle("is not in canonical form")
    return obj


def _int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidBundle(f"{what} must be an integer in {low}..{high}")
    return value


@dataclass(frozen=True)
class ShareBundle:
    """What a member publishes in the share phase: its mask key, a commitment to its seed, and its encrypted shares."""

    chain_id: int
    ledger: str
    round_id: int
    sender: str
    members: tuple[str, ...]  # the round's members in address order: share k goes to members[k - 1]
    threshold: int
    mask_key: bytes  # X25519 public key of the sender's per-round mask key
    seed_commitment: bytes  # sha256 of the round context, the sender and its self-mask seed
    ciphertexts: dict[str, dict[str, bytes]] = field(default_factory=dict)  # recipient -> kind -> ciphertext

    _KEYS = frozenset({"format", "chain_id", "ledger", "round", "sender", "members", "threshold", "mask_key",
                       "seed_commitment", "shares"})  # fmt: skip

    def to_bytes(self) -> bytes:
        return canonical_json({
            "format": SHARES_FORMAT, "chain_id": self.chain_id, "ledger": self.ledger, "round": self.round_id,
            "sender": self.sender, "members": list(self.members), "threshold": self.threshold,
            "mask_key": self.mask_key.hex(), "seed_commitment": self.seed_commitment.hex(),
            "shares": [{"to": r, **{k: self.ciphertexts[r][k].hex() for k in KINDS}} for r in self.members],
        })  # fmt: skip

    @classmethod
    def parse(cls, data: bytes) -> ShareBundle:
        obj = _parse(data, SHARES_FORMAT, set(cls._KEYS))
        members = obj["members"]
        if not isinstance(members, list) or not 2 <= len(members) <= 1000:
            raise InvalidBundle("members must list 2..1000 addresses")
        addrs = tuple(_address(m, "a member") for m in members)
        if list(addrs) != sorted(addrs, key=address_bytes) or len(set(addrs)) != len(addrs):
            raise InvalidBundle("members are not distinct and in address order")
        shares = obj["shares"]
        if not isinstance(shares, list) or len(shares) != len(addrs):
            raise InvalidBundle("there must be one share entry per member")
        cts: dict[str, dict[str, bytes]] = {}
        for addr, entry in zip(addrs, shares, strict=True):
            if not isinstance(entry, dict) or set(entry) != {"to", *KINDS} or _address(entry["to"], "a recipient") != addr:
                raise InvalidBundle("share entries must follow the members' order with a seed and a key ciphertext")
            cts[addr] = {k: _hex(entry[k], PLAIN_BYTES + 16, f"the {k} share to {addr}") for k in KINDS}
        return cls(
            chain_id=_int(obj["chain_id"], "chain_id", 0, 2**63 - 1), ledger=_address(obj["ledger"], "ledger"),
            round_id=_int(obj["round"], "round", 1, 2**63 - 1), sender=_address(obj["sender"], "sender"), members=addrs,
            threshold=_int(obj["threshold"], "threshold", 1, 1000), mask_key=_hex(obj["mask_key"], 32, "mask_key"),
            seed_commitment=_hex(obj["seed_commitment"], 32, "seed_commitment"), ciphertexts=cts,
        )  # fmt: skip

    def index_of(self, member: str) -> int:
        return self.members.index(member) + 1


@dataclass(frozen=True)
class RevealBundle:
    """What a member reveals once submissions close: one share per peer, and the shares it could not open."""

    chain_id: int
    ledger: str
    round_id: int
    sender: str
    shares: tuple[Share, ...]  # each a seed or a key share dealt to the sender
    complaints: tuple[str, ...] = ()  # dealers whose share to the sender did not decrypt

    _KEYS = frozenset({"format", "chain_id", "ledger", "round", "sender", "shares", "complaints"})

    def to_bytes(self) -> bytes:
        return canonical_json({
            "format": REVEAL_FORMAT, "chain_id": self.chain_id, "ledger": self.ledger, "round": self.round_id,
            "sender": self.sender,
            "shares": [{"from": s.dealer, "kind": s.kind, "index": s.index, "value": s.value.hex(),
                        "signature": s.signature.hex()} for s in self.shares],
            "complaints": list(self.complaints),
        })  # fmt: skip

    @classmethod
    def parse(cls, data: bytes) -> RevealBundle:
        obj = _parse(data, REVEAL_FORMAT, set(cls._KEYS))
        sender = _address(obj["sender"], "sender")
        entries, complaints = obj["shares"], obj["complaints"]
        if not isinstance(entries, list) or len(entries) > 1000 or not isinstance(complaints, list) or len(complaints) > 1000:
            raise InvalidBundle("shares and complaints must be lists of at most 1,000 entries")
        shares = []
        for e in entries:
            if not isinstance(e, dict) or set(e) != {"from", "kind", "index", "value", "signature"} or e["kind"] not in KINDS:
                raise InvalidBundle("a revealed share must have from, kind (seed or key), index, value and signature")
            shares.append(Share(_address(e["from"], "a dealer"), sender, e["kind"], _int(e["index"], "index", 1, 1000),
                                _hex(e["value"], 32, "a share value"), _hex(e["signature"], SIG_BYTES, "a signature")))  # fmt: skip
        dealers = [s.dealer for s in shares]
        if len(set(dealers)) != len(dealers):
            raise InvalidBundle("reveals more than one share of the same dealer")
        return cls(
            chain_id=_int(obj["chain_id"], "chain_id", 0, 2**63 - 1), ledger=_address(obj["ledger"], "ledger"),
            round_id=_int(obj["round"], "round", 1, 2**63 - 1), sender=sender, shares=tuple(shares),
            complaints=tuple(_address(c, "a complaint") for c in complaints),
        )  # fmt: skip


def seed_commitment(ctx: bytes, sender: str, seed: bytes) -> bytes:
    return hashlib.sha256(b"fedledger/secagg/seed" + ctx + address_bytes(sender) + seed).digest()


def by_address(items: Mapping[str, Any]) -> list[str]:
    return sorted(items, key=address_bytes)
