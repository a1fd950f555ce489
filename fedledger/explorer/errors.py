"""What the explorer answers when a request cannot be served: each error knows its HTTP status."""

from __future__ import annotations

from typing import ClassVar

from faults import FedLedgerError


class ExplorerError(FedLedgerError):
    """A request the explorer cannot answer; ``status`` is the HTTP status it is answered with."""

    status: ClassVar[int] = 400


class BadRequest(ExplorerError):
    """A path parameter that is not what the page takes (a round id that is not a number, an address that is not one)."""

    status = 400


class NotFound(ExplorerError):
    """A round, member or file the federation does not have."""

    status = 404


class NotVerified(ExplorerError):
    """The store gave bytes that do not match the digest the chain records: they are not served."""

    status = 502
    hint = "the store is corrupt or lying; re-fetch the content from another node"


class Unavailable(ExplorerError):
    """The chain or the store did not answer in time, or is down."""

    status = 503
    transient = True
    hint = "the node or the store is slow or down; the page answers again once it is back"
