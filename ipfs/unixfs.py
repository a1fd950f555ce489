"""The dag-pb and UnixFS protobuf messages, encoded and decoded by hand.

Why by hand: the profile needs three fixed messages (PBNode, PBLink, UnixFS Data)
and only a handful of fields. A protobuf runtime plus generated code (there is no
protoc here) would be a heavier dependency than these ~150 lines, and it would
copy every 256 KiB chunk in and out of message objects, where this code hashes
and writes the chunk in place (prefix + chunk + suffix, no concatenation).

The byte layout is what Kubo's go-merkledag/go-unixfs emit: in a PBNode the links
(field 2) come before the data (field 1); every link carries an empty name; a leaf
is a UnixFS ``File`` node holding its chunk; an inner node lists the file size of
every child in ``blocksizes``.
"""

from __future__ import annotations

from dataclasses import dataclass

# UnixFS Data.Type values (unixfs.proto)
TYPE_RAW = 0
TYPE_DIRECTORY = 1
TYPE_FILE = 2
TYPE_METADATA = 3
TYPE_SYMLINK = 4
TYPE_HAMT_SHARD = 5


class ProtobufError(ValueError):
    """Bytes that are not the message they claim to be."""


def encode_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints here are unsigned")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 64 bits")


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) where value is an int or a memoryview."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtobufError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise ProtobufError("length-delimited field runs past the end")
            yield field, wire, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            if pos + 8 > end:
                raise ProtobufError("truncated fixed64")
            yield field, wire, int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 5:
            if pos + 4 > end:
                raise ProtobufError("truncated fixed32")
            yield field, wire, int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


# --- encoding ---------------------------------------------------------------


def leaf_parts(chunk_len: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) that wrap a chunk of ``chunk_len`` bytes into a leaf block.

    block = prefix + chunk + suffix; callers hash and write the three parts without
    joining them.
    """
    if chunk_len == 0:
        # Kubo's empty file: a File node with filesize 0 and no Data field.
        unixfs = b"\x08\x02\x18\x00"
        return b"\x0a" + encode_varint(len(unixfs)) + unixfs, b""
    n = encode_varint(chunk_len)
    head = b"\x08\x02\x12" + n  # Type=File, Data=<chunk>
    tail = b"\x18" + n  # filesize
    unixfs_len = len(head) + chunk_len + len(tail)
    return b"\x0a" + encode_varint(unixfs_len) + head, tail


@dataclass(frozen=True, slots=True)
class Link:
    """A child of an inner node: its multihash, its file bytes and its DAG bytes."""

    multihash: bytes
    file_size: int
    tsize: int  # the child's block plus everything below it, as Kubo counts it


def encode_inner(links: list[Link]) -> bytes:
    """An inner UnixFS File node over ``links`` (at least one)."""
    out = bytearray()
    total = 0
    for link in links:
        body = b"\x0a" + encode_varint(len(link.multihash)) + link.multihash + b"\x12\x00" + b"\x18" + encode_varint(link.tsize)
        out += b"\x12" + encode_varint(len(body)) + body
        total += link.file_size
    unixfs = bytearray(b"\x08\x02\x18" + encode_varint(total))
    for link in links:
        unixfs += b"\x20" + encode_varint(link.file_size)
    out += b"\x0a" + encode_varint(len(unixfs)) + unixfs
    return bytes(out)


# --- decoding ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PBLink:
    hash: bytes  # binary CID (a bare multihash for CIDv0)
    name: str
    tsize: int | None


@dataclass(frozen=True, slots=True)
class FileNode:
    """What reading a file needs from one dag-pb block."""

    links: list[PBLink]
    data: memoryview  # the chunk bytes held in this node (empty for inner nodes)
    file_size: int | None
    blocksizes: list[int]
    unixfs_type: int


def decode_node(block: bytes | memoryview) -> FileNode:
    """Decode a dag-pb block holding a UnixFS file node; raise ProtobufError otherwise."""
    view = memoryview(block)
    links: list[PBLink] = []
    data: memoryview | None = None
    for field, wire, value in _fields(view):
        if field == 2 and wire == 2:
            links.append(_decode_link(value))  # type: ignore[arg-type]
        elif field == 1 and wire == 2:
            if data is not None:
                raise ProtobufError("PBNode has two Data fields")
            data = value  # type: ignore[assignment]
        else:
            raise ProtobufError(f"PBNode has unexpected field {field} (wire type {wire})")
    if data is None:
        raise ProtobufError("dag-pb node has no UnixFS data")
    utype: int | None = None
    payload = memoryview(b"")
    file_size: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in _fields(data):
        if field == 1 and wire == 0:
            utype = value  # type: ignore[assignment]
        elif field == 2 and wire == 2:
            payload = value  # type: ignore[assignment]
        elif field == 3 and wire == 0:
            file_size = value  # type: ignore[assignment]
        elif field == 4 and wire == 0:
            blocksizes.append(value)  # type: ignore[arg-type]
        elif field == 4 and wire == 2:  # packed encoding, accepted for robustness
            inner = value  # type: ignore[assignment]
            pos = 0
            while pos < len(inner):
                size, pos = _read_varint(inner, pos)
                blocksizes.append(size)
        elif field in (5, 6, 7, 8):  # hashType, fanout, mode, mtime: irrelevant to file bytes
            continue
        else:
            raise ProtobufError(f"UnixFS Data has unexpected field {field} (wire type {wire})")
    if utype is None:
        raise ProtobufError("UnixFS Data has no Type")
    return FileNode(links, payload, file_size, blocksizes, utype)


def _decode_link(buf: memoryview) -> PBLink:
    hash_: bytes | None = None
    name = ""
    tsize: int | None = None
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 2:
            hash_ = bytes(value)  # type: ignore[arg-type]
        elif field == 2 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif field == 3 and wire == 0:
            tsize = value  # type: ignore[assignment]
        else:
            raise ProtobufError(f"PBLink has unexpected field {field} (wire type {wire})")
    if hash_ is None:
        raise ProtobufError("PBLink has no Hash")
    return PBLink(hash_, name, tsize)
