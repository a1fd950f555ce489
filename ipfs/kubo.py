"""A Kubo node as the content store, spoken to over its RPC API (``/api/v0``).

Why not ipfshttpclient: its last release (0.7.0, 2021) raises VersionMismatch for
every Kubo from 0.8 on, and it is unmaintained. The handful of endpoints needed
here are plain HTTP POSTs, done with httpx.

Nothing the daemon says is trusted: ``put`` computes the CID locally while it
streams the upload and refuses a different answer; ``get`` re-derives the CID from
the bytes ``/cat`` returns and, if that fails (another chunking profile, or a lying
daemon), walks the DAG block by block with ``/block/get``, re-hashing each block.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import httpx

from faults import remaining, retrying
from ipfs.builder import CHUNK_SIZE, DagBuilder, iter_chunks
from ipfs.cid import parse_cid
from ipfs.errors import (
    ContentNotFound,
    CorruptBlock,
    InvalidCID,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
)
from ipfs.reader import PB_CODEC, BlockRef, iter_file, verify_block
from ipfs.store import ContentStore

DEFAULT_API = "/ip4/127.0.0.1/tcp/5001"

# The ``ipfs add`` profile, stated explicitly so a node whose Import.* config
# differs still builds the DAG the ledger expects (a mismatch is caught anyway).
ADD_PARAMS = {
    "cid-version": "0",
    "chunker": f"size-{CHUNK_SIZE}",
    "raw-leaves": "false",
    "hash": "sha2-256",
    "trickle": "false",
    "pin": "true",
    "quieter": "true",
    "progress": "false",
}

_NOT_FOUND_MARKERS = ("not found", "could not find", "no link named", "does not exist", "not present")
_BAD_CID_MARKERS = ("invalid cid", "invalid path", "failed to parse", "selected encoding not supported")
MAX_BLOCK = 4 << 20


def api_url(address: str) -> str:
    """Base URL for a Kubo API given as a multiaddr, a URL or host:port.

    Multiaddrs are parsed here: ``multiformats.multiaddr`` has no dns/dns4/dns6,
    and only the ``/<host proto>/<host>/tcp/<port>[/http|/https]`` shape is an
    API address anyway.
    """
    text = (address or "").strip()
    if not text:
        raise StoreMisconfigured(repr(address), "no API address given")
    if text.startswith("/"):
        parts = text.strip("/").split("/")
        if len(parts) < 4 or parts[2] != "tcp":
            raise StoreMisconfigured(text, "not an API multiaddr (expected /ip4/HOST/tcp/PORT)")
        proto, host, _tcp, port = parts[:4]
        rest = parts[4:]
        if proto == "ip6":
            host = f"[{host}]"
        elif proto not in ("ip4", "dns", "dns4", "dns6"):
            raise StoreMisconfigured(text, f"unsupported host protocol /{proto} (use ip4, ip6 or dns)")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise StoreMisconfigured(text, f"port {port!r} is not a TCP port")
        scheme = "http"
        if rest in (["https"], ["tls", "http"]):
            scheme = "https"
        elif rest not in ([], ["http"]):
            raise StoreMisconfigured(text, f"unsupported multiaddr suffix /{'/'.join(rest)}")
        return f"{scheme}://{host}:{port}"
    if "://" not in text:
        text = "http://" + text
    try:
        url = httpx.URL(text)
    except Exception as exc:
        raise StoreMisconfigured(address, f"not a URL or multiaddr: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise StoreMisconfigured(address, "not an http(s) URL or a multiaddr")
    path = url.path.rstrip("/")
    if path.endswith("/api/v0"):
        path = path[: -len("/api/v0")]
    return str(url.copy_with(path=path or "", query=None, fragment=None)).rstrip("/")


class KuboStore(ContentStore):
    """The content store behind a Kubo node's RPC API."""

    def __init__(
        self,
        api: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.25,
        offline: bool = False,
    ) -> None:
        """``api``: multiaddr or URL (default: $IPFS_API, then /ip4/127.0.0.1/tcp/5001).

        ``retries`` more attempts are made, after ``backoff`` × 2ⁿ seconds, when the
        node cannot be reached, times out, or answers 5xx without a Kubo error body.
        ``offline`` asks the node not to search the network for missing content.
        """
        self.address = api or os.environ.get("IPFS_API") or DEFAULT_API
        self.url = api_url(self.address)
        self.location = f"Kubo at {self.url}"
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.offline = offline
        self._client = httpx.Client(
            base_url=self.url + "/api/v0",
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            trust_env=False,  # an HTTP proxy in the environment must not intercept a local node
        )

    def close(self) -> None:
        self._client.close()

    # -- transport ---------------------------------------------------------

    def _request(
        self,
        endpoint: str,
        params: dict[str, str] | list[tuple[str, str]],
        *,
        body: Callable[[], tuple[Iterable[bytes], dict[str, str]]] | None = None,
        replayable: bool = True,
        stream: bool = False,
        cid: str | None = None,
    ) -> httpx.Response:
        """POST to ``/api/v0/<endpoint>``; map every failure to a typed error.

        Transient failures (unreachable, timed out, 5xx without a Kubo error body) are
        retried with jittered backoff, ``retries`` more times at most; every attempt's
        timeout is cut to what the caller's :func:`faults.deadline` leaves.
        """
        attempts = (self.retries + 1) if replayable else 1
        tries = 0
        for attempt in retrying(attempts=attempts, initial=self.backoff, maximum=4 * self.backoff + 1.0):
            with attempt:
                tries += 1
                return self._send_once(endpoint, params, body, stream, cid, tries)
        raise AssertionError("unreachable")  # pragma: no cover - retrying re-raises the last error

    def _send_once(
        self,
        endpoint: str,
        params: dict[str, str] | list[tuple[str, str]],
        body: Callable[[], tuple[Iterable[bytes], dict[str, str]]] | None,
        stream: bool,
        cid: str | None,
        tries: int,
    ) -> httpx.Response:
        content, headers = body() if body is not None else (None, {})
        read = remaining(self.timeout)
        if read <= 0:
            raise StoreUnavailable(self.url, f"no time left for /api/v0/{endpoint} (the caller's deadline passed)")
        timeout = httpx.Timeout(read, connect=min(self.connect_timeout, read))
        try:
            request = self._client.build_request(
                "POST", "/" + endpoint, params=params, content=content, headers=headers, timeout=timeout
            )
            response = self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            failure = f"did not answer /api/v0/{endpoint} in time ({type(exc).__name__})"
        except httpx.TransportError as exc:
            failure = f"cannot be reached for /api/v0/{endpoint}: {exc or type(exc).__name__}"
        else:
            if response.status_code < 300:
                return response
            failure = self._failure(endpoint, response, cid)  # raises when the answer is definitive
        raise StoreUnavailable(self.url, failure + (f" (after {tries} attempts)" if tries > 1 else ""))

    def _failure(self, endpoint: str, response: httpx.Response, cid: str | None) -> str:
        """Raise for a definitive Kubo error; return a description of a retryable one."""
        raw = response.read()
        response.close()
        message = None
        try:
            payload = json.loads(raw)
            if isinstance(payload, dict) and isinstance(payload.get("Message"), str):
                message = payload["Message"]
        except ValueError:
            pass
        status = response.status_code
        if message is not None:
            lowered = message.lower()
            if cid is not None and any(m in lowered for m in _NOT_FOUND_MARKERS):
                raise ContentNotFound(cid, where=self.location)
            if cid is not None and any(m in lowered for m in _BAD_CID_MARKERS):
                raise InvalidCID(cid, f"{self.location} says: {message}")
            if status < 500 or "context deadline" not in lowered:
                raise StoreError(f"{self.location} refused /api/v0/{endpoint}: {message}")
            return f"timed out inside the node on /api/v0/{endpoint}: {message}"
        if status in (404, 405):
            raise StoreMisconfigured(
                self.url,
                f"answered /api/v0/{endpoint} with HTTP {status}; this is not a Kubo RPC API",
                hint="point --ipfs-api at the node's API port (5001 by default), not its gateway (8080)",
            )
        detail = f"answered /api/v0/{endpoint} with HTTP {status} and no Kubo error body: {_snippet(raw)}"
        if status >= 500 or status == 429:
            return detail
        raise StoreMisconfigured(self.url, detail)

    def _json_lines(self, endpoint: str, response: httpx.Response) -> list[dict[str, Any]]:
        try:
            raw = response.read()
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.url, f"broke off its answer to /api/v0/{endpoint}: {exc}") from None
        objects = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise StoreMisconfigured(
                    self.url, f"answered /api/v0/{endpoint} with something that is not Kubo's JSON: {_snippet(raw)}"
                ) from None
            if not isinstance(obj, dict):
                raise StoreMisconfigured(self.url, f"answered /api/v0/{endpoint} with unexpected JSON: {_snippet(raw)}")
            if obj.get("Type") == "error" and "Message" in obj:
                raise StoreError(f"{self.location} failed /api/v0/{endpoint}: {obj['Message']}")
            objects.append(obj)
        if not objects:
            raise StoreMisconfigured(self.url, f"answered /api/v0/{endpoint} with an empty body")
        return objects

    def _params(self, **params: str) -> dict[str, str]:
        if self.offline:
            params["offline"] = "true"
        return params

    # -- ContentStore --------------------------------------------------------

    def version(self) -> str:
        """The node's Kubo version (also a cheap check that the address is a Kubo API)."""
        response = self._request("version", {})
        obj = self._json_lines("version", response)[-1]
        if not isinstance(obj.get("Version"), str):
            raise StoreMisconfigured(self.url, f"answered /api/v0/version without a Version: {obj!r:.120}")
        return obj["Version"]

    def put(self, data: bytes | bytearray | memoryview | BinaryIO, *, only_hash: bool = False) -> str:
        # The CID is computed here either way; with only_hash the node is not needed.
        if only_hash:
            builder = DagBuilder()
            for chunk in iter_chunks(data):
                builder.add_chunk(chunk)
            return str(BlockRef(PB_CODEC, builder.finish().multihash[2:]))
        boundary = "fedledger-" + secrets.token_hex(12)
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="data"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        length, rewind = _length_and_rewind(data)
        state: dict[str, DagBuilder] = {}

        def body() -> tuple[Iterable[bytes], dict[str, str]]:
            rewind()
            builder = state["builder"] = DagBuilder()

            def parts() -> Iterator[bytes]:
                yield head
                for chunk in iter_chunks(data):
                    builder.add_chunk(chunk)
                    yield bytes(chunk) if isinstance(chunk, memoryview) else chunk
                yield tail

            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            if length is not None:
                headers["Content-Length"] = str(len(head) + length + len(tail))
            return parts(), headers

        response = self._request("add", ADD_PARAMS, body=body, replayable=length is not None)
        results = [obj for obj in self._json_lines("add", response) if "Hash" in obj]
        if not results:
            raise StoreMisconfigured(self.url, "answered /api/v0/add without a Hash")
        returned = results[-1]["Hash"]
        expected = str(BlockRef(PB_CODEC, state["builder"].finish().multihash[2:]))
        if returned != expected:
            raise StoreError(
                f"{self.location} returned CID {returned} for content whose CID is {expected}",
                hint="the node's add settings differ from Kubo's defaults (Import.* config) or the node is faulty",
            )
        return expected

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        ref = BlockRef.of(parse_cid(cid))
        response = self._request("cat", self._params(arg=cid), cid=cid, stream=True)
        try:
            buf = bytearray()
            for piece in response.iter_bytes():
                buf += piece
                if max_bytes is not None and len(buf) > max_bytes:
                    break  # more than the caller accepts: the block walk below names the size it declares
            data = bytes(buf)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.url, f"broke off /api/v0/cat of {cid}: {exc}") from None
        finally:
            response.close()
        if ref.codec == PB_CODEC:
            builder = DagBuilder()
            for chunk in iter_chunks(data):
                builder.add_chunk(chunk)
            if builder.finish().multihash[2:] == ref.digest:
                return data
        # Not the bytes of this CID under the add profile: either the content was
        # added with other settings, or the node lies. Walking the blocks decides.
        return b"".join(self.iter_bytes(cid, max_bytes=max_bytes))

    def iter_bytes(self, cid: str, *, max_bytes: int | None = None) -> Iterator[memoryview]:
        root = BlockRef.of(parse_cid(cid))
        return iter_file(root, self._fetch_for(str(root)), self.location, max_bytes=max_bytes)

    def _fetch_for(self, root: str) -> Callable[[BlockRef], bytes]:
        def fetch(ref: BlockRef) -> bytes:
            return self._block_get(ref, root)

        return fetch

    def _block_get(self, ref: BlockRef, root: str | None = None, local_only: bool = False) -> bytes:
        cid = str(ref)
        params = self._params(arg=cid)
        if local_only:
            params["offline"] = "true"
        try:
            response = self._request("block/get", params, cid=cid)
        except ContentNotFound:
            if root is None or root == cid:
                raise
            raise ContentNotFound(cid, where=self.location, hint=f"a block of {root} is missing on the node") from None
        try:
            data = response.read()
        except httpx.HTTPError as exc:
            raise StoreUnavailable(self.url, f"broke off /api/v0/block/get of {cid}: {exc}") from None
        if len(data) > MAX_BLOCK:
            raise CorruptBlock(cid, f"the node sent {len(data)} bytes, more than any block", where=self.location)
        return data

    def read_block(self, ref: BlockRef, *, local_only: bool = False) -> bytes:
        return self._block_get(ref, local_only=local_only)

    def put_blocks(self, blocks: Iterable[tuple[BlockRef, bytes]]) -> int:
        """Put verified blocks one by one with /block/put, checking each returned CID."""
        count = 0
        for ref, block in blocks:
            verify_block(ref, block, "the blocks to put")
            boundary = "fedledger-" + secrets.token_hex(12)
            payload = (
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"block\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode() + block + f"\r\n--{boundary}--\r\n".encode()
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            response = self._request(
                "block/put",
                {"cid-codec": ref.codec, "mhtype": "sha2-256", "mhlen": "32"},
                body=lambda p=payload, h=headers: ([p], h),
            )
            obj = self._json_lines("block/put", response)[-1]
            try:
                returned = BlockRef.of(parse_cid(str(obj.get("Key", ""))))
            except InvalidCID:
                raise StoreMisconfigured(self.url, f"answered /api/v0/block/put with no usable Key: {obj!r:.120}") from None
            if returned.digest != ref.digest:
                raise StoreError(f"{self.location} stored block {ref} under {returned}; refusing to trust it")
            count += 1
        return count

    def has(self, cid: str) -> bool:
        parse_cid(cid)
        try:
            self._request("block/stat", {"arg": cid, "offline": "true"}, cid=cid).close()
        except ContentNotFound:
            return False
        return True

    def pin(self, cid: str) -> None:
        parse_cid(cid)
        self._json_lines("pin/add", self._request("pin/add", self._params(arg=cid), cid=cid))

    def unpin(self, cid: str) -> None:
        parse_cid(cid)
        try:
            self._json_lines("pin/rm", self._request("pin/rm", {"arg": cid}, cid=cid))
        except ContentNotFound:
            raise StoreError(f"{cid} is not pinned in {self.location}") from None

    def list(self) -> Iterator[str]:
        objects = self._json_lines("pin/ls", self._request("pin/ls", {"type": "recursive", "stream": "true"}))
        cids: list[str] = []
        for obj in objects:
            if "Cid" in obj:  # streaming form, one pin per line
                cids.append(str(obj["Cid"]))
            elif isinstance(obj.get("Keys"), dict):  # older, non-streaming form
                cids.extend(str(k) for k in obj["Keys"])
        return iter(sorted(cids))


def _length_and_rewind(data: object) -> tuple[int | None, Callable[[], None]]:
    """Body length if known, and how to restart the body for a retry."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).nbytes, lambda: None
    try:
        start = data.tell()  # type: ignore[attr-defined]
        end = data.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
        data.seek(start)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        # A pipe or socket: stream it chunked; it cannot be replayed, so no retry
        # once the upload has begun.
        first = [True]

        def once() -> None:
            if not first[0]:
                raise StoreError("a non-seekable stream cannot be uploaded twice")
            first[0] = False

        return None, once
    return end - start, lambda: data.seek(start)  # type: ignore[attr-defined]


def _snippet(raw: bytes) -> str:
    text = raw[:120].decode("utf-8", "replace").replace("\n", "\\n")
    return repr(text + ("…" if len(raw) > 120 else ""))
