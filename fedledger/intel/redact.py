"""What leaves the organisation: public addresses as they are, internal ones dropped or pseudonymised.

Internal means RFC 1918 (10/8, 172.16/12, 192.168/16) plus every ``--internal CIDR``.
An internal address is dropped (the default) or replaced by a pseudonym,
``h-`` + the first 32 hex digits of HMAC-SHA256(key, the address's packed bytes): the same
host always gets the same pseudonym under one key, so a recipient can tell hosts apart
and correlate sightings without learning the address; without the key it cannot be
reversed. ``--keep-internal`` shares internal addresses as they are. A value that is
not an IP address is never shared.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fedledger.intel.errors import IntelError

RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
Mode = Literal["drop", "pseudonymise", "keep"]
_CACHE_SIZE = 1 << 16


@dataclass(frozen=True)
class SharedAddress:
    """An endpoint as it is shared: an IP address, or a pseudonym of an internal one."""

    value: str
    version: int  # 4 or 6
    pseudonym: bool = False


class Redactor:
    def __init__(self, internal: Iterable[str] = (), *, mode: Mode = "drop", key: bytes | None = None) -> None:
        if mode not in ("drop", "pseudonymise", "keep"):
            raise IntelError(f"unknown redaction mode {mode!r}")
        if mode == "pseudonymise" and not key:
            raise IntelError("pseudonymising needs a key", hint="pass --pseudonymise KEYFILE")
        nets = []
        for cidr in (*RFC1918, *internal):
            try:
                nets.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise IntelError(f"--internal {cidr!r} is not a CIDR range", hint="e.g. --internal 100.64.0.0/10") from None
        self.networks = tuple(nets)
        self.mode = mode
        self._key = key
        self._cache: dict[str | None, SharedAddress | None] = {}

    def is_internal(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)

    def shared(self, address: str | None) -> SharedAddress | None:
        """The shared form of ``address``, or None when nothing of it is shared."""
        if address in self._cache:
            return self._cache[address]
        out = self._shared(address)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[address] = out
        return out

    def _shared(self, address: str | None) -> SharedAddress | None:
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return None
        if self.mode == "keep" or not self.is_internal(ip):
            return SharedAddress(ip.compressed, ip.version)
        if self.mode == "drop":
            return None
        digest = hmac.new(self._key or b"", ip.packed, hashlib.sha256).hexdigest()
        return SharedAddress("h-" + digest[:32], ip.version, pseudonym=True)
