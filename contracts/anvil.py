"""A local anvil chain for the demo and the tests, started and always stopped by us.

anvil comes from the npm package ``@foundry-rs/anvil`` that ``scripts/setup`` installs into
the repository's ``node_modules`` (no foundryup, nothing downloaded at run time).
``ANVIL_BIN`` or an ``anvil`` on PATH wins over it.

    with LocalAnvil() as chain:
        ledger = Ledger.deploy(chain.rpc_url, chain.accounts[0], genesis, 2)

The dev accounts are derived from anvil's default mnemonic with eth-account rather than
scraped from anvil's output, so no key is ever printed or logged.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.signers.local import LocalAccount

from contracts.errors import AnvilError, AnvilNotFound

#: anvil's built-in dev mnemonic: public knowledge, for local chains only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_CHAIN_ID = 31337
REPO_ROOT = Path(__file__).resolve().parent.parent

# npm's per-platform package suffix for @foundry-rs/anvil (see its const.mjs).
_NPM_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Linux", "arm64"): "linux-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Darwin", "arm64"): "darwin-arm64",
    ("Windows", "AMD64"): "win32-amd64",
}


def find_anvil() -> Path:
    """ANVIL_BIN, else ``anvil`` on PATH, else the binary of the repository's npm package."""
    env = os.environ.get("ANVIL_BIN")
    if env:
        path = Path(env)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise AnvilNotFound(
            f"ANVIL_BIN={env} is not an executable file",
            hint="point ANVIL_BIN at an anvil binary, or unset it to use the one from ./scripts/setup",
        )
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    suffix = _NPM_PLATFORMS.get((platform.system(), platform.machine()))
    exe = "anvil.exe" if platform.system() == "Windows" else "anvil"
    candidates = []
    if suffix:
        candidates.append(REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{suffix}" / "bin" / exe)
    candidates.extend(sorted((REPO_ROOT / "node_modules" / "@foundry-rs").glob(f"anvil-*/bin/{exe}")))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise AnvilNotFound(
        "anvil not found in ANVIL_BIN, on PATH, or in node_modules/@foundry-rs "
        f"(platform {platform.system()}/{platform.machine()})",
        hint="run ./scripts/setup (installs @foundry-rs/anvil from package.json), or set ANVIL_BIN",
    )


@lru_cache(maxsize=4)
def _seed(mnemonic: str) -> bytes:
    return seed_from_mnemonic(mnemonic, "")


@lru_cache(maxsize=256)
def dev_account(index: int, mnemonic: str = DEV_MNEMONIC) -> LocalAccount:
    """anvil's dev account ``index`` (path m/44'/60'/0'/0/index), derived locally."""
    # The BIP-39 seed (2048 PBKDF2 rounds) is computed once per mnemonic, not per account.
    return Account.from_key(key_from_seed(_seed(mnemonic), f"m/44'/60'/0'/0/{index}"))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux only: if the Python process is killed outright (SIGKILL, OOM), the kernel sends
    # anvil SIGTERM, so a crashed test run leaves no orphan chain behind.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalAnvil:
    """Runs anvil on 127.0.0.1 for the lifetime of a ``with`` block.

    ``port=None`` picks a free port (retrying if another process grabs it first);
    ``state_path`` keeps the chain in a file across restarts (anvil's ``--state``: loaded on
    start, written on stop); ``block_time=None`` mines a block per transaction and only then, so
    the chain's clock stands still between transactions; ``block_time=N`` also mines an empty
    block every N seconds (anvil's mixed mining), so deadlines pass on chain as on a real network.
    """

    def __init__(
        self,
        port: int | None = None,
        state_path: str | os.PathLike[str] | None = None,
        block_time: float | None = None,
        *,
        chain_id: int = DEFAULT_CHAIN_ID,
        accounts: int = 10,
        balance_eth: int = 10_000,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.host = "127.0.0.1"
        self._requested_port = port
        self.port: int | None = None
        self.state_path = Path(state_path) if state_path is not None else None
        self.block_time = block_time
        self.chain_id = chain_id
        self.account_count = accounts
        self.balance_eth = balance_eth
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._binary: Path | None = None
        self._cache: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ public

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not running", hint="use LocalAnvil as a context manager or call start()")
        return f"http://{self.host}:{self.port}"

    @property
    def accounts(self) -> list[LocalAccount]:
        """The funded dev accounts, as eth-account signers (index 0 first)."""
        return [dev_account(i) for i in range(self.account_count)]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalAnvil:
        if self.running:
            return self
        self._binary = find_anvil()
        attempts = 1 if self._requested_port is not None else 5
        last_error: AnvilError | None = None
        for _ in range(attempts):
            port = self._requested_port or _free_port(self.host)
            try:
                self._launch(port)
                return self
            except _PortTaken as exc:
                last_error = exc
                continue
        assert last_error is not None
        raise last_error

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (anvil writes ``--state`` on the way out), then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cache is not None:
            self._cache.cleanup()
            self._cache = None
        self.port = None

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One raw JSON-RPC call (for test helpers such as ``evm_snapshot``)."""
        response = httpx.post(
            self.rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
            timeout=30.0,
        )
        body = response.json()
        if "error" in body:
            raise AnvilError(f"anvil {method} failed: {body['error'].get('message', body['error'])}")
        return body["result"]

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", [snapshot_id]):
            raise AnvilError(f"anvil could not revert to snapshot {snapshot_id}")

    def increase_time(self, seconds: int) -> None:
        """Move the chain's clock forward and mine a block so the new time is visible."""
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def block_timestamp(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def __enter__(self) -> LocalAnvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort if a caller forgot stop(); never raises
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()

    # ------------------------------------------------------------------ internals

    def _command(self, port: int) -> list[str]:
        cmd = [
            str(self._binary),
            "--host", self.host,
            "--port", str(port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.account_count),
            "--balance", str(self.balance_eth),
            "--mnemonic", DEV_MNEMONIC,
            "--hardfork", "cancun",  # the EVM version the contract is compiled for
        ]
        # Old block states spill to disk (gigabytes over a long test session) in a directory that
        # outlives anvil unless named: this instance's own, removed by stop().
        if self._cache is None:
            self._cache = tempfile.TemporaryDirectory(prefix="fedledger-anvil-cache-")
        cmd += ["--cache-path", self._cache.name]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time), "--mixed-mining"]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_path)]
        return cmd + list(self.extra_args)

    def _launch(self, port: int) -> None:
        # anvil's log goes to a file, not a pipe: an unread pipe would eventually block anvil.
        self._log = tempfile.TemporaryFile(prefix="anvil-", suffix=".log")
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": self._log, "stderr": subprocess.STDOUT}
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = _die_with_parent
        if os.name == "posix":
            # Its own session: a Ctrl-C at the terminal reaches Python, whose stop() then ends
            # anvil in order (state written) instead of both dying at once.
            kwargs["start_new_session"] = True
        try:
            self._proc = subprocess.Popen(self._command(port), **kwargs)
        except OSError as exc:
            raise AnvilError(f"cannot start anvil at {self._binary}: {exc}", hint="check ANVIL_BIN / ./scripts/setup") from exc
        self.port = port
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                code = self._proc.poll()
                if code is not None:
                    log = self._log_tail()
                    self._proc = None
                    self.port = None
                    if "in use" in log.lower():
                        raise _PortTaken(f"port {port} on {self.host} is already in use")
                    raise AnvilError(
                        f"anvil exited with code {code} during start-up: {log or '(no output)'}",
                        hint="run the same anvil command by hand to see why",
                    )
                if self._answers():
                    return
                if time.monotonic() > deadline:
                    raise AnvilError(
                        f"anvil did not answer eth_chainId on {self.rpc_url} within {self.startup_timeout:.0f}s",
                        hint="the machine may be overloaded; raise startup_timeout",
                    )
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            response = httpx.post(
                self.rpc_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=1.0,
            )
            return int(response.json()["result"], 16) == self.chain_id
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip()
        return text[-limit:]


class _PortTaken(AnvilError):
    pass
