"""Loading signing keys without ever showing them.

Two sources, both through eth-account so transactions are signed locally:

* an encrypted keystore JSON file (``--keystore FILE``) with its password read from
  ``--password-file`` or the environment variable ``FEDLEDGER_KEY_PASSWORD``;
* a hex private key in an environment variable (``FEDLEDGER_PRIVATE_KEY`` by default),
  for development only.

Keys are never taken from the command line itself: argv is visible to every user of
the host in ``ps``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from faults import FedLedgerError

DEFAULT_KEY_ENV = "FEDLEDGER_PRIVATE_KEY"
PASSWORD_ENV = "FEDLEDGER_KEY_PASSWORD"


class KeyError_(FedLedgerError):
    """A key that cannot be loaded. (Named with a trailing underscore to avoid the builtin.)"""


def load_account(
    *,
    keystore: str | Path | None = None,
    password_file: str | Path | None = None,
    key_env: str = DEFAULT_KEY_ENV,
) -> LocalAccount:
    """Return the signing account from a keystore file or an environment variable."""
    if keystore is not None:
        return _from_keystore(Path(keystore), password_file)
    raw = os.environ.get(key_env)
    if not raw:
        raise KeyError_(
            f"no signing key: neither --keystore nor the environment variable {key_env} is set",
            hint=f"pass --keystore FILE (with --password-file or {PASSWORD_ENV}), or export {key_env}=0x… for development",
        )
    try:
        return Account.from_key(raw.strip())
    except Exception:  # eth-account raises several types; the message must not echo the key
        raise KeyError_(
            f"the environment variable {key_env} does not hold a valid 32-byte hex private key",
            hint="it must be 64 hex digits, optionally prefixed with 0x",
        ) from None


def read_password(password_file: str | Path | None) -> str | None:
    """The keystore password from ``password_file`` (its last line break dropped) or $FEDLEDGER_KEY_PASSWORD."""
    if password_file is None:
        return os.environ.get(PASSWORD_ENV)
    try:
        return Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise KeyError_(f"cannot read password file {password_file}: {exc.strerror}") from None


def read_keystore(path: str | Path) -> dict:
    """A keystore file's JSON, with a hint for the usual mistakes."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError_(
            f"keystore file not found: {p}",
            hint="check the path, or create a keystore with `fedledger keys new --out FILE`",
        ) from None
    except (OSError, ValueError) as exc:
        raise KeyError_(f"keystore file {p} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or "crypto" not in data and "Crypto" not in data:
        raise KeyError_(f"{p} is not an Ethereum keystore (no crypto section)", hint="pass the JSON file `fedledger keys new` or `cast wallet new` wrote")
    return data


def _from_keystore(path: Path, password_file: str | Path | None) -> LocalAccount:
    data = read_keystore(path)
    password = read_password(password_file)
    if password is None:
        raise KeyError_(
            f"keystore {path} needs a password",
            hint=f"pass --password-file FILE or set {PASSWORD_ENV}",
        )
    try:
        key = Account.decrypt(data, password)
    except ValueError:
        raise KeyError_(f"wrong password for keystore {path} (MAC mismatch)") from None
    except Exception as exc:
        raise KeyError_(f"keystore {path} is not a valid Ethereum keystore: {type(exc).__name__}") from None
    account = Account.from_key(key)
    recorded = data.get("address")
    if isinstance(recorded, str) and recorded.lower().removeprefix("0x") != account.address.lower()[2:]:
        raise KeyError_(
            f"keystore {path} records address 0x{recorded.removeprefix('0x')} but holds the key of {account.address}",
            hint="the file was edited; do not use it",
        )
    return account


def keystore_address(path: str | Path, password_file: str | Path | None = None) -> str:
    """The checksummed address of a keystore's key: the one it records (as geth reads it, no password),
    or, for keystores that record none (cast's), the key's own address once decrypted."""
    from eth_utils import to_checksum_address

    data = read_keystore(path)
    recorded = data.get("address")
    if not isinstance(recorded, str) or len(recorded.removeprefix("0x")) != 40:
        if read_password(password_file) is None:
            raise KeyError_(
                f"keystore {path} records no address",
                hint=f"pass --password-file FILE or set {PASSWORD_ENV} to decrypt it and learn its address",
            )
        return _from_keystore(Path(path), password_file).address
    try:
        return to_checksum_address("0x" + recorded.removeprefix("0x"))
    except ValueError:
        raise KeyError_(f"keystore {path} records a malformed address") from None


def write_keystore(account: LocalAccount, path: str | Path, password: str) -> Path:
    """Encrypt ``account`` (scrypt, keystore v3 as geth and cast write it) to a new file only its owner can read.

    An existing file is never overwritten: it may hold the only copy of another key.
    """
    p = Path(path)
    if not password:
        raise KeyError_("a keystore needs a non-empty password", hint=f"pass --password-file FILE or set {PASSWORD_ENV}")
    blob = json.dumps(Account.encrypt(account.key, password, kdf="scrypt"))
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyError_(f"{p} exists; a keystore is never overwritten", hint="choose another --out, or move the old file away yourself") from None
    except OSError as exc:
        raise KeyError_(f"cannot create keystore {p}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(blob)
    return p


def new_keystore(path: str | Path, password: str) -> str:
    """Make a fresh key from the OS's randomness, write it encrypted to ``path``; returns its address only."""
    account = Account.create()
    write_keystore(account, path, password)
    return account.address
