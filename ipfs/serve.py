"""An embedded store served read-only to the federation's other members, in Kubo's RPC words.

A member without a Kubo node still has to let the others read what it publishes (its update
once a round's submissions close; the coordinator's global models and manifests; the admin's
descriptor and validation set). :class:`StoreServer` answers the read half of the Kubo RPC
API that :class:`ipfs.kubo.KuboStore` speaks — ``/api/v0/version``, ``block/get``,
``block/stat``, ``cat`` and ``pin/ls`` — from the blocks an :class:`ipfs.EmbeddedStore` holds,
and refuses every write. It serves only what is in its own directory: it never asks anyone
else, so stores that read from each other (:class:`ipfs.peered.PeeredStore`) cannot send a
request around in circles.

Nothing it sends is trusted by the reader: every block is re-hashed against its CID on arrival.
What it serves is what the federation publishes anyway; bind it to the consortium's network
only (the default is loopback).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ipfs.cid import parse_cid
from ipfs.embedded import EmbeddedStore
from ipfs.errors import ContentNotFound, InvalidCID, StoreError, StoreMisconfigured
from ipfs.reader import BlockRef

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "/ip4/127.0.0.1/tcp/5101"
SERVER_VERSION = "fedledger-store-1"
MAX_CONNECTIONS = 32  # more at once are turned away: a reader retries, a flood does not tie up threads
IDLE_TIMEOUT = 30.0  # seconds a connection may sit without sending its request
MAX_REQUEST_BODY = 1 << 16  # reads carry no body; anything larger is not a read
READ_COMMANDS = ("version", "block/get", "block/stat", "cat", "pin/ls")
# Kubo's commands that change a node: answered with an error body saying this node is read-only.
WRITE_COMMANDS = ("add", "block/put", "block/rm", "pin/add", "pin/rm", "pin/update", "dag/import", "dag/put", "files", "repo/gc")


def listen_address(address: str) -> tuple[str, int]:
    """``(host, port)`` from a multiaddr (``/ip4/0.0.0.0/tcp/5101``), a URL or ``host:port``."""
    from ipfs.kubo import (
        api_url,  # the one parser of API addresses (httpx is imported only here)
    )

    url = urllib.parse.urlsplit(api_url(address))
    if url.scheme != "http" or url.port is None:
        raise StoreMisconfigured(address, "serve listens on plain HTTP at HOST:PORT (put TLS in front with a proxy)")
    return (url.hostname or "127.0.0.1"), url.port


class StoreServer:
    """Serves one embedded store's blocks over HTTP until closed (``serve_forever`` or ``start``)."""

    def __init__(self, store: EmbeddedStore, host: str = "127.0.0.1", port: int = 5101) -> None:
        self.store = store
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        try:
            self._server = _Server((host, port), _handler(self))
        except OSError as exc:
            raise StoreError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="pick another --listen port, or stop what already listens there",
            ) from None
        self._server.owner = self
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> StoreServer:
        """Serve on a background thread (for a process that does other work, and the tests)."""
        self._thread = threading.Thread(target=self.serve_forever, name="store-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> StoreServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    owner: StoreServer

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.owner._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the reader sees a reset and retries later
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._slots.release()


def _handler(owner: StoreServer) -> type[BaseHTTPRequestHandler]:
    store = owner.store

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = SERVER_VERSION
        sys_version = ""
        timeout = IDLE_TIMEOUT

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            log.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:  # Kubo's RPC API is POST only
            self._plain(405, "405 - Method Not Allowed\n")

        do_PUT = do_DELETE = do_GET

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if not self._drain_body():
                return
            if not url.path.startswith("/api/v0/"):
                self._plain(404, "404 page not found\n")
                return
            command = url.path[len("/api/v0/") :].strip("/")
            args = [v for k, v in urllib.parse.parse_qsl(url.query) if k == "arg"]
            if command in WRITE_COMMANDS or command.split("/")[0] in WRITE_COMMANDS:
                self._error(403, f"{command}: this node serves its store read-only (fedledger ipfs serve)")
                return
            if command not in READ_COMMANDS:
                self._plain(404, "404 page not found\n")
                return
            try:
                getattr(self, "_" + command.replace("/", "_"))(args)
            except ContentNotFound as exc:
                self._error(500, f"block was not found locally (offline): ipld: could not find {exc.cid}")
            except InvalidCID as exc:
                self._error(500, f"invalid cid: {exc}")
            except StoreError as exc:  # a corrupt or unreadable block: the reader tries elsewhere
                self._error(500, str(exc))
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        # -- commands -------------------------------------------------------

        def _version(self, args: list[str]) -> None:
            self._json({"Version": SERVER_VERSION, "Commit": "", "Repo": "", "System": "", "Golang": ""})

        def _block_get(self, args: list[str]) -> None:
            ref = self._ref(args)
            data = store.read_block(ref, local_only=True)
            self._send(200, data, "application/octet-stream")

        def _block_stat(self, args: list[str]) -> None:
            ref = self._ref(args)
            data = store.read_block(ref, local_only=True)
            self._json({"Key": str(ref), "Size": len(data)})

        def _cat(self, args: list[str]) -> None:
            cid = str(self._ref(args))
            pieces = store.iter_bytes(cid)
            first = next(pieces, None)  # a missing root fails here, before any header is sent
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for piece in _chain(first, pieces):
                    if not len(piece):
                        continue  # an empty chunk would end the stream
                    self.wfile.write(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
            except StoreError as exc:
                # Headers are out: end the stream without its last chunk, so the reader sees it broken.
                log.warning("cat %s broke off: %s", cid, exc)
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")

        def _pin_ls(self, args: list[str]) -> None:
            lines = "".join(json.dumps({"Cid": cid, "Type": "recursive"}) + "\n" for cid in store.list())
            self._send(200, lines.encode(), "application/json")

        # -- plumbing ---------------------------------------------------------

        def _ref(self, args: list[str]) -> BlockRef:
            if len(args) != 1:
                raise InvalidCID("", f"expected one arg, got {len(args)}")
            return BlockRef.of(parse_cid(args[0]))

        def _drain_body(self) -> bool:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self._error(403, "this node serves its store read-only (fedledger ipfs serve)")
                self.close_connection = True
                return False
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = MAX_REQUEST_BODY + 1
            if length > MAX_REQUEST_BODY or length < 0:
                self._error(403, "this node serves its store read-only (fedledger ipfs serve)")
                self.close_connection = True
                return False
            if length:
                self.rfile.read(length)
            return True

        def _json(self, obj: dict[str, Any]) -> None:
            self._send(200, (json.dumps(obj) + "\n").encode(), "application/json")

        def _error(self, status: int, message: str) -> None:
            body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
            self._send(status, body, "application/json")

        def _plain(self, status: int, text: str) -> None:
            self._send(status, text.encode(), "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _chain(first: memoryview | None, rest: Iterator[memoryview]) -> Iterator[memoryview]:
    if first is not None:
        yield first
        yield from rest
