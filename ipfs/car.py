"""CAR v1 export and import of a file DAG, the format of ``ipfs dag export/import``.

A CAR v1 file is ``varint(len) header`` followed by sections
``varint(len) CID-bytes block``; the header is the dag-cbor map
``{"roots": [CID], "version": 1}``. Kubo writes CIDv0 roots and blocks for a CIDv0
DAG, so content moves between this store and a Kubo node unchanged.

Why the CBOR is hand-written: the header is one fixed, tiny shape (a two-key map
holding a list of tag-42 CIDs and an int). The few lines below encode it
canonically and decode exactly that shape; a general CBOR dependency would add a
package to read ~45 bytes and would still need the CID tag handled here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from multiformats import CID

from ipfs.cid import SHA2_256_PREFIX, parse_cid
from ipfs.errors import ContentNotFound, CorruptBlock, StoreError
from ipfs.reader import PB_CODEC, RAW_CODEC, BlockRef, links_of, verify_block
from ipfs.store import ContentStore
from ipfs.unixfs import encode_varint

# Kubo refuses blocks above 2 MiB (bitswap's limit); a section claiming more than
# this is junk or hostile, and reading it would only waste memory.
MAX_SECTION = 4 << 20
MAX_HEADER = 1 << 16


class CarError(StoreError):
    """A CAR file that is not a well-formed CAR v1."""

    hint = "pass a CAR v1 file as `ipfs dag export` or `fedledger ipfs dag export` writes it"


# --- writing ----------------------------------------------------------------


def _cid_bytes(ref: BlockRef) -> bytes:
    if ref.codec == PB_CODEC:
        return ref.multihash  # CIDv0: the bare multihash
    return bytes(CID.decode(str(ref)))  # CIDv1 binary


def encode_header(roots: list[BlockRef]) -> bytes:
    body = bytearray(b"\xa2")  # map(2), keys in dag-cbor order (shorter first)
    body += b"\x65roots"
    body += _cbor_head(4, len(roots))
    for root in roots:
        raw = b"\x00" + _cid_bytes(root)  # tag 42 payload: multibase identity prefix + CID
        body += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    body += b"\x67version\x01"
    return encode_varint(len(body)) + bytes(body)


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")
    return bytes([major << 5 | 26]) + n.to_bytes(4, "big")


def export_car(store: ContentStore, cid: str, out: BinaryIO) -> int:
    """Write the DAG under ``cid`` to ``out`` as CAR v1; returns the number of blocks.

    Blocks go depth-first in link order, each once, and each is verified before it
    is written, so an export never carries a corrupt block.
    """
    root = BlockRef.of(parse_cid(cid))
    out.write(encode_header([root]))
    seen: set[BlockRef] = set()
    stack = [root]
    count = 0
    where = getattr(store, "location", "the store")
    while stack:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        block = store.read_block(ref)
        verify_block(ref, block, where)
        cid_raw = _cid_bytes(ref)
        out.write(encode_varint(len(cid_raw) + len(block)))
        out.write(cid_raw)
        out.write(block)
        count += 1
        stack.extend(reversed(links_of(ref, block)))
    return count


# --- reading ----------------------------------------------------------------


def _read_varint(stream: BinaryIO, what: str) -> int | None:
    result = 0
    shift = 0
    first = True
    while True:
        b = stream.read(1)
        if not b:
            if first:
                return None
            raise CarError(f"CAR file ends inside the length of {what}")
        first = False
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise CarError(f"CAR file has an over-long varint in {what}")


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise CarError(f"CAR file is truncated: {what} needs {n} bytes, got {len(data or b'')}")
    return data


class _Cbor:
    """Decoder for exactly the CAR header's CBOR subset."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def item(self, depth: int = 0):
        if depth > 4:
            raise CarError("CAR header nests too deeply")
        if self.pos >= len(self.data):
            raise CarError("CAR header ends early")
        ib = self.data[self.pos]
        self.pos += 1
        major, info = ib >> 5, ib & 31
        n = self._arg(info)
        if major == 0:
            return n
        if major in (2, 3):
            raw = self.data[self.pos : self.pos + n]
            if len(raw) != n:
                raise CarError("CAR header string runs past its end")
            self.pos += n
            return raw if major == 2 else raw.decode("utf-8", "strict")
        if major == 4:
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            return {self.item(depth + 1): self.item(depth + 1) for _ in range(n)}
        if major == 6 and n == 42:
            raw = self.item(depth + 1)
            if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
                raise CarError("CAR header holds a malformed CID")
            return CID.decode(raw[1:])
        raise CarError(f"CAR header holds an unsupported CBOR item (major type {major})")

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise CarError("CAR header uses indefinite-length CBOR")
        k = sizes[info]
        raw = self.data[self.pos : self.pos + k]
        if len(raw) != k:
            raise CarError("CAR header ends early")
        self.pos += k
        return int.from_bytes(raw, "big")


def read_header(stream: BinaryIO) -> list[BlockRef]:
    length = _read_varint(stream, "the header")
    if length is None:
        raise CarError("the file is empty, not a CAR file")
    if length == 0 or length > MAX_HEADER:
        raise CarError(f"CAR header length {length} is not plausible; is this a CAR file?")
    raw = _read_exact(stream, length, "the header")
    try:
        header = _Cbor(raw).item()
    except CarError:
        raise
    except Exception as exc:
        raise CarError(f"CAR header is not valid CBOR: {exc}") from None
    if not isinstance(header, dict):
        raise CarError("CAR header is not a map; is this a CAR file?")
    if header.get("version") == 2:
        raise CarError("this is a CAR v2 file; export it as v1 (`ipfs dag export` writes v1)")
    if header.get("version") != 1:
        raise CarError(f"CAR header version is {header.get('version')!r}, expected 1")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CarError("CAR header has no list of root CIDs")
    refs = []
    for root in roots:
        if root.hashfun.name != "sha2-256" or root.codec.name not in (PB_CODEC, RAW_CODEC):
            raise CarError(f"CAR root {root} is not a sha2-256 dag-pb or raw CID")
        refs.append(BlockRef.of(root))
    return refs


def _split_cid(section: bytes) -> tuple[BlockRef, int]:
    if section[:2] == SHA2_256_PREFIX:
        if len(section) < 34:
            raise CarError("CAR section is shorter than its CID")
        return BlockRef(PB_CODEC, section[2:34]), 34
    # CIDv1: version, codec, then multihash code and length, all varints.
    pos = 0
    fields = []
    for _ in range(4):
        value, shift = 0, 0
        while True:
            if pos >= len(section):
                raise CarError("CAR section ends inside its CID")
            b = section[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        fields.append(value)
    end = pos + fields[3]
    try:
        cid = CID.decode(section[:end])
    except Exception as exc:
        raise CarError(f"CAR section starts with a malformed CID: {exc}") from None
    if cid.hashfun.name != "sha2-256" or cid.codec.name not in (PB_CODEC, RAW_CODEC):
        raise CarError(f"CAR block {cid} is not a sha2-256 dag-pb or raw block; it cannot be verified here")
    return BlockRef.of(cid), end


def iter_car(stream: BinaryIO, name: str = "the CAR file") -> tuple[list[BlockRef], Iterator[tuple[BlockRef, bytes]]]:
    """(roots, verified blocks) of a CAR v1 stream; a block whose hash is wrong raises CorruptBlock."""
    roots = read_header(stream)

    def blocks() -> Iterator[tuple[BlockRef, bytes]]:
        while True:
            length = _read_varint(stream, "a section")
            if length is None:
                return
            if length == 0 or length > MAX_SECTION:
                raise CarError(f"CAR section length {length} is not plausible (blocks are at most 2 MiB)")
            section = _read_exact(stream, length, "a section")
            ref, offset = _split_cid(section)
            block = section[offset:]
            if hashlib.sha256(block).digest() != ref.digest:
                raise CorruptBlock(str(ref), "its bytes do not hash to its CID", where=name)
            yield ref, block

    return roots, blocks()


def missing_blocks(store: ContentStore, root: BlockRef, limit: int = 1) -> list[BlockRef]:
    """Blocks under ``root`` the store lacks (reads inner nodes, stops at ``limit``)."""
    missing: list[BlockRef] = []
    stack = [root]
    seen: set[BlockRef] = set()
    while stack and len(missing) < limit:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            block = store.read_block(ref, local_only=True)
        except ContentNotFound:
            missing.append(ref)
            continue
        stack.extend(links_of(ref, block))
    return missing


def import_car(store: ContentStore, stream: BinaryIO, name: str = "the CAR file") -> list[str]:
    """Put every block of a CAR v1 stream into ``store`` and pin its roots; returns the roots.

    Every block is verified before it is stored. A root is pinned only when its
    whole DAG is present afterwards; otherwise nothing is pinned and the error
    names the first missing block.
    """
    roots, blocks = iter_car(stream, name)
    store.put_blocks(blocks)
    for root in roots:
        gap = missing_blocks(store, root)
        if gap:
            raise CarError(
                f"{name} does not hold the whole DAG of {root}: block {gap[0]} is missing",
                hint="export the CAR again from a node that has the complete content",
            )
    cids = [str(root) for root in roots]
    for cid in cids:
        store.pin(cid)
    return cids
