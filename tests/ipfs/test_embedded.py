"""The embedded store under faults: corruption, bad CIDs, read-only disks, kills, concurrency."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import ipfs
from ipfs import (
    ContentNotFound,
    CorruptBlock,
    EmbeddedStore,
    InvalidCID,
    MalformedDag,
    StoreError,
    StoreNotWritable,
    cid_to_digest,
    digest_to_cid,
    open_store,
)
from ipfs.builder import CHUNK_SIZE, build
from ipfs.reader import BlockRef
from ipfs.unixfs import encode_varint
from tests.helpers.store import vector_content

ROOT = Path(__file__).resolve().parents[2]
THREE_CHUNKS = vector_content(3 * CHUNK_SIZE - 2560)  # 3 distinct leaves, the last one short


def block_files(store_dir: Path) -> list[Path]:
    return sorted((store_dir / "blocks").glob("*/*.data"))


def block_cid(path: Path) -> str:
    key = path.name[: -len(".data")]
    mh = base64.b32decode(key + "=" * (-len(key) % 8))
    return digest_to_cid(mh[2:])


def leaf_blocks(store_dir: Path) -> list[Path]:
    return [p for p in block_files(store_dir) if p.stat().st_size > 1000]


# --- CIDs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "Qm",
        "hello world",
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXE0",  # '0' is not base58
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiX",  # truncated
        "bafkqaaa",  # identity multihash: nothing to verify
        "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",  # dag-cbor: not a UnixFS DAG
    ],
)
def test_malformed_cid_is_refused_clearly(bad, tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    for op in (store.get, store.has, store.pin, lambda c: list(store.iter_bytes(c)), cid_to_digest):
        with pytest.raises(InvalidCID) as info:
            op(bad)
        assert "not a valid CID" in str(info.value)
        assert info.value.hint


def test_non_string_cid_is_refused(tmp_path) -> None:
    with pytest.raises(InvalidCID, match="expected a string"):
        EmbeddedStore(tmp_path).get(123)  # type: ignore[arg-type]


def test_digest_round_trip_and_bad_digests() -> None:
    cid = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
    digest = cid_to_digest(cid)
    assert len(digest) == 32
    assert digest == hashlib.sha256(b"\x0a\x0c\x08\x02\x12\x06hello\n\x18\x06").digest()
    assert digest_to_cid(digest) == cid
    for bad in (b"", b"\x00" * 31, b"\x00" * 33, "00" * 32):
        with pytest.raises(InvalidCID, match="32 bytes"):
            digest_to_cid(bad)  # type: ignore[arg-type]
    from multiformats import CID, multihash

    for sample in [b"\x00" * 32, b"\xff" * 32] + [os.urandom(32) for _ in range(200)]:
        # the fast CIDv0 encoder agrees with multiformats
        assert digest_to_cid(sample) == str(CID("base58btc", 0, "dag-pb", multihash.wrap(sample, "sha2-256")))
    raw_cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"  # raw codec: not what the chain holds
    with pytest.raises(InvalidCID, match="dag-pb"):
        cid_to_digest(raw_cid)


# --- not found --------------------------------------------------------------


def test_unknown_cid_is_not_found(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    unknown = build(b"never stored")[0]
    assert not store.has(unknown)
    with pytest.raises(ContentNotFound) as info:
        store.get(unknown)
    assert unknown in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(ContentNotFound):
        store.pin(unknown)


def test_missing_child_block_is_named(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(THREE_CHUNKS)
    victim = leaf_blocks(tmp_path)[1]
    victim.unlink()
    with pytest.raises(ContentNotFound) as info:
        store.get(cid)
    assert block_cid(victim) in str(info.value)
    assert cid in info.value.hint


# --- corruption -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "empty"])
def test_corrupt_leaf_is_detected_named_and_never_returned(damage, tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(THREE_CHUNKS)
    leaves = leaf_blocks(tmp_path)
    victim = leaves[0]
    original = victim.read_bytes()
    if damage == "flip":
        victim.write_bytes(original[:500] + bytes([original[500] ^ 0x40]) + original[501:])
    elif damage == "truncate":
        victim.write_bytes(original[:-1])
    elif damage == "swap":  # a genuine block, under the wrong name
        victim.write_bytes(leaves[1].read_bytes())
    else:
        victim.write_bytes(b"")
    with pytest.raises(CorruptBlock) as info:
        store.get(cid)
    assert block_cid(victim) in str(info.value)
    # Streaming: whatever was yielded before the error is genuine content.
    received = bytearray()
    with pytest.raises(CorruptBlock):
        for piece in store.iter_bytes(cid):
            received += piece
    assert THREE_CHUNKS.startswith(bytes(received))
    corrupted = victim.read_bytes()
    assert not corrupted or bytes(corrupted) not in bytes(received) or corrupted == original


def test_corrupt_root_is_detected(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(THREE_CHUNKS)
    root_file = next(p for p in block_files(tmp_path) if block_cid(p) == cid)
    data = bytearray(root_file.read_bytes())
    data[-1] ^= 1
    root_file.write_bytes(bytes(data))
    with pytest.raises(CorruptBlock, match=cid):
        store.get(cid)


def test_put_again_heals_a_corrupt_block(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(THREE_CHUNKS)
    victim = leaf_blocks(tmp_path)[2]
    victim.write_bytes(b"rot" + victim.read_bytes()[3:])
    with pytest.raises(CorruptBlock):
        store.get(cid)
    assert store.put(THREE_CHUNKS) == cid
    assert store.get(cid) == THREE_CHUNKS


def test_non_file_dag_is_refused(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    directory = b"\x0a\x02\x08\x01"  # PBNode{Data: UnixFS{Type: Directory}}
    ref = BlockRef("dag-pb", hashlib.sha256(directory).digest())
    store.put_blocks(iter([(ref, directory)]))
    with pytest.raises(StoreError, match="not a file"):
        store.get(str(ref))
    junk = b"\xff\xff\xff"
    jref = BlockRef("dag-pb", hashlib.sha256(junk).digest())
    store.put_blocks(iter([(jref, junk)]))
    with pytest.raises(StoreError, match="not a UnixFS file node"):
        store.get(str(jref))


def test_lying_sizes_in_a_genuine_block_are_refused(tmp_path) -> None:
    # A block that hashes right but whose filesize disagrees with its data.
    store = EmbeddedStore(tmp_path)
    unixfs = b"\x08\x02\x12\x03abc\x18\x05"
    block = b"\x0a" + encode_varint(len(unixfs)) + unixfs
    ref = BlockRef("dag-pb", hashlib.sha256(block).digest())
    store.put_blocks(iter([(ref, block)]))
    with pytest.raises(MalformedDag, match="says 5 bytes"):
        store.get(str(ref))


# --- pins -------------------------------------------------------------------


def test_pin_unpin_list(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    a = store.put(b"a")
    b = store.put(b"b")
    assert sorted(store.list()) == sorted([a, b])
    store.unpin(a)
    assert list(store.list()) == [b]
    assert store.has(a)  # unpinning keeps the blocks (there is no GC)
    with pytest.raises(StoreError, match="not pinned"):
        store.unpin(a)
    store.pin(a)
    assert sorted(store.list()) == sorted([a, b])


def test_only_hash_stores_nothing(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    cid = store.put(THREE_CHUNKS, only_hash=True)
    assert not store.has(cid)
    assert block_files(tmp_path) == []
    assert list(store.list()) == []


# --- not writable -----------------------------------------------------------


def test_store_under_a_regular_file_is_not_writable(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreNotWritable) as info:
        EmbeddedStore(blocker / "store")
    assert str(blocker) in str(info.value)
    assert info.value.hint


def _chattr(flag: str, path: Path) -> bool:
    try:
        return subprocess.run(["chattr", "-R", flag, str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def test_immutable_store_directory_is_not_writable(tmp_path) -> None:
    # Tests run as root, where chmod does not stop writes; an immutable directory does.
    store = EmbeddedStore(tmp_path / "store")
    blocks = tmp_path / "store" / "blocks"
    if not _chattr("+i", blocks):
        pytest.skip("chattr +i is not available on this file system; the regular-file case still runs")
    try:
        with pytest.raises(StoreNotWritable) as info:
            store.put(THREE_CHUNKS)
        assert str(tmp_path / "store") in str(info.value)
    finally:
        _chattr("-i", blocks)
    assert block_files(tmp_path / "store") == []


# --- processes --------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from ipfs import EmbeddedStore
    store = EmbeddedStore(sys.argv[1])
    print(store.put(sys.stdin.buffer), flush=True)
    """
)


def _spawn_put(store_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT)), str(store_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_killed_put_leaves_no_block_that_reads_back_wrong(tmp_path) -> None:
    store_dir = tmp_path / "store"
    data = os.urandom(120 * CHUNK_SIZE + 5)
    child = _spawn_put(store_dir)

    def feed() -> None:
        try:
            for start in range(0, len(data), 65536):
                child.stdin.write(data[start : start + 65536])
            child.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the child was killed mid-stream, as intended

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    # Kill it while it is busy writing: once some blocks are visible, not at the end.
    deadline = time.monotonic() + 30
    while len(block_files(store_dir)) < 8 and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait()
    feeder.join(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert len(block_files(store_dir)) < 121, "the put finished before the kill; the test proved nothing"
    files = block_files(store_dir)
    assert files, "the child wrote no block before it was killed"
    for path in files:  # every visible block is whole and right
        assert hashlib.sha256(path.read_bytes()).digest() == base64.b32decode(
            path.name[:-5] + "=" * (-len(path.name[:-5]) % 8)
        )[2:]
    store = EmbeddedStore(store_dir)
    assert list(store.list()) == []  # the killed put pinned nothing
    # A half-written temp file, as a kill inside a write leaves, is never read.
    shard = files[0].parent
    (shard / f".{files[0].name[:-5]}.999.dead.tmp").write_bytes(b"half")
    assert store.put(data) == build(data)[0]
    assert store.get(build(data)[0]) == data


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from ipfs import EmbeddedStore
    store = EmbeddedStore(sys.argv[1])
    n = int(sys.argv[2])
    shared = bytes(range(256)) * 4096 * 5          # identical in every process
    own = (b"writer-%d " % n) * 300000             # different per process
    for _ in range(3):
        print(store.put(shared), store.put(own), flush=True)
    """
)


def test_several_processes_write_one_store(tmp_path) -> None:
    store_dir = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER.format(root=str(ROOT)), str(store_dir), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outputs.append(out.decode().split())
    store = EmbeddedStore(store_dir)
    shared = bytes(range(256)) * 4096 * 5
    assert {o[0] for o in outputs} == {build(shared)[0]}
    assert store.get(outputs[0][0]) == shared
    for n, out in enumerate(outputs):
        own = (b"writer-%d " % n) * 300000
        assert out[1] == build(own)[0]
        assert store.get(out[1]) == own
    assert sorted(store.list()) == sorted({o[0] for o in outputs} | {o[1] for o in outputs})
    assert not list((store_dir / "blocks").glob("*/*.tmp")), "a writer left a temp file behind"


# --- choosing the store -----------------------------------------------------


def test_open_store_order(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("FEDLEDGER_STORE", raising=False)
    monkeypatch.delenv("IPFS_API", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default = open_store()
    assert isinstance(default, EmbeddedStore) and default.root == tmp_path / "xdg" / "fedledger" / "store"
    monkeypatch.setenv("IPFS_API", "/ip4/127.0.0.1/tcp/5001")
    from ipfs.kubo import KuboStore

    assert isinstance(open_store(), KuboStore)
    monkeypatch.setenv("FEDLEDGER_STORE", str(tmp_path / "env"))
    assert open_store().root == tmp_path / "env"
    assert open_store(store=tmp_path / "arg").root == tmp_path / "arg"
    kubo = open_store(api="http://127.0.0.1:5999")
    assert isinstance(kubo, KuboStore) and kubo.url == "http://127.0.0.1:5999"
    with pytest.raises(StoreError, match="both"):
        open_store(store=tmp_path, api="/ip4/127.0.0.1/tcp/5001")
    assert ipfs.default_store_dir() == tmp_path / "xdg" / "fedledger" / "store"
