"""Hostile file DAGs and CAR files, built block by block as an attacker would (for the store-bomb tests and fuzzing)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ipfs.car import _cid_bytes, encode_header
from ipfs.reader import BlockRef
from ipfs.unixfs import Link, encode_inner, encode_varint, leaf_parts


def pb_ref(block: bytes) -> BlockRef:
    return BlockRef("dag-pb", hashlib.sha256(block).digest())


def leaf(data: bytes) -> bytes:
    """A UnixFS file leaf holding ``data`` (Kubo's empty file for b"")."""
    prefix, suffix = leaf_parts(len(data))
    return prefix + data + suffix


@dataclass(frozen=True)
class Dag:
    root: BlockRef
    blocks: list[tuple[BlockRef, bytes]]  # every distinct block, leaves first

    @property
    def cid(self) -> str:
        return str(self.root)

    def car(self) -> bytes:
        """The DAG as a CAR v1 file (root in the header, each block once)."""
        out = bytearray(encode_header([self.root]))
        for ref, block in self.blocks:
            cid = _cid_bytes(ref)
            out += encode_varint(len(cid) + len(block)) + cid + block
        return bytes(out)


def fan_out_bomb(levels: int = 4, fan: int = 174, leaf_data: bytes = b"", honest_sizes: bool = False) -> Dag:
    """Every node links ``fan`` times to one child, ``levels`` deep, down to one leaf.

    ``honest_sizes=False`` is issue 11.1's bomb: every declared size 0 (a few KB of blocks that
    name 174**levels leaves). ``honest_sizes=True`` declares each child's true size, so only the
    fan-out is hostile (174**4 one-byte leaves declare a 916 MB file).
    """
    block = leaf(leaf_data)
    ref = pb_ref(block)
    blocks = [(ref, block)]
    size, tsize = len(leaf_data), len(block)
    for _ in range(levels):
        node = encode_inner([Link(ref.multihash, size if honest_sizes else 0, tsize if honest_sizes else 0)] * fan)
        size, tsize = size * fan, tsize * fan + len(node)
        ref = pb_ref(node)
        blocks.append((ref, node))
    return Dag(ref, blocks)


def deep_chains(chains: int = 174, depth: int = 15, leaf_bytes: int = 4096) -> Dag:
    """A root over ``chains`` single-link chains ``depth`` nodes deep, each ending in its own ``leaf_bytes`` leaf.

    Every size is honest and every leaf full-sized: only the number of blocks per byte is
    hostile (16 blocks per 4 KiB), which is what the reader's block budget bounds.
    """
    blocks: list[tuple[BlockRef, bytes]] = []
    tops: list[Link] = []
    for c in range(chains):
        data = hashlib.sha256(b"chain-%d" % c).digest() * (leaf_bytes // 32)
        block = leaf(data)
        ref = pb_ref(block)
        blocks.append((ref, block))
        tsize = len(block)
        for _ in range(depth):
            node = encode_inner([Link(ref.multihash, len(data), tsize)])
            tsize += len(node)
            ref = pb_ref(node)
            blocks.append((ref, node))
        tops.append(Link(ref.multihash, len(data), tsize))
    root = encode_inner(tops)
    ref = pb_ref(root)
    blocks.append((ref, root))
    return Dag(ref, blocks)
