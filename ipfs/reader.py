"""Walking a UnixFS file DAG from its root, every block re-hashed before it is trusted.

Blocks are named here by a light (codec, digest) pair: ``multiformats.CID`` runs
runtime type validation on every construction, which cost more than the hashing
itself when decoding 174 links per node. CIDs are built only for messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from multiformats import CID, multihash

from faults import current_deadline
from ipfs.cid import SHA2_256_PREFIX, cidv0_from_multihash
from ipfs.errors import ContentTooLarge, CorruptBlock, MalformedDag, StoreError
from ipfs.unixfs import TYPE_FILE, TYPE_RAW, ProtobufError, decode_node

MAX_LINKS = 174  # Kubo's balanced layout never puts more links in a node
# Deeper than any real file (174**6 chunks is ~6 PB); bounds hostile DAGs.
MAX_DEPTH = 16

RAW_CODEC = "raw"
PB_CODEC = "dag-pb"


class BlockRef(NamedTuple):
    codec: str  # "dag-pb" or "raw"
    digest: bytes  # sha2-256, 32 bytes

    @classmethod
    def of(cls, cid: CID) -> BlockRef:
        return cls(cid.codec.name, bytes(cid.raw_digest))

    @classmethod
    def from_link(cls, raw: bytes) -> BlockRef:
        """Decode a link's binary CID (a bare multihash for CIDv0)."""
        if len(raw) == 34 and raw[:2] == SHA2_256_PREFIX:
            return cls(PB_CODEC, raw[2:])
        cid = CID.decode(raw)  # CIDv1 children (e.g. raw leaves added elsewhere)
        if cid.hashfun.name != "sha2-256" or cid.codec.name not in (PB_CODEC, RAW_CODEC):
            raise ValueError(f"child {cid} uses {cid.hashfun.name}/{cid.codec.name}; only sha2-256 dag-pb or raw is verified here")
        return cls.of(cid)

    @property
    def multihash(self) -> bytes:
        return SHA2_256_PREFIX + self.digest

    def __str__(self) -> str:
        if self.codec == PB_CODEC:
            return cidv0_from_multihash(self.multihash)
        return str(CID("base32", 1, self.codec, multihash.wrap(self.digest, "sha2-256")))


class BlockFetcher(Protocol):
    def __call__(self, ref: BlockRef) -> bytes: ...


def verify_block(ref: BlockRef, block: bytes | memoryview, where: str) -> None:
    """Refuse a block whose sha2-256 is not the one its CID names."""
    actual = hashlib.sha256(block).digest()
    if actual != ref.digest:
        raise CorruptBlock(
            str(ref),
            f"its {len(block)} bytes hash to {cidv0_from_multihash(SHA2_256_PREFIX + actual)}",
            where=where,
        )


def iter_file(
    root: BlockRef,
    fetch: BlockFetcher,
    where: str,
    prefetch: Callable[[list[BlockRef]], None] | None = None,
    *,
    max_bytes: int | None = None,
    max_blocks: int | None = None,
) -> Iterator[memoryview]:
    """Yield the file bytes under ``root`` in order; every block is re-hashed first.

    ``fetch`` returns a block's raw bytes (or raises ContentNotFound); nothing it
    returns is trusted until it hashes to the CID that named it. ``prefetch``, if
    given, is told which blocks come next so the backend can start reading them.

    The walk is bounded whatever the DAG claims: a file whose root declares more than
    ``max_bytes`` is refused before anything else is read; a node with more than 174
    links, a link whose declared size is 0 or disagrees with its child, a block holding
    fewer than 4 KiB of file data anywhere but at the file's end, and more blocks than
    ``max_blocks`` (default: what the declared size needs at 4 KiB a leaf) are refused as
    :class:`MalformedDag`; and the caller's :func:`faults.deadline` is checked at every
    block.
    """
    walk = _Walk(fetch, where, prefetch, max_bytes, max_blocks)
    yield from walk.node(root, 0, None)


PREFETCH_WINDOW = 8
# Every block that carries file data holds at least this much of it, but the file's last (Kubo's leaves
# hold 256 KiB). Without it, one-byte leaves under a 174-way fan-out make a walk of 174**depth blocks that
# every size check passes, and the default block budget below rests on it.
MIN_LEAF_FOR_BUDGET = 4096


class _Walk:
    def __init__(
        self,
        fetch: BlockFetcher,
        where: str,
        prefetch: Callable[[list[BlockRef]], None] | None,
        max_bytes: int | None,
        max_blocks: int | None,
    ) -> None:
        self.fetch, self.where, self.prefetch = fetch, where, prefetch
        self.max_bytes, self.max_blocks = max_bytes, max_blocks
        self.blocks = 0
        self.deadline = current_deadline()
        self.total: int | None = None  # what the root declares
        self.offset = 0  # file bytes yielded so far

    def _data(self, ref: BlockRef, data: memoryview) -> memoryview:
        """A block's file data, refused when it is short of a full leaf anywhere but at the file's end."""
        end = self.offset + len(data)
        if len(data) < MIN_LEAF_FOR_BUDGET and self.total is not None and end < self.total:
            raise MalformedDag(
                str(ref), f"a leaf holds only {len(data)} of the file's {self.total:,} bytes, at offset {self.offset:,}; leaves before "
                f"the end of a file hold at least {MIN_LEAF_FOR_BUDGET} bytes", where=self.where,
            )  # fmt: skip
        self.offset = end
        return data

    def _visit(self, ref: BlockRef) -> bytes:
        self.blocks += 1
        if self.max_blocks is not None and self.blocks > self.max_blocks:
            raise MalformedDag(str(ref), f"the DAG has more than {self.max_blocks:,} blocks for the size it declares", where=self.where)
        if self.deadline is not None:
            self.deadline.check(f"reading {ref} from {self.where}")
        block = self.fetch(ref)
        verify_block(ref, block, self.where)
        return block

    def node(self, ref: BlockRef, depth: int, expect: int | None) -> Iterator[memoryview]:
        if depth > MAX_DEPTH:
            raise MalformedDag(str(ref), f"the DAG is deeper than {MAX_DEPTH} layers", where=self.where)
        block = self._visit(ref)
        where = self.where
        if ref.codec == RAW_CODEC:
            if expect is not None and expect != len(block):
                raise MalformedDag(str(ref), f"parent says {expect} bytes, raw block holds {len(block)}", where=where)
            if depth == 0:
                self._check_size(ref, len(block))
            yield self._data(ref, memoryview(block))
            return
        try:
            node = decode_node(block)
        except ProtobufError as exc:
            raise StoreError(
                f"block {ref} in {where} is not a UnixFS file node: {exc}",
                hint="the CID names something other than a file added with `ipfs add` (a directory or raw DAG)",
            ) from None
        if node.unixfs_type not in (TYPE_FILE, TYPE_RAW):
            raise StoreError(
                f"{ref} in {where} is a UnixFS node of type {node.unixfs_type}, not a file",
                hint="only files can be read; a directory CID needs `ipfs cat <dir>/<name>`",
            )
        if len(node.links) > MAX_LINKS:
            raise MalformedDag(str(ref), f"a node has {len(node.links)} links, more than the {MAX_LINKS} of the profile", where=where)
        if node.links and len(node.blocksizes) != len(node.links):
            raise MalformedDag(str(ref), f"{len(node.links)} links but {len(node.blocksizes)} block sizes", where=where)
        if any(size == 0 for size in node.blocksizes):
            raise MalformedDag(str(ref), "a link declares a child of 0 bytes", where=where)
        total = len(node.data) + sum(node.blocksizes)
        if node.file_size is not None and node.file_size != total:
            raise MalformedDag(str(ref), f"says {node.file_size} bytes but its parts add up to {total}", where=where)
        if expect is not None and expect != total:
            raise MalformedDag(str(ref), f"parent says {expect} bytes, node holds {total}", where=where)
        if depth == 0:
            self._check_size(ref, total)
        if len(node.data):
            yield self._data(ref, node.data)
        if not node.links:
            return
        try:
            children = [BlockRef.from_link(link.hash) for link in node.links]
        except Exception as exc:
            raise MalformedDag(str(ref), f"a link is unusable: {exc}", where=where) from None
        if self.prefetch is not None:
            self.prefetch(children[:PREFETCH_WINDOW])
        for i, (child, size) in enumerate(zip(children, node.blocksizes)):
            if self.prefetch is not None and i + PREFETCH_WINDOW < len(children):
                self.prefetch(children[i + PREFETCH_WINDOW : i + PREFETCH_WINDOW + 1])
            yield from self.node(child, depth + 1, size)

    def _check_size(self, ref: BlockRef, declared: int) -> None:
        self.total = declared
        if self.max_bytes is not None and declared > self.max_bytes:
            raise ContentTooLarge(str(ref), declared, self.max_bytes, where=self.where)
        if self.max_blocks is None:
            self.max_blocks = 16 + 2 * (declared // MIN_LEAF_FOR_BUDGET)


def links_of(ref: BlockRef, block: bytes) -> list[BlockRef]:
    """Children of a verified block (for CAR export and completeness checks)."""
    if ref.codec == RAW_CODEC:
        return []
    try:
        node = decode_node(block)
        return [BlockRef.from_link(link.hash) for link in node.links]
    except Exception as exc:
        raise StoreError(f"block {ref} is not a dag-pb UnixFS node: {exc}") from None
