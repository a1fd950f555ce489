"""Whether a Kubo repository is set up as a member's node of a private swarm (docs/store.md).

A federation's updates must reach the other members only: a node that joins the public
network, bootstraps from it, or announces the CIDs it holds to a DHT tells outsiders which
updates exist and where to fetch them. This reads the repository's files (``config`` and
``swarm.key``; the daemon need not run) and names every setting that would let that happen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipfs.errors import StoreError

_SWARM_KEY = re.compile(r"\A/key/swarm/psk/1\.0\.0/\r?\n/base16/\r?\n[0-9a-fA-F]{64}\s*\Z")
ROUTING_OK = ("none", "dhtclient")  # no routing at all, or a DHT only among the swarm's members (never a server)
LOOPBACK = ("/ip4/127.", "/ip6/::1/")


@dataclass(frozen=True)
class Finding:
    setting: str
    ok: bool
    detail: str


def check_repo(repo: str | Path) -> list[Finding]:
    """One finding per setting a member's private node needs; StoreError if ``repo`` is no Kubo repository."""
    root = Path(repo).expanduser()
    try:
        config = json.loads((root / "config").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{root} is not a Kubo repository: it has no config file", hint="pass --repo $IPFS_PATH (run `ipfs init` first)") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {root / 'config'}: {exc}") from None
    if not isinstance(config, dict):
        raise StoreError(f"{root / 'config'} is not a Kubo config (not a JSON object)")
    return [_swarm_key(root), _bootstrap(config), _routing(config), _provide(config), _autoconf(config), _api(config), _peering(config)]


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _swarm_key(root: Path) -> Finding:
    path = root / "swarm.key"
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return Finding("swarm.key", False, "missing: without the consortium's key the node joins the public network")
    except (OSError, UnicodeDecodeError) as exc:
        return Finding("swarm.key", False, f"unreadable: {exc}")
    if not _SWARM_KEY.match(text):
        return Finding("swarm.key", False, "not a pre-shared key file (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)")
    if path.stat().st_mode & 0o077:
        return Finding("swarm.key", False, f"readable by other users (mode {path.stat().st_mode & 0o777:o}): chmod 600 it")
    return Finding("swarm.key", True, "a pre-shared key: only nodes holding it can connect")


def _bootstrap(config: dict[str, Any]) -> Finding:
    peers = _get(config, "Bootstrap")
    if peers:
        return Finding("Bootstrap", False, f"{len(peers)} entr{'y' if len(peers) == 1 else 'ies'} ({', '.join(map(str, peers[:2]))}…): run `ipfs bootstrap rm --all`")
    return Finding("Bootstrap", True, "empty: no public bootstrap peers")


def _routing(config: dict[str, Any]) -> Finding:
    kind = _get(config, "Routing.Type")
    if kind not in ROUTING_OK:
        shown = "unset (auto: the public DHT and HTTP routers)" if kind in (None, "") else repr(kind)
        return Finding("Routing.Type", False, f"{shown}: set it to \"none\" (or \"dhtclient\")")
    return Finding("Routing.Type", True, repr(kind))


def _provide(config: dict[str, Any]) -> Finding:
    off = (
        _get(config, "Provide.Enabled") is False
        or _get(config, "Provide.DHT.Interval") == "0"
        or _get(config, "Reprovider.Interval") == "0"  # Kubo before 0.38
    )
    if not off:
        return Finding("Provide.Enabled", False, "announcing is on: set Provide.Enabled to false (before Kubo 0.38: Reprovider.Interval \"0\")")
    return Finding("Provide.Enabled", True, "off: the node announces no CID")


def _autoconf(config: dict[str, Any]) -> Finding:
    if _get(config, "AutoConf.Enabled") is not False:
        return Finding("AutoConf.Enabled", False, "not false: \"auto\" entries would be filled with the public network's peers and routers")
    return Finding("AutoConf.Enabled", True, "false")


def _api(config: dict[str, Any]) -> Finding:
    api = _get(config, "Addresses.API")
    addresses = [api] if isinstance(api, str) else list(api or [])
    exposed = [a for a in addresses if not str(a).startswith(LOOPBACK) and not str(a).startswith("/unix/")]
    if exposed:
        return Finding("Addresses.API", False, f"{', '.join(exposed)}: the RPC API is the node's admin interface; keep it on loopback")
    return Finding("Addresses.API", True, ", ".join(addresses) or "unset (loopback)")


def _peering(config: dict[str, Any]) -> Finding:
    peers = _get(config, "Peering.Peers") or []
    if not peers:
        return Finding("Peering.Peers", False, "empty: with no routing, the node finds content only at the members it keeps connected")
    return Finding("Peering.Peers", True, f"{len(peers)} member node(s)")
