"""The Kubo backend, against an in-test server that speaks the Kubo RPC wire format
(always) and against a real Kubo daemon (only where an `ipfs` binary is on PATH)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ipfs import (
    ContentNotFound,
    CorruptBlock,
    EmbeddedStore,
    InvalidCID,
    StoreError,
    StoreUnavailable,
)
from ipfs.builder import CHUNK_SIZE, build
from ipfs.car import export_car, import_car
from ipfs.kubo import KuboStore, api_url
from tests.helpers.store import FakeKubo, free_port, load_vectors, vector_content

DATA = vector_content(3 * CHUNK_SIZE + 1)


@pytest.fixture
def fake(tmp_path):
    server = FakeKubo(tmp_path / "kubo-repo")
    yield server
    server.close()


@pytest.fixture
def kubo(fake):
    client = KuboStore(fake.multiaddr, timeout=5, connect_timeout=1, retries=2, backoff=0.01)
    yield client
    client.close()


class _Pipe(io.RawIOBase):
    """Non-seekable, like a pipe: forces a chunked upload."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._src.read(min(len(b), 50_000))
        b[: len(chunk)] = chunk
        return len(chunk)


# --- the good path ------------------------------------------------------------


def test_add_sends_the_kubo_profile_as_multipart_file(kubo, fake) -> None:
    cid = kubo.put(DATA)
    assert cid == build(DATA)[0]
    add = next(r for r in fake.requests if r["cmd"] == "add")
    for key, value in {"cid-version": "0", "chunker": "size-262144", "raw-leaves": "false", "pin": "true"}.items():
        assert add["params"][key] == value
    assert add["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(add["headers"]["Content-Length"]) > len(DATA)  # bytes: length known up front
    assert kubo.get(cid) == DATA
    assert b"".join(kubo.iter_bytes(cid)) == DATA
    assert kubo.has(cid)
    assert list(kubo.list()) == [cid]
    assert kubo.version() == "0.32.1"


def test_vectors_through_the_rpc_api(kubo) -> None:
    for vector in load_vectors():
        if vector["size"] in (0, 262144, 174 * CHUNK_SIZE + 1):
            data = vector_content(vector["size"])
            assert kubo.put(data) == vector["cid"]
            assert kubo.get(vector["cid"]) == data


def test_streaming_upload_of_a_pipe_is_chunked(kubo, fake) -> None:
    cid = kubo.put(io.BufferedReader(_Pipe(DATA)))
    assert cid == build(DATA)[0]
    add = [r for r in fake.requests if r["cmd"] == "add"][-1]
    assert add["headers"].get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in add["headers"]
    assert fake.store.get(cid) == DATA


def test_seekable_file_upload_is_retried_from_its_start(kubo, fake, tmp_path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(DATA)
    fake.faults["fail_times"] = 1
    with open(src, "rb") as fh:
        assert kubo.put(fh) == build(DATA)[0]
    assert fake.calls["add"] == 2


def test_only_hash_needs_no_node(tmp_path) -> None:
    client = KuboStore(f"/ip4/127.0.0.1/tcp/{free_port()}", retries=0)
    assert client.put(DATA, only_hash=True) == build(DATA)[0]


def test_pins(kubo) -> None:
    cid = kubo.put(b"pinned")
    kubo.unpin(cid)
    assert list(kubo.list()) == []
    with pytest.raises(StoreError, match="not pinned"):
        kubo.unpin(cid)
    kubo.pin(cid)
    assert list(kubo.list()) == [cid]


def test_car_moves_between_embedded_store_and_node(kubo, fake, tmp_path) -> None:
    local = EmbeddedStore(tmp_path / "local")
    cid = local.put(DATA)
    car = io.BytesIO()
    export_car(local, cid, car)
    car.seek(0)
    assert import_car(kubo, car) == [cid]
    assert kubo.get(cid) == DATA
    back = io.BytesIO()
    export_car(kubo, cid, back)
    assert back.getvalue() == car.getvalue()


@pytest.mark.parametrize(
    "address, url",
    [
        ("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001"),
        ("/ip6/::1/tcp/5001", "http://[::1]:5001"),
        ("/dns4/kubo.internal/tcp/443/https", "https://kubo.internal:443"),
        ("http://127.0.0.1:5001/api/v0/", "http://127.0.0.1:5001"),
        ("127.0.0.1:5001", "http://127.0.0.1:5001"),
    ],
)
def test_addresses(address, url) -> None:
    assert api_url(address) == url


@pytest.mark.parametrize("address", ["", "/ip4/127.0.0.1/udp/5001", "/unix/tmp/sock/tcp/1", "/ip4/1.2.3.4/tcp/99999", "ftp://x"])
def test_bad_addresses_are_refused(address) -> None:
    with pytest.raises(StoreUnavailable) as info:
        api_url(address)
    assert info.value.hint


def test_ipfs_api_env_is_the_fallback(monkeypatch, fake) -> None:
    monkeypatch.setenv("IPFS_API", fake.multiaddr)
    assert KuboStore().url == fake.url


# --- faults -------------------------------------------------------------------


def test_unknown_cid_is_not_found(kubo) -> None:
    unknown = build(b"nobody added this")[0]
    with pytest.raises(ContentNotFound, match=unknown):
        kubo.get(unknown)
    with pytest.raises(ContentNotFound):
        list(kubo.iter_bytes(unknown))
    assert not kubo.has(unknown)


def test_malformed_cid_never_reaches_the_node(kubo, fake) -> None:
    for op in (kubo.get, kubo.has, kubo.pin, kubo.unpin):
        with pytest.raises(InvalidCID):
            op("Qm-not-a-cid")
    assert fake.calls == {}


def test_node_down_names_the_address() -> None:
    port = free_port()
    client = KuboStore(f"/ip4/127.0.0.1/tcp/{port}", retries=2, backoff=0.01, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        client.put(b"x")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "after 3 attempts" in str(info.value)
    assert info.value.hint and "ipfs daemon" in info.value.hint
    assert time.monotonic() - started < 10


def test_garbage_answers_name_the_address(kubo, fake) -> None:
    cid = kubo.put(DATA)
    fake.faults["garbage"] = True
    with pytest.raises(StoreUnavailable, match=f"{fake.url}.*not Kubo's JSON"):
        kubo.put(b"more")
    with pytest.raises(StoreUnavailable, match=fake.url):
        kubo.version()
    # /cat answered with an HTML page: the bytes are not the CID's, and /block/get
    # garbage is caught block by block.
    with pytest.raises(CorruptBlock, match=f"Kubo at {fake.url}"):
        kubo.get(cid)


def test_gateway_instead_of_api_is_explained(fake) -> None:
    client = KuboStore(fake.url + "/not-the-api", retries=0)
    with pytest.raises(StoreUnavailable, match="not a Kubo RPC API") as info:
        client.version()
    assert "5001" in info.value.hint


def test_transient_5xx_is_retried(kubo, fake) -> None:
    fake.faults["fail_times"] = 2
    assert kubo.version() == "0.32.1"
    assert fake.calls["version"] == 3


def test_persistent_5xx_gives_up(kubo, fake) -> None:
    fake.faults["fail_times"] = 10
    with pytest.raises(StoreUnavailable, match="HTTP 503.*after 3 attempts"):
        kubo.version()
    assert fake.calls["version"] == 3


def test_kubo_error_body_is_reported_not_retried(kubo, fake) -> None:
    cid = kubo.put(b"x")
    kubo.unpin(cid)
    before = fake.calls["pin/rm"]
    with pytest.raises(StoreError, match="not pinned"):
        kubo.unpin(cid)
    assert fake.calls["pin/rm"] == before + 1


def test_timeout_names_the_address(fake) -> None:
    client = KuboStore(fake.multiaddr, timeout=0.3, retries=1, backoff=0.01)
    fake.faults["delay"] = 1.0
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"{fake.url}.*in time"):
        client.version()
    assert time.monotonic() - started < 3
    assert fake.calls["version"] == 2


def test_non_replayable_upload_is_not_retried(kubo, fake) -> None:
    fake.faults["fail_times"] = 1
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        kubo.put(io.BufferedReader(_Pipe(DATA)))
    assert fake.calls["add"] == 1


def test_node_that_lies_about_the_cid_is_refused(kubo, fake) -> None:
    fake.faults["lie_add"] = True
    with pytest.raises(StoreError, match="returned CID QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH for content whose CID is"):
        kubo.put(DATA)


def test_wrong_cat_bytes_fall_back_to_verified_blocks(kubo, fake) -> None:
    cid = kubo.put(DATA)
    fake.faults["lie_cat"] = True
    assert kubo.get(cid) == DATA
    assert fake.calls.get("block/get", 0) >= 5


def test_node_that_lies_about_blocks_is_caught(kubo, fake) -> None:
    cid = kubo.put(DATA)
    fake.faults["lie_cat"] = True
    fake.faults["lie_block"] = True
    with pytest.raises(CorruptBlock, match=f"{cid}.*Kubo at {fake.url}"):
        kubo.get(cid)
    with pytest.raises(CorruptBlock):
        list(kubo.iter_bytes(cid))


# --- a real Kubo --------------------------------------------------------------

IPFS = shutil.which("ipfs")


@pytest.fixture(scope="module")
def real_kubo(tmp_path_factory):
    if IPFS is None:
        pytest.skip("no Kubo `ipfs` binary on PATH (none can be installed from the registries here); "
                    "the in-test Kubo RPC server covers the wire format")
    repo = tmp_path_factory.mktemp("ipfs-repo")
    env = {**os.environ, "IPFS_PATH": str(repo)}
    subprocess.run([IPFS, "init", "--profile=test"], env=env, check=True, capture_output=True)
    subprocess.run([IPFS, "config", "Addresses.API", f"/ip4/127.0.0.1/tcp/{free_port()}"], env=env, check=True)
    subprocess.run([IPFS, "config", "--json", "Addresses.Gateway", "[]"], env=env, check=True)
    subprocess.run([IPFS, "config", "--json", "Bootstrap", "[]"], env=env, check=True)
    daemon = subprocess.Popen([IPFS, "daemon", "--offline"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    api_file = Path(repo) / "api"
    deadline = time.monotonic() + 60
    while not api_file.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            pytest.fail(f"ipfs daemon did not start: {daemon.stdout.read().decode(errors='replace')[-2000:]}")
        time.sleep(0.1)
    client = KuboStore(api_file.read_text().strip(), retries=5, backoff=0.2)
    yield client, env
    client.close()
    daemon.terminate()
    daemon.wait(timeout=30)


@pytest.mark.kubo
def test_real_kubo_gives_the_vector_cids(real_kubo) -> None:
    client, env = real_kubo
    for vector in load_vectors():
        data = vector_content(vector["size"])
        assert client.put(data) == vector["cid"]
        assert client.get(vector["cid"]) == data


@pytest.mark.kubo
def test_real_kubo_dag_import_reads_our_car(real_kubo, tmp_path) -> None:
    client, env = real_kubo
    local = EmbeddedStore(tmp_path / "local")
    cid = local.put(DATA)
    car = tmp_path / "x.car"
    with open(car, "wb") as fh:
        export_car(local, cid, fh)
    out = subprocess.run([IPFS, "dag", "import", str(car)], env=env, check=True, capture_output=True, text=True)
    assert cid in out.stdout
    assert subprocess.run([IPFS, "cat", cid], env=env, check=True, capture_output=True).stdout == DATA
    exported = subprocess.run([IPFS, "dag", "export", cid], env=env, check=True, capture_output=True).stdout
    other = EmbeddedStore(tmp_path / "other")
    assert import_car(other, io.BytesIO(exported)) == [cid]
    assert other.get(cid) == DATA
