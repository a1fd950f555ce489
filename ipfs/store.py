"""The one interface every content store offers (embedded directory or Kubo node)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from ipfs.reader import BlockRef


class ContentStore(abc.ABC):
    """Content-addressed storage of files, named by their Kubo-identical CIDv0.

    ``put`` returns the CID ``ipfs add`` would print for the same bytes; ``get`` and
    ``iter_bytes`` re-hash every block against the CID that names it and raise
    :class:`ipfs.errors.CorruptBlock` rather than return a wrong byte.
    """

    #: Where the content lives, for messages ("store /var/lib/x", "Kubo at http://…").
    location: str

    @abc.abstractmethod
    def put(self, data: bytes | bytearray | memoryview | BinaryIO, *, only_hash: bool = False) -> str:
        """Store ``data`` (bytes or a binary stream, read to its end) and pin it.

        With ``only_hash`` nothing is stored: the CID is computed, as ``ipfs add -n``.
        """

    @abc.abstractmethod
    def iter_bytes(self, cid: str, *, max_bytes: int | None = None) -> Iterator[memoryview]:
        """The content's bytes in order, each piece verified before it is yielded.

        Pieces stay valid after the next one is requested. On error, pieces already
        yielded were genuine but the content is incomplete: discard them. The walk is
        bounded (:func:`ipfs.reader.iter_file`): content declaring more than
        ``max_bytes`` is refused unread, a malformed DAG is refused, and the caller's
        :func:`faults.deadline` is checked at every block.
        """

    def get(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The whole content, verified (use :meth:`get_to` for large content)."""
        return b"".join(self.iter_bytes(cid, max_bytes=max_bytes))

    def get_to(self, cid: str, fileobj: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Stream the verified content into ``fileobj``; returns the byte count.

        If it raises, what was written so far is an incomplete prefix: discard it.
        """
        total = 0
        for piece in self.iter_bytes(cid, max_bytes=max_bytes):
            fileobj.write(piece)
            total += len(piece)
        return total

    @abc.abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the root block is present (existence only; reading verifies)."""

    @abc.abstractmethod
    def pin(self, cid: str) -> None:
        """Keep ``cid`` (a root already in the store) and list it."""

    @abc.abstractmethod
    def unpin(self, cid: str) -> None:
        """Stop keeping ``cid``; raises StoreError if it was not pinned."""

    @abc.abstractmethod
    def list(self) -> Iterator[str]:
        """The pinned roots."""

    # -- block level (CAR export/import) ----------------------------------------

    @abc.abstractmethod
    def read_block(self, ref: BlockRef, *, local_only: bool = False) -> bytes:
        """One block's raw bytes, not yet verified (callers verify); ContentNotFound if absent.

        ``local_only``: do not ask the network (a Kubo node would otherwise search it).
        """

    @abc.abstractmethod
    def put_blocks(self, blocks: Iterable[tuple[BlockRef, bytes]]) -> int:
        """Store blocks whose hashes the caller has verified; returns how many."""

    def close(self) -> None:
        """Release connections or handles (no-op by default)."""

    def __enter__(self) -> ContentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
