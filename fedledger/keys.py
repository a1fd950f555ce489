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


def _from_keystore(path: Path, password_file: str | Path | None) -> LocalAccount:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError_(f"keystore file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise KeyError_(f"keystore file {path} is not readable JSON: {exc}") from None
    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise KeyError_(f"cannot read password file {password_file}: {exc.strerror}") from None
    else:
        password = os.environ.get(PASSWORD_ENV)
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
    return Account.from_key(key)


def write_keystore(account: LocalAccount, path: str | Path, password: str) -> Path:
    """Encrypt ``account`` to a keystore file readable only by its owner."""
    p = Path(path)
    blob = json.dumps(Account.encrypt(account.key, password))
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(blob)
    return p
