"""An embedded store that reads what it lacks from other members' stores, and keeps it.

Each organisation keeps its own store. With a Kubo node per organisation in a private swarm,
Kubo moves the blocks (docs/store.md); without one, each member serves its embedded store
read-only (:mod:`ipfs.serve`, ``fedledger ipfs serve``) and lists the others as ``peers``.
Reads go to the own directory first; content that is not there is fetched from the peers in
the order given, each block re-hashed against its CID on arrival, and written and pinned
locally once the whole DAG has been read, so what a member has read it holds, and serves in
turn. Writes stay local: a member's update leaves its host only when another member asks
for it, which the round protocol allows only once submissions have closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from ipfs.cid import parse_cid
from ipfs.embedded import EmbeddedStore
from ipfs.errors import ContentNotFound, ContentTooLarge, MalformedDag, StoreError
from ipfs.reader import BlockRef, iter_file
from ipfs.store import ContentStore

PEER_CONNECT_TIMEOUT = 2.0  # a peer that does not answer this fast is passed over for this read


def open_peers(addresses: Sequence[str]) -> list[ContentStore]:
    """A reader for each peer address (a ``fedledger ipfs serve`` or a Kubo RPC API)."""
    from ipfs.kubo import KuboStore  # httpx is imported only when there are peers

    # offline: a Kubo peer answers from its own blocks at once instead of searching the network;
    # no retries: the next peer is tried instead, and the caller's own retry loop comes back later.
    return [KuboStore(a, connect_timeout=PEER_CONNECT_TIMEOUT, retries=0, offline=True) for a in addresses]


class PeeredStore(ContentStore):
    """``local`` for everything; ``peers`` for the content ``local`` does not hold yet."""

    def __init__(self, local: EmbeddedStore, peers: Sequence[ContentStore]) -> None:
        self.local = local
        self.peers = list(peers)
        self.location = f"{local.location} (and {len(self.peers)} peer{'s' if len(self.peers) != 1 else ''})"

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.local.close()

    # -- writing stays local ---------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview | BinaryIO, *, only_hash: bool = False) -> str:
        return self.local.put(data, only_hash=only_hash)

    def put_blocks(self, blocks: Iterable[tuple[BlockRef, bytes]], pin: Sequence[str] = ()) -> int:
        return self.local.put_blocks(blocks, pin=pin)

    def pin(self, cid: str) -> None:
        if not self.local.has(cid):
            self.fetch(cid)
        self.local.pin(cid)

    def unpin(self, cid: str) -> None:
        self.local.unpin(cid)

    def list(self) -> Iterator[str]:
        return self.local.list()

    def has(self, cid: str) -> bool:
        """Whether the root block is in the own directory (peers are not asked)."""
        return self.local.has(cid)

    # -- reading: local first, then the peers ------------------------------------

    def iter_bytes(self, cid: str, *, max_bytes: int | None = None) -> Iterator[memoryview]:
        parse_cid(cid)  # a malformed CID is refused before anyone is asked
        return self._iter(cid, max_bytes)

    def _iter(self, cid: str, max_bytes: int | None) -> Iterator[memoryview]:
        sent = 0
        try:
            for piece in self.local.iter_bytes(cid, max_bytes=max_bytes):
                sent += len(piece)
                yield piece
            return
        except ContentNotFound:
            pass  # not here, or only some of its blocks: the peers have the rest
        self.fetch(cid, max_bytes=max_bytes)
        skip = sent  # the same CID gives the same bytes: resume where the local read stopped
        for piece in self.local.iter_bytes(cid, max_bytes=max_bytes):
            if skip >= len(piece):
                skip -= len(piece)
                continue
            yield piece[skip:]
            skip = 0

    def read_block(self, ref: BlockRef, *, local_only: bool = False) -> bytes:
        try:
            return self.local.read_block(ref)
        except ContentNotFound:
            if local_only:
                raise
        failures = []
        for peer in self.peers:
            try:
                return peer.read_block(ref, local_only=True)
            except StoreError as exc:
                failures.append(f"{peer.location}: {exc}")
        raise ContentNotFound(str(ref), where=self.location, hint=_hint(failures))

    def fetch(self, cid: str, *, max_bytes: int | None = None) -> str:
        """Copy ``cid``'s whole DAG from the first peer that has all of it; returns where it came from.

        The walk is the bounded one every read uses (declared size against ``max_bytes``, depth,
        links, the caller's deadline), and every block is re-hashed before it is kept. A DAG
        that is malformed or too large is refused at once: it is the same at every peer. Held in
        memory until the walk ends (the federation's content is models, updates and manifests).
        """
        root = BlockRef.of(parse_cid(cid))
        failures = []
        for peer in self.peers:
            blocks: list[tuple[BlockRef, bytes]] = []

            def fetch_block(ref: BlockRef, peer: ContentStore = peer, blocks: list = blocks) -> bytes:
                data = peer.read_block(ref, local_only=True)
                blocks.append((ref, data))  # kept only if the whole walk verifies
                return data

            try:
                for _ in iter_file(root, fetch_block, peer.location, max_bytes=max_bytes):
                    pass
            except (MalformedDag, ContentTooLarge):
                raise
            except StoreError as exc:  # not there, corrupt, unreachable, not a store: try the next one
                failures.append(f"{peer.location}: {exc}")
                continue
            self.local.put_blocks(blocks, pin=(str(root),))
            return peer.location
        raise ContentNotFound(cid, where=self.location, hint=_hint(failures))


def _hint(failures: list[str]) -> str:
    if not failures:
        return "no peers are configured ([store] peers in the federation TOML)"
    return "no peer has it either: " + "; ".join(failures)
