"""The local anvil runner: start-up, guaranteed shutdown, persistent state, lookup errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from contracts import errors
from contracts.anvil import LocalAnvil, find_anvil
from contracts.client import Ledger


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped or defunct.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _answers(url: str) -> bool:
    try:
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=1)
        return True
    except httpx.HTTPError:
        return False


def test_starts_on_loopback_and_stops_on_exit():
    with LocalAnvil(accounts=3) as chain:
        pid = chain._proc.pid
        url = chain.rpc_url
        assert url.startswith("http://127.0.0.1:")
        assert chain.rpc("eth_chainId") == hex(chain.chain_id)
        # The dev keys derived locally are the ones anvil funds.
        assert [a.lower() for a in chain.rpc("eth_accounts")] == [a.address.lower() for a in chain.accounts]
    assert not _alive(pid)
    assert not _answers(url)


@pytest.mark.parametrize("fault", [RuntimeError, KeyboardInterrupt])
def test_stops_when_the_block_raises(fault):
    with pytest.raises(fault):
        with LocalAnvil(accounts=1) as chain:
            pid = chain._proc.pid
            raise fault("boom")
    assert not _alive(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only (prctl)")
def test_dies_with_its_parent_even_on_sigkill():
    code = (
        "from contracts.anvil import LocalAnvil\n"
        "import sys, time\n"
        "chain = LocalAnvil(accounts=1).start()\n"
        "print(chain._proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        anvil_pid = int(parent.stdout.readline())
        assert _alive(anvil_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(anvil_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(anvil_pid), "anvil outlived a SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_state_file_keeps_the_chain_across_restarts(tmp_path):
    state = tmp_path / "chain" / "state.json"
    with LocalAnvil(accounts=3, state_path=state) as chain:
        admin = chain.accounts[0]
        ledger = Ledger.deploy(chain.rpc_url, admin, os.urandom(32), 1)
        ledger.register_participant(chain.accounts[1].address, "survivor")
        address, block = ledger.address, ledger.block_number()
    assert state.is_file() and state.stat().st_size > 0
    with LocalAnvil(accounts=3, state_path=state) as chain:
        again = Ledger.attach(chain.rpc_url, address, chain.accounts[0], expected_chain_id=chain.chain_id)
        assert again.participants() == [chain.accounts[1].address]
        assert again.block_number() >= block
        again.register_participant(chain.accounts[2].address, "after restart")
        assert again.participant_name(chain.accounts[2].address) == "after restart"


def test_an_explicit_busy_port_is_reported():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(errors.AnvilError, match=f"port {port}"):
            LocalAnvil(port=port, accounts=1).start()


def test_anvil_bin_that_is_not_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("ANVIL_BIN", str(tmp_path / "missing-anvil"))
    with pytest.raises(errors.AnvilNotFound, match="ANVIL_BIN=") as exc:
        find_anvil()
    assert exc.value.hint


def test_anvil_bin_wins_over_the_npm_binary(monkeypatch):
    npm_binary = find_anvil()
    monkeypatch.setenv("ANVIL_BIN", str(npm_binary))
    assert find_anvil() == npm_binary


def test_rpc_url_before_start_is_an_error():
    with pytest.raises(errors.AnvilError, match="not running"):
        LocalAnvil().rpc_url


def test_anvil_keeps_its_spilled_states_in_a_directory_of_its_own_that_stop_removes() -> None:
    """Before: anvil spilled old block states into ~/.foundry/anvil/tmp and left them there after
    exiting: about 5 GB per test session, until the disk was full."""
    node = LocalAnvil().start()
    try:
        command = node._command(node.port or 0)
        cache = Path(command[command.index("--cache-path") + 1])
        assert cache.is_dir()
        node.rpc("evm_mine")
    finally:
        node.stop()
    assert not cache.exists()
