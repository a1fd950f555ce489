"""The one JSON encoding whose digest the federation publishes (descriptors, manifests)."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """The one JSON encoding whose digest we sign or publish: sorted keys, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_bounded_json(data: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse JSON from an untrusted source in bounded time and memory; ValueError names what is wrong.

    Refuses more than ``max_bytes``, nesting deeper than ``max_depth`` (Python's parser would
    recurse until RecursionError), NaN and Infinity (canonical JSON never holds them).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise ValueError(f"{len(raw):,} bytes is more than the {max_bytes:,} allowed")
    # Depth by one linear scan, skipping string contents (escapes included), before parsing.
    depth, in_str, esc = 0, False, False
    for b in raw:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:  # quote
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
        elif b in (0x5D, 0x7D):
            depth -= 1
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
