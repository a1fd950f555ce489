"""CIDs of the one profile the ledger records, and their 32-byte on-chain form.

The chain stores the sha2-256 digest of a DAG's root block; everything else about
the CID is fixed by the profile (CIDv0: dag-pb, sha2-256, base58btc), so the digest
alone gives the CID back. Parsing and encoding go through ``multiformats``.
"""

from __future__ import annotations

import base64

from multiformats import CID

from ipfs.errors import InvalidCID

DIGEST_SIZE = 32
# sha2-256 multihash prefix: code 0x12, length 0x20 — the first two bytes of every
# CIDv0 in binary form.
SHA2_256_PREFIX = b"\x12\x20"

DAG_PB = "dag-pb"
RAW = "raw"


def parse_cid(value: str) -> CID:
    """Decode a CID string; raise :class:`InvalidCID` naming what is wrong.

    CIDv1 strings are accepted for reading (e.g. content added elsewhere with raw
    leaves); only sha2-256 dag-pb or raw blocks can be verified here.
    """
    if not isinstance(value, str):
        raise InvalidCID(value, f"expected a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise InvalidCID(value, "it is empty")
    try:
        cid = CID.decode(text)
    except Exception as exc:  # multiformats raises several unrelated types for junk
        raise InvalidCID(value, str(exc) or type(exc).__name__) from None
    if cid.hashfun.name != "sha2-256" or len(cid.raw_digest) != DIGEST_SIZE:
        raise InvalidCID(value, f"hash function {cid.hashfun.name} is not sha2-256")
    if cid.codec.name not in (DAG_PB, RAW):
        raise InvalidCID(value, f"codec {cid.codec.name} is neither dag-pb nor raw")
    return cid


def multihash_of(cid: CID) -> bytes:
    """The binary multihash, the key blocks are stored under."""
    return SHA2_256_PREFIX + bytes(cid.raw_digest)


def cid_to_digest(cid: str) -> bytes:
    """The 32-byte sha2-256 digest of the root block — what the chain records.

    Only dag-pb CIDs map to the chain: a raw CID's digest would read back as a
    different (CIDv0, dag-pb) CID.
    """
    parsed = parse_cid(cid)
    if parsed.codec.name != DAG_PB:
        raise InvalidCID(cid, "the ledger records dag-pb roots only (a CIDv0 from `ipfs add`)")
    return bytes(parsed.raw_digest)


def digest_to_cid(digest: bytes) -> str:
    """The CIDv0 string for a 32-byte root digest read from the chain."""
    if not isinstance(digest, (bytes, bytearray, memoryview)):
        raise InvalidCID(digest, f"a digest must be 32 bytes, got {type(digest).__name__}")
    raw = bytes(digest)
    if len(raw) != DIGEST_SIZE:
        raise InvalidCID(raw.hex(), f"a digest must be 32 bytes, got {len(raw)}")
    return _base58btc(SHA2_256_PREFIX + raw)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58btc(data: bytes) -> str:
    # A CIDv0 string is base58btc of the multihash. multiformats encodes it too, but
    # its runtime type validation costs ~0.8 ms a CID (as much as hashing 1 MiB);
    # this is the plain algorithm, checked against multiformats in the tests.
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def cidv0_from_multihash(mh: bytes) -> str:
    """CIDv0 string of a binary sha2-256 multihash (the form links carry)."""
    return digest_to_cid(mh[2:])


def block_key(mh: bytes) -> str:
    """File name of a block: base32 of its multihash, as Kubo's flatfs names blocks."""
    return base64.b32encode(mh).decode("ascii").rstrip("=")
