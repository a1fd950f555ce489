"""Seeds, key agreement and mask expansion: X25519, HKDF-SHA256 and ChaCha20 from ``cryptography``.

Every derivation is bound to the round's context (protocol version, chain id, ledger, round)
and to its purpose, so no key or mask of one round, federation or use serves another.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL = b"fedledger/secagg/1"
_ZERO_NONCE = bytes(16)


def context(chain_id: int, ledger: str, round_id: int) -> bytes:
    return PROTOCOL + chain_id.to_bytes(8, "big") + address_bytes(ledger) + round_id.to_bytes(8, "big")


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.lower().removeprefix("0x"))


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def expand(key: bytes, count: int) -> np.ndarray:
    """``count`` uint32 words of ChaCha20 keystream under ``key`` (a fresh key per use: the nonce is fixed)."""
    encryptor = Cipher(algorithms.ChaCha20(key, _ZERO_NONCE), mode=None).encryptor()
    return np.frombuffer(encryptor.update(bytes(4 * count)), dtype="<u4")


def self_mask(seed: bytes, ctx: bytes, sender: str, count: int) -> np.ndarray:
    return expand(hkdf(seed, ctx, b"self-mask" + address_bytes(sender)), count)


def pairwise_key(own: X25519PrivateKey, peer_public: bytes, ctx: bytes, a: str, b: str) -> bytes:
    """The seed members ``a`` and ``b`` share for this round (either side computes it from its own private key)."""
    lo, hi = sorted((address_bytes(a), address_bytes(b)))
    return hkdf(own.exchange(X25519PublicKey.from_public_bytes(peer_public)), ctx, b"pairwise-mask" + lo + hi)


def pairwise_sign(member: str, peer: str) -> int:
    """+1 if ``member`` adds the pair's mask, -1 if it subtracts it (the lower address adds)."""
    return 1 if address_bytes(member) < address_bytes(peer) else -1


def share_key(own: X25519PrivateKey, peer_public: bytes, ctx: bytes, dealer: str, recipient: str) -> bytes:
    """The AEAD key of the shares ``dealer`` encrypts to ``recipient`` this round (static-static X25519)."""
    secret = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return hkdf(secret, ctx, b"shares" + address_bytes(dealer) + address_bytes(recipient))
