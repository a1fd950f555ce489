"""Typed failures of the content store.

Every one derives from :class:`faults.FedLedgerError`, names the thing that
is wrong (a CID, a block, a directory, an API address) and carries a hint.
"""

from __future__ import annotations

from faults import FedLedgerError


class StoreError(FedLedgerError):
    """A content-store operation failed."""


class ContentNotFound(StoreError):
    """The store holds no block for the CID asked for."""

    def __init__(self, cid: str, *, where: str = "the store", hint: str | None = None) -> None:
        super().__init__(
            f"content {cid} is not in {where}",
            hint=hint
            or "check the CID, or put the content first (fedledger ipfs add FILE / dag import FILE)",
        )
        self.cid = cid


class CorruptBlock(StoreError):
    """A block's bytes do not hash to the CID that names it; it is never returned."""

    def __init__(self, cid: str, detail: str, *, where: str = "the store", hint: str | None = None) -> None:
        super().__init__(
            f"block {cid} in {where} is corrupt: {detail}",
            hint=hint
            or "the block was damaged on disk or sent wrong; delete it and put or import the content again",
        )
        self.cid = cid


class MalformedDag(StoreError):
    """A DAG whose structure is not a file of the profile (a bomb, a lie about sizes); refused unread."""

    def __init__(self, cid: str, detail: str, *, where: str = "the store") -> None:
        super().__init__(
            f"DAG {cid} in {where} is malformed: {detail}",
            hint="the content was not added with `ipfs add` (Kubo's defaults); whoever published it must add it again",
        )
        self.cid = cid


class ContentTooLarge(StoreError):
    """The content declares more bytes than the caller accepts; refused before it is read."""

    def __init__(self, cid: str, size: int, limit: int, *, where: str = "the store") -> None:
        super().__init__(
            f"content {cid} in {where} declares {size:,} bytes, more than the {limit:,} allowed",
            hint="raise the limit if the content is expected to be this large",
        )
        self.cid, self.size, self.limit = cid, size, limit


class InvalidCID(StoreError):
    """A string or digest is not a CID of the profile the store uses."""

    def __init__(self, value: object, detail: str, *, hint: str | None = None) -> None:
        shown = value if isinstance(value, str) else repr(value)
        if isinstance(shown, str) and len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            f"{shown!s} is not a valid CID: {detail}",
            hint=hint or "pass a CIDv0 string such as Qm… as printed by `fedledger ipfs add` or `ipfs add`",
        )
        self.value = value


class StoreUnavailable(StoreError):
    """The IPFS API could not be reached or answered something that is not the Kubo RPC API."""

    transient = True  # a node that is down or overloaded may answer the same request later

    def __init__(self, address: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"IPFS API at {address}: {detail}",
            hint=hint
            or "start the node (`ipfs daemon`), check --ipfs-api / IPFS_API, or use the embedded store (--store DIR)",
        )
        self.address = address


class StoreMisconfigured(StoreUnavailable):
    """The address is not a Kubo RPC API at all (a gateway, another service, a malformed multiaddr)."""

    transient = False  # asking again will not make it one


class StoreNotWritable(StoreError):
    """The embedded store's directory cannot be created or written."""

    def __init__(self, path: object, detail: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"store directory {path} is not writable: {detail}",
            hint=hint or "choose a directory you can write (--store DIR or FEDLEDGER_STORE)",
        )
        self.path = path
