"""Fetching one update from the store within a byte limit and a deadline, never raising for bad content.

The coordinator (before it derives a round), the audit (when it re-derives one) and a
participant (when it re-derives the round that produced the model it is about to train
on) all fetch updates the same way, so they agree on what "could not be fetched" means.
The reason codes go into the manifest.
"""

from __future__ import annotations

from faults import Deadline, FedLedgerError, deadline, retrying
from ipfs import ContentNotFound, ContentStore, CorruptBlock, StoreError

UNAVAILABLE = "unavailable"  # the store does not hold it (yet), up to the deadline
STORE_UNAVAILABLE = "store-unavailable"  # the store itself could not be reached
CORRUPT = "corrupt"
TOO_LARGE = "too-large"
MALFORMED_DAG = "malformed-dag"  # the CID names something that is not a well-formed file DAG
AVAILABILITY_REASONS = frozenset({UNAVAILABLE, STORE_UNAVAILABLE})


class _TooLarge(Exception):
    pass


def fetch_update(store: ContentStore, cid: str, *, max_bytes: int, until: Deadline) -> tuple[bytes | None, str | None]:
    """Fetch ``cid`` by ``until``: ``(bytes, None)`` or ``(None, reason)``.

    Content not (yet) in the store and an unreachable store are retried with jittered
    backoff until the deadline; the deadline also bounds every request made below.
    """
    with deadline(until):
        try:
            for attempt in retrying(attempts=None, initial=0.2, maximum=2.0, also=(ContentNotFound,)):
                with attempt:
                    buf = bytearray()
                    for piece in store.iter_bytes(cid):
                        buf += piece
                        if len(buf) > max_bytes:
                            raise _TooLarge
                    return bytes(buf), None
        except _TooLarge:
            return None, TOO_LARGE
        except CorruptBlock:
            return None, CORRUPT
        except ContentNotFound:
            return None, UNAVAILABLE
        except StoreError as exc:
            return None, STORE_UNAVAILABLE if type(exc).transient else MALFORMED_DAG
        except FedLedgerError:  # the deadline ran out inside a request
            return None, UNAVAILABLE
    return None, UNAVAILABLE  # pragma: no cover - the loop returns or raises
