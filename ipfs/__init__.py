"""The update store: content-addressed storage with CIDs identical to Kubo's ``ipfs add``.

``open_store()`` gives the embedded directory store by default, or a Kubo node over
its RPC API when one is named. Both return the CID ``ipfs add`` prints for the same
bytes, and both verify every byte they return against it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ipfs.cid import cid_to_digest, digest_to_cid, parse_cid
from ipfs.embedded import EmbeddedStore
from ipfs.errors import (
    ContentNotFound,
    ContentTooLarge,
    CorruptBlock,
    InvalidCID,
    MalformedDag,
    StoreError,
    StoreMisconfigured,
    StoreNotWritable,
    StoreUnavailable,
)
from ipfs.store import ContentStore

__all__ = [
    "ContentNotFound",
    "ContentStore",
    "ContentTooLarge",
    "CorruptBlock",
    "EmbeddedStore",
    "InvalidCID",
    "MalformedDag",
    "StoreError",
    "StoreMisconfigured",
    "StoreNotWritable",
    "StoreUnavailable",
    "cid_to_digest",
    "content_cid",
    "default_store_dir",
    "digest_to_cid",
    "open_store",
    "parse_cid",
]

STORE_ENV = "FEDLEDGER_STORE"
API_ENV = "IPFS_API"


def content_cid(data: bytes) -> str:
    """The CID ``ipfs add`` gives ``data``, computed without storing it (``ipfs add -n``)."""
    from ipfs.builder import build

    return build(data)[0]


def default_store_dir() -> Path:
    """Where the embedded store lives when nothing names one (XDG data directory)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "fedledger" / "store"


def open_store(store: str | Path | None = None, api: str | None = None, peers: Sequence[str] = ()) -> ContentStore:
    """The store to use: explicit arguments first, then the environment, then the default.

    Order: ``api`` → Kubo at that address; ``store`` → embedded store in that
    directory; ``$FEDLEDGER_STORE`` → embedded; ``$IPFS_API`` → Kubo; otherwise the
    embedded store in :func:`default_store_dir`. ``peers`` (addresses of other members'
    ``fedledger ipfs serve`` or Kubo RPC APIs) make an embedded store read what it lacks
    from them (:class:`ipfs.peered.PeeredStore`); a Kubo node has its swarm for that.
    """
    if store is not None and api is not None:
        raise StoreError(
            "both a store directory and an IPFS API address were given",
            hint="pass either --store DIR (embedded) or --ipfs-api ADDR (Kubo), not both",
        )
    peers = list(peers or ())
    if api is not None or (store is None and not os.environ.get(STORE_ENV) and os.environ.get(API_ENV)):
        if peers:
            raise StoreMisconfigured(
                api or os.environ.get(API_ENV, ""),
                "peers are for an embedded store; a Kubo node reads from its swarm",
                hint="drop [store] peers, or use [store] dir instead of ipfs_api",
            )
        return _kubo(api or os.environ[API_ENV])
    local = EmbeddedStore(store if store is not None else os.environ.get(STORE_ENV) or default_store_dir())
    if not peers:
        return local
    from ipfs.peered import PeeredStore, open_peers

    return PeeredStore(local, open_peers(peers))


def _kubo(api: str) -> ContentStore:
    from ipfs.kubo import KuboStore  # httpx is only imported when a node is used

    return KuboStore(api)
