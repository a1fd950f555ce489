"""A member's private files on disk: written atomically, readable by its owner only.

The privacy history, the error-feedback residual and the updates a member has committed
to but not yet revealed are all private to the organisation: the residual and an unrevealed
update are functions of its flows. Each is written to a temporary file created with mode
0600, flushed, and renamed into place, so a crash leaves the old or the new file, never half
of one, and no other user of the host can read either.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``, mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, PRIVATE_MODE)  # in case a umask or an odd file system widened it
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def private_dir(path: str | os.PathLike[str]) -> Path:
    """A directory only its owner can list (created if missing)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
