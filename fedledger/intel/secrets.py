"""Reading secrets for sharing (a pseudonymisation key, a TAXII password, a MISP key)
from a file or an environment variable, never from argv, never echoed in an error."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fedledger.intel.errors import KeyFileError

MAX_SECRET_BYTES = 4096
_MISP_KEY = re.compile(r"[A-Za-z0-9]{40}")


def read_secret(path: Path | None, env: str, what: str, *, flag: str) -> bytes:
    """The secret in ``path`` (surrounding whitespace removed), else in ``$env``."""
    if path is not None:
        try:
            if Path(path).stat().st_size > MAX_SECRET_BYTES:
                raise KeyFileError(f"{what} file {path} is larger than {MAX_SECRET_BYTES} bytes", hint=f"{flag} takes a file holding only the {what}")
            data = Path(path).read_bytes().strip()
        except OSError as exc:
            raise KeyFileError(f"cannot read the {what} file {path}: {exc.strerror or exc}", hint="check the path and its permissions") from None
        if not data:
            raise KeyFileError(f"the {what} file {path} is empty", hint=f"{flag} takes a file holding the {what}")
        return data
    value = os.environ.get(env, "").strip()
    if not value:
        raise KeyFileError(f"no {what}: neither {flag} nor the environment variable {env} is set",
                           hint=f"pass {flag} FILE or export {env}; secrets are never taken from the command line")  # fmt: skip
    return value.encode()


def read_pseudonym_key(path: Path) -> bytes:
    """The HMAC key for pseudonymising addresses: at least 16 bytes (e.g. ``head -c 32 /dev/urandom``)."""
    key = read_secret(path, "", "pseudonymisation key", flag="--pseudonymise")
    if len(key) < 16:
        raise KeyFileError(f"the pseudonymisation key in {path} is only {len(key)} bytes",
                           hint="use at least 16 random bytes, e.g. `head -c 32 /dev/urandom > key`")  # fmt: skip
    return key


def read_misp_key(path: Path | None, env: str = "FEDLEDGER_MISP_KEY") -> str:
    """A MISP automation key: 40 letters and digits."""
    raw = read_secret(path, env, "MISP key", flag="--misp-key-file")
    try:
        key = raw.decode("ascii")
    except UnicodeDecodeError:
        key = ""
    if not _MISP_KEY.fullmatch(key):
        where = f"the file {path}" if path is not None else f"${env}"
        raise KeyFileError(f"{where} does not hold a MISP automation key (40 letters and digits)",
                           hint="copy the key from MISP's Administration > Auth keys into the file, nothing else")  # fmt: skip
    return key
