"""Checking and converting arguments before anything is sent: keys, addresses, digests, integers."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts import errors

KeyLike = LocalAccount | str | bytes


def as_account(key: KeyLike) -> LocalAccount:
    """An eth-account signer from a signer or a hex/bytes private key (never echoed)."""
    if isinstance(key, LocalAccount):
        return key
    try:
        return Account.from_key(key)
    except Exception:  # eth-keys raises several types for a bad key
        # `from None`: the original error may quote the key, and keys are never shown.
        raise errors.InvalidKey(
            "the private key is not a valid secp256k1 key (expected 32 bytes as 0x-prefixed hex)",
            hint="check the key file or environment variable it came from",
        ) from None


def as_bytes32(value: bytes | str, what: str) -> bytes:
    """A 32-byte digest from bytes or hex text."""
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise errors.InvalidArgument(f"{what} is not hex: {value!r}") from None
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise errors.InvalidArgument(
            f"{what} must be a 32-byte digest, got {size} bytes",
            hint="pass the sha2-256 digest of the content's root block",
        )
    return bytes(value)


def as_address(value: str, what: str) -> str:
    if not isinstance(value, str) or not Web3.is_address(value):
        raise errors.InvalidArgument(f"{what} is not an Ethereum address: {value!r}")
    return Web3.to_checksum_address(value)


def as_uint(value: int, bits: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise errors.InvalidArgument(f"{what} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def as_int(value: int, bits: int, what: str) -> int:
    limit = 2 ** (bits - 1)
    if not isinstance(value, int) or isinstance(value, bool) or not -limit <= value < limit:
        raise errors.InvalidArgument(f"{what} must be an integer in [-2^{bits - 1}, 2^{bits - 1}), got {value!r}")
    return value
