"""An embedded store served read-only (ipfs.serve), read back by the Kubo backend over real HTTP."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from ipfs import (
    ContentNotFound,
    CorruptBlock,
    EmbeddedStore,
    StoreError,
    StoreMisconfigured,
    parse_cid,
)
from ipfs.builder import CHUNK_SIZE
from ipfs.cid import multihash_of
from ipfs.kubo import KuboStore
from ipfs.serve import MAX_CONNECTIONS, StoreServer, listen_address
from tests.helpers.store import vector_content

DATA = vector_content(3 * CHUNK_SIZE + 1)  # four leaves under one root


@pytest.fixture
def served(tmp_path):
    store = EmbeddedStore(tmp_path / "served")
    with StoreServer(store, "127.0.0.1", 0).start() as server:
        yield store, server


@pytest.fixture
def reader(served):
    _, server = served
    client = KuboStore(server.url, timeout=5, connect_timeout=1, retries=0)
    yield client
    client.close()


def test_the_kubo_backend_reads_a_served_store(served, reader) -> None:
    store, _ = served
    cid = store.put(DATA)
    assert reader.version() == "fedledger-store-1"
    assert reader.get(cid) == DATA  # /cat, re-derived into the CID
    assert b"".join(reader.iter_bytes(cid)) == DATA  # /block/get, block by block
    assert reader.has(cid)
    assert list(reader.list()) == [cid]
    empty = store.put(b"")
    assert reader.get(empty) == b""


def test_missing_content_and_bad_cids_have_kubo_answers(served, reader) -> None:
    other = EmbeddedStore(served[0].root.parent / "other").put(b"never served")
    with pytest.raises(ContentNotFound, match=other):
        reader.get(other)
    assert not reader.has(other)
    answer = httpx.post(f"{served[1].url}/api/v0/block/get", params={"arg": "not-a-cid"})
    assert answer.status_code == 500 and answer.json()["Message"].startswith("invalid cid")


def test_a_corrupt_block_is_served_as_it_is_and_refused_by_the_reader(served, reader) -> None:
    store, _ = served
    cid = store.put(b"the bytes a member published")
    path = store._block_path(multihash_of(parse_cid(cid)))
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(CorruptBlock):
        b"".join(reader.iter_bytes(cid))


@pytest.mark.parametrize("command", ["add", "block/put", "pin/add", "pin/rm", "repo/gc"])
def test_every_write_is_refused(served, command) -> None:
    _, server = served
    answer = httpx.post(f"{server.url}/api/v0/{command}", params={"arg": "x"}, content=b"data")
    assert answer.status_code == 403
    assert "read-only" in answer.json()["Message"]


def test_writes_through_the_backend_fail_with_a_clear_error(reader) -> None:
    with pytest.raises(StoreError, match="read-only"):
        reader.put(b"an update")


def test_it_is_not_a_gateway_nor_anything_but_the_read_api(served) -> None:
    _, server = served
    assert httpx.get(f"{server.url}/api/v0/version").status_code == 405
    assert httpx.post(f"{server.url}/api/v0/swarm/peers").status_code == 404
    assert httpx.post(f"{server.url}/ipfs/Qm").status_code == 404
    big = httpx.post(f"{server.url}/api/v0/version", content=b"x" * (1 << 17))
    assert big.status_code == 403


def test_connections_beyond_the_limit_are_turned_away_and_the_server_recovers(served, reader) -> None:
    store, server = served
    idle = [socket.create_connection((server.host, server.port)) for _ in range(MAX_CONNECTIONS + 4)]
    try:
        refused = 0
        for s in idle[-4:]:
            s.settimeout(2)
            try:
                refused += s.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                refused += 1
        assert refused >= 1
    finally:
        for s in idle:
            s.close()
    cid = store.put(b"still served")
    for _ in range(50):  # the idle connections' threads finish as their sockets close
        try:
            assert reader.get(cid) == b"still served"
            break
        except StoreError:
            time.sleep(0.1)
    else:
        pytest.fail("the server did not recover")


def test_listen_addresses() -> None:
    assert listen_address("/ip4/0.0.0.0/tcp/5101") == ("0.0.0.0", 5101)
    assert listen_address("127.0.0.1:7000") == ("127.0.0.1", 7000)
    with pytest.raises(StoreMisconfigured, match="plain HTTP"):
        listen_address("https://example.org:443")
    with pytest.raises(StoreMisconfigured):
        listen_address("/ip4/127.0.0.1/udp/1")


def test_a_port_in_use_is_a_clear_error(served, tmp_path) -> None:
    _, server = served
    with pytest.raises(StoreError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        StoreServer(EmbeddedStore(tmp_path / "second"), "127.0.0.1", server.port)
