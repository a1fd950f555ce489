"""Fetching one update from the store within a byte limit and a deadline, never raising for bad content.

The coordinator (before it derives a round), the audit (when it re-derives one) and a
participant (when it re-derives the round that produced the model it is about to train
on) all fetch updates the same way, so they agree on what "could not be fetched" means.
The reason codes go into the manifest.
"""

from __future__ import annotations

from faults import Deadline, FedLedgerError, deadline, retrying
from federation.descriptor import Descriptor
from federation.updates import max_update_bytes
from ipfs import (
    ContentNotFound,
    ContentStore,
    ContentTooLarge,
    CorruptBlock,
    MalformedDag,
    StoreError,
)

UNAVAILABLE = "unavailable"  # the store does not hold it (yet), up to the deadline
STORE_UNAVAILABLE = "store-unavailable"  # the store itself could not be reached
TOO_LARGE = "too-large"
MALFORMED_DAG = "malformed-dag"  # the CID names something that is not a well-formed file DAG
AVAILABILITY_REASONS = frozenset({UNAVAILABLE, STORE_UNAVAILABLE})


def update_limit(descriptor: Descriptor) -> int:
    """The most bytes an update of this federation may take: the descriptor's limit, or what the model needs."""
    return min(descriptor.max_update_bytes, max_update_bytes(descriptor.spec))


def fetch_update(store: ContentStore, cid: str, *, max_bytes: int, until: Deadline) -> tuple[bytes | None, str | None]:
    """Fetch ``cid`` by ``until``: ``(bytes, None)`` or ``(None, reason)``.

    Content not (yet) in the store, a block that no longer hashes to its CID (altered in a
    shared store after it was put: the store's fault, not the member's) and an unreachable
    store are retried with jittered backoff until the deadline, which also bounds every
    request and every block of the walk below. A DAG that declares more than ``max_bytes``
    or is malformed is refused at once, unread.
    """
    with deadline(until):
        try:
            for attempt in retrying(attempts=None, initial=0.2, maximum=2.0, also=(ContentNotFound, CorruptBlock)):
                with attempt:
                    buf = bytearray()
                    for piece in store.iter_bytes(cid, max_bytes=max_bytes):
                        buf += piece
                    if len(buf) > max_bytes:  # the root's declared size lied below the limit
                        return None, TOO_LARGE
                    return bytes(buf), None
        except ContentTooLarge:
            return None, TOO_LARGE
        except MalformedDag:
            return None, MALFORMED_DAG
        except (ContentNotFound, CorruptBlock):
            return None, UNAVAILABLE
        except StoreError as exc:
            return None, STORE_UNAVAILABLE if type(exc).transient else MALFORMED_DAG
        except FedLedgerError:  # the deadline ran out inside a request or a walk
            return None, UNAVAILABLE
    return None, UNAVAILABLE  # pragma: no cover - the loop returns or raises
