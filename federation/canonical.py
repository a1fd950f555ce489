"""The one JSON encoding whose digest the federation publishes (descriptors, manifests): RFC 8785.

The JSON Canonicalization Scheme (JCS, RFC 8785) is what another language reproduces from the
same values: members sorted by their names' UTF-16 code units, no whitespace, strings in UTF-8
with only the escapes JSON requires, numbers as IEEE-754 doubles written the way ECMAScript's
``Number.prototype.toString`` writes them (``1`` for 1.0, ``1e-7``, ``1e+21``). Integers must lie
within ±(2**53 - 1), the range a double holds exactly; NaN and the infinities have no JSON form.
The encoding is the ``rfc8785`` package's; ``tests/federation/test_canonical.py`` checks it
against the RFC's examples and against a second implementation (the npm package
``canonicalize``, in JavaScript) on real descriptors and manifests and on random values.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1  # JCS numbers are doubles: larger integers are not exact


def canonical_json(obj: Any) -> bytes:
    """``obj`` in RFC 8785 canonical form; ValueError for what JCS cannot hold exactly."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"no canonical JSON for this value: {exc}") from None


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
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _parse_int(text: str) -> int | float:
    """An integer as JSON writes it; beyond what a double holds exactly, the double JCS wrote it from.

    JCS writes an integral double such as 1e16 as ``10000000000000000``: read back as that double,
    it encodes to the same bytes again.
    """
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else float(value)
