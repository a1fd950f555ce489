"""HTTP for sharing: time- and size-bounded answers, credentials only over TLS or loopback."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from fedledger.intel.errors import IntelError, ShareRejected, ShareUnavailable

MAX_ANSWER_BYTES = 16 << 20


def check_url(url: str, what: str) -> None:
    """Refuse a URL that would send credentials in clear to another host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IntelError(f"{what} URL {url!r} is not an http(s) URL", hint="e.g. https://taxii.example.org/api1/")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise IntelError(f"{what} URL {url} is plain HTTP to another host: the credentials would travel in clear",
                         hint="use https:// (plain http is accepted only on loopback)")  # fmt: skip


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BoundedAdapter(HTTPAdapter):
    """Every request gets a timeout, and an answer's body is read only up to ``max_bytes`` and
    only until ``timeout`` has passed since the request was sent (a slow drip cannot hold it)."""

    def __init__(self, *, timeout: float, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__(max_retries=0)
        self.timeout = timeout
        self.max_bytes = max_bytes

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kw: Any) -> requests.Response:
        until = time.monotonic() + self.timeout
        resp = super().send(request, stream=True, timeout=timeout or self.timeout, **kw)
        resp.raw = _LimitedBody(resp.raw, self.max_bytes, until, str(request.url))
        if not stream:
            resp.content  # noqa: B018 - read the body now, within the limits
        return resp


class _LimitedBody:
    """An answer's raw body that stops at a size and a point in time."""

    def __init__(self, raw: Any, limit: int, until: float, url: str) -> None:
        self._raw = raw
        self._limit = limit
        self._until = until
        self._url = url

    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Iterator[bytes]:
        total = 0
        for piece in self._raw.stream(amt, decode_content=decode_content):
            total += len(piece)
            if total > self._limit:
                raise ShareRejected(f"{self._url} answered more than {self._limit:,} bytes",
                                    hint="this is not the sharing server expected")  # fmt: skip
            if time.monotonic() > self._until:
                raise ShareUnavailable(f"{self._url} did not finish answering in time",
                                       hint="the server is overloaded or not the one expected; try again later")  # fmt: skip
            yield piece

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def bound(session: requests.Session, *, timeout: float, max_bytes: int = MAX_ANSWER_BYTES) -> requests.Session:
    """``session`` with every answer bounded in time and size, and no proxy taken from the
    environment (the URL given is the one dialled)."""
    adapter = BoundedAdapter(timeout=timeout, max_bytes=max_bytes)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session
