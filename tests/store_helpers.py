"""Shared helpers for the store tests: the Kubo vectors and their content generator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

VECTORS_FILE = Path(__file__).parent / "vectors" / "kubo-cids.json"


def load_vectors() -> list[dict]:
    return json.loads(VECTORS_FILE.read_text())["vectors"]


def vector_stream(n: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """content(n) from the vector file, in pieces (the generator the file describes)."""
    counter = 0
    produced = 0
    tag = b"fedledger-vector-%d-" % n
    while produced < n:
        want = min(piece, n - produced)
        blocks = (want + 31) // 32
        buf = b"".join(hashlib.sha256(tag + str(counter + i).encode()).digest() for i in range(blocks))
        counter += blocks
        out = buf[:want]
        # Keep the 32-byte counter aligned: pieces are multiples of 32 except the last.
        assert want % 32 == 0 or produced + want == n
        produced += want
        yield out


def vector_content(n: int) -> bytes:
    return b"".join(vector_stream(n))
