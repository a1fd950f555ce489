"""Publishing a STIX bundle to a TAXII 2.1 collection with taxii2-client.

The objects go to the collection's ``objects/`` endpoint as TAXII envelopes
(``application/taxii+json;version=2.1``), split so that none exceeds the API root's
``max_content_length``; each POST answers 202 with a status resource, which is polled
until it is ``complete`` or the timeout runs out. Every request has a timeout and every
answer a size limit (:mod:`fedledger.intel.http`). A refused login, an unknown
collection and a server that does not answer each raise their own
:class:`~fedledger.intel.errors.ShareError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from fedledger.intel.errors import (
    ShareAuthError,
    ShareError,
    ShareNotFound,
    ShareRejected,
    ShareUnavailable,
)
from fedledger.intel.http import bound, check_url

MEDIA_TYPE = "application/taxii+json;version=2.1"


class ShareTimeout(ShareUnavailable):
    """The server accepted the objects but did not finish adding them in time."""


@dataclass
class Published:
    """What the collection's status resources said about the objects sent."""

    collection: str
    statuses: list[str] = field(default_factory=list)
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    failures: list[str] = field(default_factory=list)  # "id: message", a few

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "statuses": self.statuses, "total": self.total,
                "succeeded": self.succeeded, "failed": self.failed, "pending": self.pending,
                "failures": self.failures}  # fmt: skip


def collection_url(api_root: str, collection_id: str) -> str:
    return api_root.rstrip("/") + "/collections/" + collection_id.strip("/") + "/"


def publish(
    bundle: str | dict[str, Any],
    *,
    api_root: str,
    collection_id: str,
    user: str,
    password: str,
    timeout: float = 60.0,
    poll_interval: float = 1.0,
    verify_tls: bool = True,
) -> Published:
    """Add the bundle's objects to the collection and wait for the server to finish."""
    from taxii2client.exceptions import TAXIIServiceException
    from taxii2client.v21 import ApiRoot, Collection

    check_url(api_root, "TAXII")
    objects = (json.loads(bundle) if isinstance(bundle, str) else bundle).get("objects") or []
    if not objects:
        raise ShareRejected("the bundle has no objects to publish", hint="build it with `fedledger share stix`")
    until = time.monotonic() + timeout
    conn = _connection(user, password, verify_tls, timeout)
    url = collection_url(api_root, collection_id)
    try:
        root = ApiRoot(api_root if api_root.endswith("/") else api_root + "/", conn=conn)
        try:
            limit = int(root.max_content_length or 0) or (10 << 20)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                raise ShareNotFound(f"there is no TAXII 2.1 API root at {api_root} (404)",
                                    hint="pass --url the API root (e.g. https://host/api1/), not the server's discovery URL") from None  # fmt: skip
            raise
        collection = Collection(url, conn=conn)
        if not collection.can_write:
            raise ShareAuthError(f"TAXII collection {collection_id} at {api_root} does not let this user write",
                                 hint="ask the server's operator for write access, or pick another collection")  # fmt: skip
        out = Published(collection=url)
        for envelope in _envelopes(objects, limit):
            status = collection.add_objects(envelope, wait_for_completion=False)
            while status.status != "complete":
                if time.monotonic() + poll_interval > until:
                    raise ShareTimeout(
                        f"TAXII status {status.id} at {api_root} still {status.status} after {timeout:g} s "
                        f"({status.pending_count} pending)",
                        hint="the server may still add them: check its status resource later, or raise --timeout",
                    )
                time.sleep(poll_interval)
                status.refresh()
            out.statuses.append(status.id)
            out.total += int(status.total_count or 0)
            out.succeeded += int(status.success_count or 0)
            out.failed += int(status.failure_count or 0)
            out.pending += int(status.pending_count or 0)
            for f in (status.failures or [])[: max(0, 5 - len(out.failures))]:
                out.failures.append(f"{f.get('id')}: {f.get('message', 'not added')}")
        return out
    except requests.HTTPError as exc:
        raise _http_error(exc, api_root, collection_id) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ShareUnavailable(f"cannot reach the TAXII server at {api_root}: {type(exc).__name__}",
                               hint="check --url and that the server is up") from None  # fmt: skip
    except TAXIIServiceException as exc:
        raise ShareRejected(f"the TAXII server at {api_root} answered something else than TAXII 2.1: {str(exc).splitlines()[0]}",
                            hint="check that --url is a TAXII 2.1 API root") from None  # fmt: skip
    except ValueError as exc:  # an answer that is not JSON
        raise ShareRejected(f"the TAXII server at {api_root} answered what is not JSON: {exc}",
                            hint="check that --url is a TAXII 2.1 API root") from None  # fmt: skip
    finally:
        conn.close()


def read_objects(*, api_root: str, collection_id: str, user: str, password: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every object of a collection (following pages), as the server returns them."""
    from taxii2client.v21 import Collection, as_pages

    check_url(api_root, "TAXII")
    conn = _connection(user, password, True, timeout)
    try:
        collection = Collection(collection_url(api_root, collection_id), conn=conn)
        out: list[dict[str, Any]] = []
        for page in as_pages(collection.get_objects, per_request=100):
            out += page.get("objects", [])
        return out
    except requests.HTTPError as exc:
        raise _http_error(exc, api_root, collection_id) from None
    finally:
        conn.close()


def _connection(user: str, password: str, verify_tls: bool, timeout: float) -> Any:
    """taxii2-client's connection (which ``ApiRoot`` and ``Collection`` share through ``conn=``),
    its session bounded in time and size."""
    from taxii2client.common import _HTTPConnection

    conn = _HTTPConnection(user=user, password=password, verify=verify_tls, version="2.1")
    bound(conn.session, timeout=timeout)
    return conn


def _envelopes(objects: list[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    """Envelopes of whole objects, each below ``limit`` bytes as taxii2-client serialises them."""
    empty = len(json.dumps({"objects": []}))
    budget = limit - 1024  # headroom for the server's own accounting
    batch: list[dict[str, Any]] = []
    size = empty
    for obj in objects:
        n = len(json.dumps(obj, ensure_ascii=False).encode()) + 2  # and the ", " between items
        if n + empty > budget:
            raise ShareRejected(f"object {obj.get('id')} alone is {n:,} bytes, over the server's limit of {limit:,}",
                                hint="share fewer alerts at once")  # fmt: skip
        if batch and size + n > budget:
            yield {"objects": batch}
            batch, size = [], empty
        batch.append(obj)
        size += n
    if batch:
        yield {"objects": batch}


def _http_error(exc: requests.HTTPError, api_root: str, collection_id: str) -> ShareError:
    code = exc.response.status_code if exc.response is not None else 0
    if code in (401, 403):
        return ShareAuthError(f"the TAXII server at {api_root} refused the login ({code})",
                              hint="check --user and the password (--password-file or $FEDLEDGER_TAXII_PASSWORD)")  # fmt: skip
    if code == 404:
        return ShareNotFound(f"the TAXII server at {api_root} has no collection {collection_id} (404)",
                             hint="list the API root's collections, or check --url (an API root, e.g. https://host/api1/)")  # fmt: skip
    if code == 413:
        return ShareRejected(f"the TAXII server at {api_root} refused the request as too large (413)", hint="share fewer alerts at once")
    return ShareRejected(f"the TAXII server at {api_root} answered {code} for collection {collection_id}",
                         hint="see the server's log")  # fmt: skip
