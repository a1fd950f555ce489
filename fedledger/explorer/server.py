"""Running the explorer: uvicorn on a loopback socket in a thread, and a poller that follows the chain.

:func:`start_explorer` returns at once with the URL (the first read of the chain and the
audit of rounds not in the cache go on in the poller; pages show what is known so far).
The server binds 127.0.0.1 only and makes no outbound connection but to the federation's
own chain and store.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from contracts.client import Ledger
from faults import FedLedgerError
from fedledger.explorer.cache import default_cache_dir
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.index import FederationIndex
from fedledger.explorer.views import ViewSettings
from ipfs import ContentStore

HOST = "127.0.0.1"
log = logging.getLogger(__name__)


class ExplorerStartError(FedLedgerError):
    """The explorer could not listen or start."""


@dataclass(frozen=True)
class ExplorerSettings:
    port: int = 0  # 0: any free port
    poll_seconds: float = 3.0
    read_timeout: float = 10.0  # each read of the chain or the store (a page, a refresh)
    fetch_timeout: float = 10.0  # the audit's update fetches, per round
    cache_dir: Path | None = None  # default: the XDG cache directory
    reaudit: bool = False  # ignore cached verdicts (they are rewritten)
    dp_budget: float | None = None


class RunningExplorer:
    """A started explorer: its ``url``, its ``index``, and :meth:`stop`."""

    def __init__(self, index: FederationIndex, server, thread: threading.Thread, port: int, poll_seconds: float) -> None:  # noqa: ANN001
        self.index = index
        self.url = f"http://{HOST}:{port}/"
        self.port = port
        self._server = server
        self._thread = thread
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._follow, args=(poll_seconds,), name="explorer-poller", daemon=True)
        self._poller.start()

    def _follow(self, poll_seconds: float) -> None:
        while not self._stop.is_set():
            try:
                self.index.refresh()
            except Exception:  # the poller outlives any one bad refresh
                log.exception("explorer: refresh failed")
            self._stop.wait(poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._poller.join(timeout=30)

    def __enter__(self) -> RunningExplorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_explorer(
    ledger: Ledger, store: ContentStore, *, descriptor_cid: str | None = None, settings: ExplorerSettings | None = None
) -> RunningExplorer:
    """Serve the explorer of ``ledger``'s federation on 127.0.0.1; returns once it accepts connections."""
    import uvicorn

    from fedledger.explorer.app import create_app

    settings = settings or ExplorerSettings()
    index = FederationIndex(
        ledger, store, cache_dir=settings.cache_dir or default_cache_dir(), descriptor_cid=descriptor_cid,
        read_timeout=settings.read_timeout, fetch_timeout=settings.fetch_timeout, reaudit=settings.reaudit,
    )  # fmt: skip
    app = create_app(index, ChainDetails(ledger, store, read_timeout=settings.read_timeout), ViewSettings(settings.dp_budget))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, settings.port))
    except OSError as exc:
        sock.close()
        raise ExplorerStartError(
            f"cannot listen on {HOST}:{settings.port}: {exc.strerror or exc}", hint="choose another --port (0 takes any free one)"
        ) from None
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="explorer-http", daemon=True)
    thread.start()
    until = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > until:
            raise ExplorerStartError(f"the explorer's web server did not start on {HOST}:{port}")
        time.sleep(0.02)
    return RunningExplorer(index, server, thread, port, settings.poll_seconds)


def serve_until_interrupted(
    ledger: Ledger,
    store: ContentStore,
    *,
    descriptor_cid: str | None = None,
    settings: ExplorerSettings | None = None,
    console: Console | None = None,
) -> None:
    """Start the explorer, print its one ``explorer: URL`` line, and serve until Ctrl-C."""
    console = console or Console(stderr=True)
    explorer = start_explorer(ledger, store, descriptor_cid=descriptor_cid, settings=settings)
    console.print(f"explorer: {explorer.url}", highlight=False, soft_wrap=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        explorer.stop()


def explore_demo(ledger: Ledger, store: ContentStore, descriptor_cid: str, out: Path, console: Console) -> None:
    """The demo's ``--explore``: serve its federation (read-only, verdicts cached in the report folder) until Ctrl-C."""
    settings = ExplorerSettings(cache_dir=out / "explorer-cache", poll_seconds=2.0)
    serve_until_interrupted(ledger.with_account(None), store, descriptor_cid=descriptor_cid, settings=settings, console=console)
