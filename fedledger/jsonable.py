"""Chain and audit records as JSON values, one way for every command and page that prints them."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from ipfs import digest_to_cid


def to_jsonable(obj: Any) -> Any:
    """Dataclasses as dicts, 32-byte digests as CIDs, other bytes as 0x-hex, enums by lower-case name."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return digest_to_cid(bytes(obj)) if len(obj) == 32 else "0x" + bytes(obj).hex()
    if isinstance(obj, enum.Enum):
        return obj.name.lower()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj
