"""Members' own stores reading from each other (ipfs.peered) through served stores (ipfs.serve), over real HTTP."""

from __future__ import annotations

import threading
import time

import pytest

from faults import Deadline
from federation.fetch import UNAVAILABLE, fetch_update
from ipfs import (
    ContentNotFound,
    ContentTooLarge,
    EmbeddedStore,
    StoreMisconfigured,
    open_store,
    parse_cid,
)
from ipfs.builder import CHUNK_SIZE
from ipfs.cid import multihash_of
from ipfs.peered import PeeredStore, open_peers
from ipfs.serve import StoreServer
from tests.helpers.store import free_port, vector_content

DATA = vector_content(2 * CHUNK_SIZE + 7)


@pytest.fixture
def members(tmp_path):
    """Three members' stores, each served on its own port: {name: (store, server)}."""
    out = {}
    for name in ("a", "b", "c"):
        store = EmbeddedStore(tmp_path / name)
        out[name] = (store, StoreServer(store, "127.0.0.1", 0).start())
    yield out
    for _, server in out.values():
        server.close()


def _peered(members, me: str, peers: list[str]) -> PeeredStore:
    return PeeredStore(members[me][0], open_peers([members[p][1].url for p in peers]))


def test_content_another_member_holds_is_read_kept_and_served_on(members) -> None:
    cid = members["b"][0].put(DATA)
    a = _peered(members, "a", ["c", "b"])  # c does not have it: passed over
    assert not a.has(cid)
    assert a.get(cid) == DATA
    assert a.has(cid) and cid in list(a.list())  # kept and pinned in a's own directory
    members["b"][1].close()  # b goes away; a still has it, and now serves it itself
    c = _peered(members, "c", ["a"])
    assert b"".join(c.iter_bytes(cid)) == DATA


def test_writes_stay_in_the_own_store(members) -> None:
    a = _peered(members, "a", ["b"])
    cid = a.put(b"an update, revealed")
    assert members["a"][0].has(cid) and not members["b"][0].has(cid)
    assert _peered(members, "b", ["a"]).get(cid) == b"an update, revealed"


def test_content_nobody_holds_names_every_peer_asked(members) -> None:
    missing = EmbeddedStore(members["a"][0].root.parent / "elsewhere").put(b"nobody has this")
    a = _peered(members, "a", ["b", "c"])
    with pytest.raises(ContentNotFound) as exc:
        a.get(missing)
    assert members["b"][1].url in exc.value.hint and members["c"][1].url in exc.value.hint


def test_a_peer_with_a_corrupt_copy_or_no_answer_is_passed_over(members) -> None:
    cid = members["b"][0].put(DATA)
    members["c"][0].put(DATA)
    leaf = next(p for p in members["c"][0].root.rglob("*.data") if p.stat().st_size > CHUNK_SIZE)
    leaf.write_bytes(leaf.read_bytes()[:-1] + b"\x00")  # c's copy of one leaf is damaged
    dead = f"http://127.0.0.1:{free_port()}"
    a = PeeredStore(members["a"][0], open_peers([dead, members["c"][1].url, members["b"][1].url]))
    t = time.monotonic()
    assert a.get(cid) == DATA
    assert time.monotonic() - t < 10
    # what a kept is b's good copy: every block re-hashes
    assert b"".join(members["a"][0].iter_bytes(cid)) == DATA


def test_content_larger_than_asked_for_is_refused_without_asking_further(members) -> None:
    cid = members["b"][0].put(DATA)
    a = _peered(members, "a", ["b"])
    with pytest.raises(ContentTooLarge):
        a.get(cid, max_bytes=CHUNK_SIZE)
    assert not members["a"][0].has(cid)


def test_a_partly_held_dag_is_completed_from_a_peer(members) -> None:
    cid = members["b"][0].put(DATA)
    members["a"][0].put(DATA)
    root_path = members["a"][0]._block_path(multihash_of(parse_cid(cid)))
    leaves = [p for p in members["a"][0].root.rglob("*.data") if p != root_path]
    leaves[-1].unlink()  # a lost one of the blocks
    a = _peered(members, "a", ["b"])
    assert a.get(cid) == DATA


def test_the_coordinators_fetch_waits_for_an_update_revealed_later(members) -> None:
    """The reveal happens after submissions close: the fetch retries until a peer has it."""
    blob = b"an update's bytes" * 100
    cid = EmbeddedStore(members["c"][0].root.parent / "scratch").put(blob, only_hash=True)
    coordinator = _peered(members, "a", ["b"])
    threading.Timer(1.0, lambda: members["b"][0].put(blob)).start()
    data, reason = fetch_update(coordinator, cid, max_bytes=1 << 20, until=Deadline.after(20))
    assert (data, reason) == (blob, None)
    never = EmbeddedStore(members["c"][0].root.parent / "scratch").put(b"never revealed", only_hash=True)
    assert fetch_update(coordinator, never, max_bytes=1 << 20, until=Deadline.after(1.5)) == (None, UNAVAILABLE)


def test_open_store_takes_peers_for_an_embedded_store_only(tmp_path, members) -> None:
    store = open_store(tmp_path / "mine", peers=[members["b"][1].url])
    assert isinstance(store, PeeredStore) and "1 peer" in store.location
    assert not isinstance(open_store(tmp_path / "mine"), PeeredStore)
    with pytest.raises(StoreMisconfigured, match="peers are for an embedded store"):
        open_store(api="/ip4/127.0.0.1/tcp/5001", peers=[members["b"][1].url])
