"""`fedledger ipfs …` as people and checks use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.cli import main
from ipfs import EmbeddedStore, cid_to_digest
from tests.helpers.store import FakeKubo, free_port, load_vectors, vector_content

ROOT = Path(__file__).resolve().parents[2]
VECTOR = next(v for v in load_vectors() if v["size"] == 262145)


@pytest.fixture
def vector_file(tmp_path) -> Path:
    path = tmp_path / "vector.bin"
    path.write_bytes(vector_content(VECTOR["size"]))
    return path


@pytest.fixture(autouse=True)
def _no_env_store(monkeypatch, tmp_path):
    monkeypatch.delenv("FEDLEDGER_STORE", raising=False)
    monkeypatch.delenv("IPFS_API", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_quiet_prints_only_the_cid(vector_file, tmp_path, capsys) -> None:
    code, out, _ = run(["ipfs", "add", "-q", "--store", str(tmp_path / "s"), str(vector_file)], capsys)
    assert code == 0 and out == VECTOR["cid"] + "\n"
    assert EmbeddedStore(tmp_path / "s").has(VECTOR["cid"])


def test_add_prints_like_ipfs_add(vector_file, tmp_path, capsys) -> None:
    code, out, _ = run(["ipfs", "add", "--store", str(tmp_path / "s"), str(vector_file)], capsys)
    assert code == 0 and out == f"added {VECTOR['cid']} vector.bin\n"


def test_only_hash_stores_nothing(vector_file, tmp_path, capsys) -> None:
    code, out, _ = run(["ipfs", "add", "-Q", "-n", "--store", str(tmp_path / "s"), str(vector_file)], capsys)
    assert code == 0 and out.strip() == VECTOR["cid"]
    assert not (tmp_path / "s").exists()


def test_store_from_environment(vector_file, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FEDLEDGER_STORE", str(tmp_path / "env-store"))
    assert run(["ipfs", "add", "-q", str(vector_file)], capsys)[0] == 0
    assert EmbeddedStore(tmp_path / "env-store").has(VECTOR["cid"])


def test_cat_writes_the_bytes_to_stdout(vector_file, tmp_path) -> None:
    store = tmp_path / "s"
    EmbeddedStore(store).put(vector_file.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "fedledger", "ipfs", "cat", "--store", str(store), VECTOR["cid"]],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == vector_file.read_bytes()


def test_car_export_then_import(vector_file, tmp_path, capsys) -> None:
    src, dst, car = tmp_path / "a", tmp_path / "b", tmp_path / "x.car"
    run(["ipfs", "add", "-q", "--store", str(src), str(vector_file)], capsys)
    code, _, err = run(["ipfs", "export-car", "--store", str(src), VECTOR["cid"], str(car)], capsys)
    assert code == 0 and "3 blocks" in err
    code, out, _ = run(["ipfs", "import-car", "--store", str(dst), str(car)], capsys)
    assert code == 0 and out.strip() == VECTOR["cid"]
    assert EmbeddedStore(dst).get(VECTOR["cid"]) == vector_file.read_bytes()
    code, out, _ = run(["ipfs", "ls", "--store", str(dst)], capsys)
    assert out.split() == [VECTOR["cid"]]


def test_digest_and_cid_commands(capsys) -> None:
    code, out, _ = run(["ipfs", "digest", VECTOR["cid"]], capsys)
    assert code == 0 and out.strip() == "0x" + cid_to_digest(VECTOR["cid"]).hex()
    code, out, _ = run(["ipfs", "cid", out.strip()], capsys)
    assert code == 0 and out.strip() == VECTOR["cid"]


def test_through_a_kubo_api(vector_file, tmp_path, capsys) -> None:
    fake = FakeKubo(tmp_path / "repo")
    try:
        code, out, _ = run(["ipfs", "add", "-q", "--ipfs-api", fake.multiaddr, str(vector_file)], capsys)
        assert code == 0 and out.strip() == VECTOR["cid"]
        assert fake.store.get(VECTOR["cid"]) == vector_file.read_bytes()
    finally:
        fake.close()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ipfs", "cat", "not-a-cid"], "not a valid CID"),
        (["ipfs", "cat", "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"], "is not in store"),
        (["ipfs", "add", "/no/such/file"], "no such file"),
        (["ipfs", "cid", "0x1234"], "32 bytes"),
        (["ipfs", "import-car", "{vector}"], "CAR"),
    ],
)
def test_errors_are_one_line_and_exit_1(argv, message, vector_file, tmp_path, capsys) -> None:
    argv = [a.replace("{vector}", str(vector_file)) for a in argv] + ["--store", str(tmp_path / "s")] * (
        argv[1] in ("cat", "add", "import-car")
    )
    code, _, err = run(argv, capsys)
    assert code == 1
    assert message in err and "hint:" in err and "Traceback" not in err


def test_unreachable_api_exits_1_naming_it(vector_file, capsys) -> None:
    port = free_port()
    code, _, err = run(["ipfs", "add", "--ipfs-api", f"/ip4/127.0.0.1/tcp/{port}", str(vector_file)], capsys)
    assert code == 1 and f"127.0.0.1:{port}" in err


def test_unwritable_store_exits_1(vector_file, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(["ipfs", "add", "--store", str(blocker / "s"), str(vector_file)], capsys)
    assert code == 1 and "not writable" in err


def test_kubo_names_pin_ls_and_dag_export_import_with_the_old_names_hidden(vector_file, tmp_path, capsys) -> None:
    src, dst, car = tmp_path / "a", tmp_path / "b", tmp_path / "x.car"
    run(["ipfs", "add", "-q", "--store", str(src), str(vector_file)], capsys)
    code, _, err = run(["ipfs", "dag", "export", "--store", str(src), VECTOR["cid"], str(car)], capsys)
    assert code == 0 and "3 blocks" in err
    code, out, _ = run(["ipfs", "dag", "import", "--store", str(dst), str(car)], capsys)
    assert code == 0 and out.strip() == VECTOR["cid"]
    code, out, _ = run(["ipfs", "pin", "ls", "--store", str(dst)], capsys)
    assert code == 0 and out.splitlines() == [f"{VECTOR['cid']} recursive"]
    code, out, _ = run(["ipfs", "pin", "ls", "-q", "--store", str(dst)], capsys)
    assert out.split() == [VECTOR["cid"]]
    # `ipfs dag export CID` writes the CAR to standard output, as Kubo's does.
    proc = subprocess.run([sys.executable, "-m", "fedledger", "ipfs", "dag", "export", "--store", str(src), VECTOR["cid"]],
                          capture_output=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == car.read_bytes()

    code, out, _ = run(["ipfs", "--help"], capsys)
    listed = out.split("Commands")[-1]
    for old in ("export-car", "import-car", " ls "):
        assert old not in listed
    assert "pin" in listed and "dag" in listed
