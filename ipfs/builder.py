"""Building the UnixFS file DAG exactly as Kubo's ``ipfs add`` does.

Profile (Kubo's defaults): fixed 262,144-byte chunks, dag-pb leaves, balanced
layout with at most 174 links per node, CIDv0. The builder streams: it holds one
chunk plus, per DAG layer, the links of the node still being filled (at most 174),
so memory stays constant whatever the input size.

Why hand-written: there is no maintained Python UnixFS importer; the layout rule is
go-unixfs's ``balanced.Layout``, re-stated here bottom-up (a full node is closed as
soon as it has 174 links; at the end each partial layer is closed into the one
above, and a layer holding a single node is the root).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

from ipfs.cid import SHA2_256_PREFIX, cidv0_from_multihash
from ipfs.unixfs import Link, encode_inner, leaf_parts

CHUNK_SIZE = 262_144
MAX_LINKS = 174


class BlockSink(Protocol):
    """Receives every block the builder makes, leaves split in three to avoid copies."""

    def put_parts(self, multihash: bytes, parts: tuple[bytes | memoryview, ...], size: int) -> None: ...


class DagBuilder:
    """Feeds chunks in, gives the root out; blocks go to ``sink`` (None: only hash)."""

    def __init__(self, sink: BlockSink | None = None) -> None:
        self._sink = sink
        self._layers: list[list[Link]] = [[]]
        self._file_size = 0
        self._chunks = 0

    @property
    def file_size(self) -> int:
        return self._file_size

    def add_chunk(self, chunk: bytes | memoryview, digest: bytes | None = None) -> None:
        """Append the next chunk; ``digest`` is its leaf block's sha256 if already computed."""
        n = len(chunk)
        if n == 0 or n > CHUNK_SIZE:
            raise ValueError(f"a chunk holds 1..{CHUNK_SIZE} bytes, got {n}")
        link = self._leaf(chunk, digest)
        self._file_size += n
        self._chunks += 1
        self._push(0, link)

    def finish(self) -> Link:
        """Close the DAG; returns the root's link (multihash, file size, tsize)."""
        if self._chunks == 0:
            return self._leaf(b"")
        top = max(i for i, layer in enumerate(self._layers) if layer)
        for level in range(top):
            if self._layers[level]:
                node = self._inner(self._layers[level])
                self._layers[level] = []
                self._layers[level + 1].append(node)
        root_layer = self._layers[top]
        if len(root_layer) == 1:
            return root_layer[0]
        return self._inner(root_layer)

    def _push(self, level: int, link: Link) -> None:
        if level == len(self._layers):
            self._layers.append([])
        layer = self._layers[level]
        layer.append(link)
        if len(layer) == MAX_LINKS:
            node = self._inner(layer)
            self._layers[level] = []
            self._push(level + 1, node)

    def _leaf(self, chunk: bytes | memoryview, digest: bytes | None = None) -> Link:
        prefix, suffix = leaf_parts(len(chunk))
        mh = SHA2_256_PREFIX + (digest if digest is not None else leaf_digest(chunk))
        size = len(prefix) + len(chunk) + len(suffix)
        if self._sink is not None:
            self._sink.put_parts(mh, (prefix, chunk, suffix), size)
        return Link(mh, len(chunk), size)

    def _inner(self, links: list[Link]) -> Link:
        block = encode_inner(links)
        mh = SHA2_256_PREFIX + hashlib.sha256(block).digest()
        if self._sink is not None:
            self._sink.put_parts(mh, (block,), len(block))
        return Link(mh, sum(link.file_size for link in links), len(block) + sum(link.tsize for link in links))


def iter_chunks(data: bytes | bytearray | memoryview | BinaryIO) -> Iterator[bytes | memoryview]:
    """Split bytes or a stream into profile chunks.

    Each chunk read from a stream is a fresh object (not a reused buffer), so a
    sink may keep it until it has written it; only the sink's queue bounds memory.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]
        return
    read = getattr(data, "read", None)
    if read is None:
        raise TypeError(f"put() takes bytes or a binary stream, not {type(data).__name__}")
    while True:
        chunk = read(CHUNK_SIZE)
        if chunk is None:  # a non-blocking stream with nothing yet: treat as a bug upstream
            raise ValueError("the stream returned None (non-blocking streams are not supported)")
        if isinstance(chunk, str):
            raise TypeError("put() needs a binary stream; open the file with 'rb'")
        if 0 < len(chunk) < CHUNK_SIZE:
            # Pipes and sockets return short reads: top the chunk up to full size,
            # since chunk boundaries decide the CID.
            pieces = [chunk]
            have = len(chunk)
            while have < CHUNK_SIZE:
                more = read(CHUNK_SIZE - have)
                if not more:
                    break
                pieces.append(more)
                have += len(more)
            chunk = b"".join(pieces)
        if not chunk:
            return
        yield chunk
        if len(chunk) < CHUNK_SIZE:
            return


def leaf_digest(chunk: bytes | memoryview) -> bytes:
    """sha256 of the leaf block holding ``chunk``, hashed in place (no joined copy)."""
    prefix, suffix = leaf_parts(len(chunk))
    h = hashlib.sha256(prefix)
    h.update(chunk)
    h.update(suffix)
    return h.digest()


HASH_WORKERS = 2
# Inputs up to this many chunks are hashed inline: starting threads and waking
# them costs more than it saves on a few chunks.
INLINE_CHUNKS = 16


def build(
    data: bytes | bytearray | memoryview | BinaryIO,
    sink: BlockSink | None = None,
    *,
    workers: int = HASH_WORKERS,
) -> tuple[str, Link]:
    """Chunk and link ``data``; returns (root CIDv0 string, root link).

    Leaves are hashed on ``workers`` threads (hashlib releases the GIL), a few
    chunks ahead of the builder, which still takes them strictly in order; at most
    ``2 × workers + 1`` chunks are held at once.
    """
    builder = DagBuilder(sink)
    chunks = iter_chunks(data)
    if workers <= 1:
        for chunk in chunks:
            builder.add_chunk(chunk)
    else:
        _build_parallel(builder, chunks, workers)
    root = builder.finish()
    return cidv0_from_multihash(root.multihash), root


def _build_parallel(builder: DagBuilder, chunks: Iterator[bytes | memoryview], workers: int) -> None:
    pending: deque[tuple[bytes | memoryview, Future[bytes] | None]] = deque()
    pool: ThreadPoolExecutor | None = None
    inline = INLINE_CHUNKS
    try:
        for chunk in chunks:
            if pool is None:
                if inline > 0:
                    inline -= 1
                    builder.add_chunk(chunk)
                    continue
                pool = ThreadPoolExecutor(workers, thread_name_prefix="fedledger-hash")
            pending.append((chunk, pool.submit(leaf_digest, chunk)))
            while len(pending) > 2 * workers:
                done, future = pending.popleft()
                builder.add_chunk(done, future.result() if future is not None else None)
        while pending:
            done, future = pending.popleft()
            builder.add_chunk(done, future.result() if future is not None else None)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
