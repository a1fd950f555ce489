"""Shared helpers for the store tests: the Kubo vectors and their content generator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

VECTORS_FILE = Path(__file__).resolve().parents[1] / "vectors" / "kubo-cids.json"


def load_vectors() -> list[dict]:
    return json.loads(VECTORS_FILE.read_text())["vectors"]


def vector_stream(n: int, piece: int = 1 << 20) -> Iterator[bytes]:
    """content(n) from the vector file, in pieces (the generator the file describes)."""
    counter = 0
    produced = 0
    tag = b"fedledger-vector-%d-" % n
    while produced < n:
        want = min(piece, n - produced)
        blocks = (want + 31) // 32
        buf = b"".join(hashlib.sha256(tag + str(counter + i).encode()).digest() for i in range(blocks))
        counter += blocks
        out = buf[:want]
        # Keep the 32-byte counter aligned: pieces are multiples of 32 except the last.
        assert want % 32 == 0 or produced + want == n
        produced += want
        yield out


def vector_content(n: int) -> bytes:
    return b"".join(vector_stream(n))


# --- an in-test Kubo RPC server ---------------------------------------------
#
# Follows the documented Kubo RPC wire format for the endpoints the backend uses:
# POST only, multipart upload in field ``file``, newline-delimited JSON answers,
# HTTP 500 with {"Message", "Code", "Type"} on errors. Content lives in a real
# embedded store. ``faults`` injects misbehaviour per test.

import socket
import threading
import time as _time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ipfs.cid import parse_cid
from ipfs.embedded import EmbeddedStore
from ipfs.errors import ContentNotFound, InvalidCID
from ipfs.reader import BlockRef


class _Body:
    """The request body as a stream: Content-Length or chunked transfer encoding."""

    def __init__(self, rfile, headers) -> None:
        self.rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.remaining = int(headers.get("Content-Length") or 0)
        self.chunk_left = 0
        self.done = False
        self.chunked_seen = self.chunked

    def read(self, n: int) -> bytes:
        if self.done:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(n, self.remaining)) if self.remaining else b""
            self.remaining -= len(data)
            return data
        if self.chunk_left == 0:
            size_line = self.rfile.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline()
        return data


class _Part:
    """The first multipart part's content, streamed until the closing boundary."""

    def __init__(self, body: _Body, boundary: bytes) -> None:
        self.body = body
        self.delim = b"\r\n--" + boundary
        self.buf = b""
        self.eof = False
        self.field = None
        # headers of the first part
        while b"\r\n\r\n" not in self.buf:
            more = body.read(65536)
            if not more:
                raise ValueError("multipart body ends before the part's headers")
            self.buf += more
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if lines[0] != b"--" + boundary:
            raise ValueError("multipart body does not start with the boundary")
        for line in lines[1:]:
            if line.lower().startswith(b"content-disposition:") and b'name="' in line:
                self.field = line.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        self.bytes_read = 0
        self.eof = self.delim in self.buf

    def read(self, n: int = -1) -> bytes:
        want = 1 << 30 if n is None or n < 0 else n
        while not self.eof and len(self.buf) < want + len(self.delim):
            more = self.body.read(65536)
            if not more:
                raise ValueError("multipart body ends without its closing boundary")
            self.buf += more
            if self.delim in self.buf:
                self.eof = True
        if self.eof:
            idx = self.buf.find(self.delim)
            if idx >= 0:
                take = min(want, idx)  # the delimiter stays in buf: later reads return b""
                out, self.buf = self.buf[:take], self.buf[take:]
                self.bytes_read += len(out)
                return out
        out, self.buf = self.buf[:want], self.buf[want:]
        self.bytes_read += len(out)
        return out

    def drain(self) -> None:
        while self.body.read(65536):
            pass


class FakeKubo:
    """A Kubo RPC API on 127.0.0.1 backed by an embedded store, with fault injection."""

    def __init__(self, root) -> None:
        self.store = EmbeddedStore(root)
        self.faults: dict = {}
        self.calls: dict[str, int] = {}
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.multiaddr = f"/ip4/127.0.0.1/tcp/{self.port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                self._send(405, b"405 - Method Not Allowed\n", "text/plain")

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if not url.path.startswith("/api/v0/"):
                    self._send(404, b"404 page not found\n", "text/plain")
                    return
                cmd = url.path[len("/api/v0/") :]
                params = dict(urllib.parse.parse_qsl(url.query))
                fake.calls[cmd] = fake.calls.get(cmd, 0) + 1
                fake.requests.append({"cmd": cmd, "params": params, "headers": dict(self.headers)})
                body = _Body(self.rfile, self.headers)
                faults = fake.faults
                if faults.get("delay"):
                    _time.sleep(faults["delay"])
                if faults.get("fail_times", 0) > 0:
                    faults["fail_times"] -= 1
                    self._drain(body)
                    self._send(503, b"<html>upstream unavailable</html>", "text/html")
                    return
                if faults.get("garbage"):
                    self._drain(body)
                    self._send(200, b"<html><body>It works!</body></html>", "text/html")
                    return
                try:
                    handler = getattr(self, "_cmd_" + cmd.replace("/", "_"), None)
                    if handler is None:
                        self._drain(body)
                        self._error(f"unknown command \"{cmd}\"", code=1, status=404)
                        return
                    handler(params, body)
                except ContentNotFound as exc:
                    self._error(f"block was not found locally (offline): ipld: could not find {exc.cid}")
                except InvalidCID as exc:
                    self._error(f"invalid path {exc.value!r}: invalid cid")

            # -- endpoints -------------------------------------------------

            def _cmd_version(self, params, body) -> None:
                self._json({"Version": "0.32.1", "Commit": "", "Repo": "16", "System": "amd64/linux", "Golang": "go1.23"})

            def _cmd_add(self, params, body) -> None:
                ctype = self.headers.get("Content-Type", "")
                if "boundary=" not in ctype or not ctype.startswith("multipart/form-data"):
                    self._drain(body)
                    self._error("file argument 'path' is required", code=1, status=400)
                    return
                boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
                part = _Part(body, boundary)
                if part.field != "file":
                    part.drain()
                    self._error(f"unexpected multipart field {part.field!r}", code=1, status=400)
                    return
                only_hash = params.get("only-hash") == "true"
                cid = fake.store.put(part, only_hash=only_hash)
                size = part.bytes_read
                part.drain()
                if fake.faults.get("lie_add"):
                    cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
                lines = []
                if params.get("progress") == "true":
                    lines.append({"Name": "", "Bytes": size})
                lines.append({"Name": "data", "Hash": cid, "Size": str(size)})
                self._ndjson(lines)

            def _cmd_cat(self, params, body) -> None:
                self._drain(body)
                data = fake.store.get(self._cid(params))
                if fake.faults.get("lie_cat"):
                    data = bytes([data[0] ^ 1]) + data[1:] if data else b"x"
                self._send(200, data, "text/plain", extra={"X-Stream-Output": "1"})

            def _cmd_block_get(self, params, body) -> None:
                self._drain(body)
                ref = BlockRef.of(parse_cid(self._cid(params)))
                data = fake.store.read_block(ref)
                if fake.faults.get("lie_block"):
                    data = data[:-1] + bytes([data[-1] ^ 1])
                self._send(200, data, "text/plain")

            def _cmd_block_stat(self, params, body) -> None:
                self._drain(body)
                ref = BlockRef.of(parse_cid(self._cid(params)))
                data = fake.store.read_block(ref)
                self._json({"Key": str(ref), "Size": len(data)})

            def _cmd_block_put(self, params, body) -> None:
                boundary = self.headers.get("Content-Type", "").split("boundary=", 1)[1].encode()
                part = _Part(body, boundary)
                block = part.read()
                part.drain()
                import hashlib

                ref = BlockRef(params.get("cid-codec", "dag-pb"), hashlib.sha256(block).digest())
                fake.store.put_blocks(iter([(ref, block)]))
                self._json({"Key": str(ref), "Size": len(block)})

            def _cmd_pin_add(self, params, body) -> None:
                self._drain(body)
                cid = self._cid(params)
                fake.store.pin(cid)
                self._json({"Pins": [cid]})

            def _cmd_pin_rm(self, params, body) -> None:
                self._drain(body)
                cid = self._cid(params)
                if cid not in list(fake.store.list()):
                    self._error(f"{cid} is not pinned")
                    return
                fake.store.unpin(cid)
                self._json({"Pins": [cid]})

            def _cmd_pin_ls(self, params, body) -> None:
                self._drain(body)
                self._ndjson([{"Cid": c, "Type": "recursive"} for c in fake.store.list()] or [{"Keys": {}}])

            # -- wire helpers ------------------------------------------------

            def _cid(self, params) -> str:
                cid = params.get("arg", "")
                parse_cid(cid)
                return cid

            def _drain(self, body) -> None:
                while body.read(65536):
                    pass

            def _send(self, status: int, data: bytes, ctype: str, extra: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, obj) -> None:
                self._send(200, (json.dumps(obj) + "\n").encode(), "application/json")

            def _ndjson(self, objs) -> None:
                self._send(200, "".join(json.dumps(o) + "\n" for o in objs).encode(), "application/json",
                           extra={"X-Chunked-Output": "1"})

            def _error(self, message: str, code: int = 0, status: int = 500) -> None:
                payload = json.dumps({"Message": message, "Code": code, "Type": "error"}).encode()
                self._send(status, payload, "application/json")

        return Handler


def free_port() -> int:
    """A TCP port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
