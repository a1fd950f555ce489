"""The embedded store reproduces every CID a real Kubo node computed (0 B to 45 MiB)."""

from __future__ import annotations

import hashlib
import io

import pytest

from ipfs import EmbeddedStore, cid_to_digest, digest_to_cid
from ipfs.builder import build
from tests.helpers.store import load_vectors, vector_content, vector_stream

VECTORS = load_vectors()
IDS = [f"{v['size']}B" for v in VECTORS]


class _ShortReads(io.RawIOBase):
    """A pipe-like stream: every read returns at most 10,000 bytes."""

    def __init__(self, pieces) -> None:
        self._pieces = iter(pieces)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._pieces)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf), 10_000)
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


@pytest.fixture(scope="module")
def contents() -> dict[int, bytes]:
    out = {}
    for v in VECTORS:
        data = vector_content(v["size"])
        # The generator must be the one the vector file describes, or nothing below means anything.
        assert hashlib.sha256(data).hexdigest() == v["sha256"], f"content({v['size']}) generator mismatch"
        out[v["size"]] = data
    return out


def test_vectors_cross_every_boundary() -> None:
    sizes = {v["size"] for v in VECTORS}
    assert {0, 1, 262143, 262144, 262145, 174 * 262144, 174 * 262144 + 1} <= sizes


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_only_hash_gives_kubo_cid(vector, contents) -> None:
    cid, root = build(contents[vector["size"]])
    assert cid == vector["cid"]
    assert root.file_size == vector["size"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_put_get_gives_kubo_cid_and_bytes(vector, contents, tmp_path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    data = contents[vector["size"]]
    assert store.put(data) == vector["cid"]
    assert store.get(vector["cid"]) == data
    assert vector["cid"] in list(store.list())
    assert digest_to_cid(cid_to_digest(vector["cid"])) == vector["cid"]


@pytest.mark.parametrize("size", [262145, 174 * 262144 + 1])
def test_short_reads_do_not_move_chunk_boundaries(size, tmp_path) -> None:
    expected = next(v["cid"] for v in VECTORS if v["size"] == size)
    store = EmbeddedStore(tmp_path / "s")
    stream = io.BufferedReader(_ShortReads(vector_stream(size, piece=100_000 - 100_000 % 32)), buffer_size=7)
    assert store.put(stream) == expected
    h = hashlib.sha256()
    for piece in store.iter_bytes(expected):
        h.update(piece)
    assert h.hexdigest() == next(v["sha256"] for v in VECTORS if v["size"] == size)


def test_put_from_file_matches_put_from_bytes(tmp_path, contents) -> None:
    size = 174 * 262144 + 1
    src = tmp_path / "src.bin"
    src.write_bytes(contents[size])
    store = EmbeddedStore(tmp_path / "s")
    with open(src, "rb") as fh:
        cid = store.put(fh)
    assert cid == next(v["cid"] for v in VECTORS if v["size"] == size)
    out = io.BytesIO()
    assert store.get_to(cid, out) == size
    assert out.getvalue() == contents[size]


def test_put_is_idempotent(tmp_path, contents) -> None:
    store = EmbeddedStore(tmp_path / "s")
    data = contents[1048576]
    assert store.put(data) == store.put(data)
    assert len(list(store.list())) == 1
