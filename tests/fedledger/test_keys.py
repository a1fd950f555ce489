"""fedledger.keys and `fedledger keys`: keystores in the format geth and cast read, never showing a key."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.cli import main
from fedledger.keys import KeyError_, keystore_address, load_account, write_keystore

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_new_writes_a_v3_scrypt_keystore_that_eth_account_decrypts(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("FEDLEDGER_KEY_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    ks = tmp_path / "org.json"
    code, out, err = run(["keys", "new", "--out", str(ks), "--password-file", str(pw)], capsys)
    assert code == 0 and err == ""
    address = out.strip()
    assert out == address + "\n" and address.startswith("0x") and len(address) == 42  # the address, nothing else

    assert oct(ks.stat().st_mode & 0o777) == "0o600"
    data = json.loads(ks.read_text())
    # What geth's and cast's keystore readers look at.
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt" and data["crypto"]["cipher"] == "aes-128-ctr"
    assert {"dklen", "n", "r", "p", "salt"} <= set(data["crypto"]["kdfparams"]) and data["crypto"]["mac"] and data["id"]
    assert data["address"].lower() == address[2:].lower()
    key = Account.decrypt(data, "correct horse")
    assert Account.from_key(key).address == address
    assert key.hex() not in out + err and key.hex() not in ks.read_text()
    assert load_account(keystore=ks, password_file=pw).address == address

    code, out, _ = run(["keys", "address", "--keystore", str(ks)], capsys)
    assert code == 0 and out.strip() == address


def test_keys_new_refuses_to_overwrite_and_needs_a_password(tmp_path: Path, capsys, monkeypatch) -> None:
    ks = tmp_path / "org.json"
    ks.write_text("the only copy of another key")
    monkeypatch.setenv("FEDLEDGER_KEY_PASSWORD", "pw")
    code, _, err = run(["keys", "new", "--out", str(ks)], capsys)
    assert code == 1 and "never overwritten" in err and ks.read_text() == "the only copy of another key"

    monkeypatch.delenv("FEDLEDGER_KEY_PASSWORD")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    code, _, err = run(["keys", "new", "--out", str(tmp_path / "new.json")], capsys)
    assert code == 1 and "no password" in err and "hint:" in err and not (tmp_path / "new.json").exists()
    with pytest.raises(KeyError_, match="non-empty password"):
        write_keystore(Account.create(), tmp_path / "empty.json", "")


def test_a_missing_keystore_is_one_line_with_a_hint(tmp_path: Path, capsys) -> None:
    for argv in (["keys", "address", "--keystore", str(tmp_path / "nope.json")],
                 ["register", "0x" + "22" * 20, "x", "--keystore", str(tmp_path / "nope.json"), "--ledger", "0x" + "33" * 20]):
        code, _, err = run(argv, capsys)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 2 and "keystore file not found" in lines[0]
        assert "fedledger keys new" in lines[1]


def test_a_keystore_without_an_address_field_as_cast_writes_it(tmp_path: Path, capsys, monkeypatch) -> None:
    acct = Account.create()
    data = Account.encrypt(acct.key, "pw", kdf="scrypt", iterations=2**12)
    del data["address"]
    ks = tmp_path / "cast.json"
    ks.write_text(json.dumps(data))
    monkeypatch.delenv("FEDLEDGER_KEY_PASSWORD", raising=False)
    code, _, err = run(["keys", "address", "--keystore", str(ks)], capsys)
    assert code == 1 and "records no address" in err and "--password-file" in err
    monkeypatch.setenv("FEDLEDGER_KEY_PASSWORD", "pw")
    code, out, _ = run(["keys", "address", "--keystore", str(ks)], capsys)
    assert code == 0 and out.strip() == acct.address
    assert load_account(keystore=ks).address == acct.address


def test_cast_reads_a_keystore_fedledger_wrote_and_fedledger_one_cast_wrote(tmp_path: Path, capsys, monkeypatch) -> None:
    """The real Foundry cast (node_modules/.bin, from npm), both ways; only addresses are ever printed."""
    cast = ROOT / "node_modules" / ".bin" / "cast"
    if not cast.exists():
        pytest.skip("cast is missing (./scripts/setup installs it)")
    monkeypatch.delenv("FEDLEDGER_KEY_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_text("a password both read\n")
    ours = tmp_path / "ours.json"
    code, out, _ = run(["keys", "new", "--out", str(ours), "--password-file", str(pw)], capsys)
    assert code == 0
    read = subprocess.run([str(cast), "wallet", "address", "--keystore", str(ours), "--password-file", str(pw)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == out.strip()

    made = subprocess.run([str(cast), "wallet", "new", str(tmp_path), "theirs", "--unsafe-password", "a password both read"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    address = next(line.split()[-1] for line in made.stdout.splitlines() if line.startswith("Address:"))
    assert load_account(keystore=tmp_path / "theirs", password_file=pw).address == address
    code, out, _ = run(["keys", "address", "--keystore", str(tmp_path / "theirs"), "--password-file", str(pw)], capsys)
    assert code == 0 and out.strip() == address
    with pytest.raises(KeyError_):
        wrong = tmp_path / "wrong"
        wrong.write_text("another password\n")
        load_account(keystore=tmp_path / "theirs", password_file=wrong)


def test_an_edited_address_is_caught_when_decrypting(tmp_path: Path) -> None:
    ks = write_keystore(Account.create(), tmp_path / "k.json", "pw")
    data = json.loads(ks.read_text())
    data["address"] = "11" * 20
    ks.write_text(json.dumps(data))
    assert keystore_address(ks) == "0x" + "11" * 20
    (tmp_path / "pw").write_text("pw")
    with pytest.raises(KeyError_, match="holds the key of"):
        load_account(keystore=ks, password_file=tmp_path / "pw")


def test_keys_new_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    ks = tmp_path / "tty.json"
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_KEY_PASSWORD"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal of its own
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "fedledger", "keys", "new", "--out", str(ks)], env)
    seen, answers, deadline = b"", 0, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if answers < 2 and seen.count(b"password") + seen.count(b"Repeat") > answers:
                time.sleep(0.5)  # getpass flushes input typed before it turned echo off
                os.write(fd, b"typed secret\n")
                answers += 1
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert answers == 2 and b"typed secret" not in seen  # hidden input
    assert Account.from_key(Account.decrypt(json.loads(ks.read_text()), "typed secret")).address.encode() in seen


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    ks = write_keystore(Account.create(), tmp_path / "k.json", "pw")
    with pytest.raises(KeyError_, match="cannot read password file"):
        load_account(keystore=ks, password_file=tmp_path / "missing")
