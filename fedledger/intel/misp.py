"""Alerts as a MISP event, built with PyMISP, written as MISP JSON and optionally pushed.

The event carries the TLP tag (``tlp:amber`` …) and one ATT&CK galaxy tag per technique
its families map to (``misp-galaxy:mitre-attack-pattern="Network Denial of Service -
T1498"``); each group of alerts (one shared source and family) is a ``netflow`` object
(``ip-src``, ``ip-dst`` and ``dst-port`` where the group has one, ``protocol``,
first/last seen, ``flow-count``), its ``ip-src`` tagged with the family's techniques
and flagged ``to_ids`` when the group's mean confidence reaches the threshold; the
provenance of the model is a set of ``text`` attributes. Every uuid is derived from
content, so the same alerts give the same event.

The file is what MISP imports (Event > Add event > Populate from MISP JSON; or
``PyMISP.add_event``). With ``--misp-url`` and ``--misp-key-file`` the event is pushed with
PyMISP; the key only ever travels over HTTPS (or to a server on loopback).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pymisp import MISPAttribute, MISPEvent, MISPObject

from fedledger.intel.aggregate import Aggregate, AlertGroup
from fedledger.intel.attack_map import techniques
from fedledger.intel.errors import (
    ShareAuthError,
    ShareError,
    ShareRejected,
    ShareUnavailable,
)
from fedledger.intel.http import BoundedAdapter, check_url
from fedledger.intel.provenance import Provenance
from fedledger.intel.share_options import ShareOptions

NAMESPACE = uuid.UUID("0b5a8e38-2f41-5c0e-8f57-3f4f8e1f0a72")
# MISP distribution levels: 0 your organisation, 1 this community, 2 connected communities, 3 all.
_DISTRIBUTION = {"red": 0, "amber+strict": 0, "amber": 1, "green": 2, "clear": 3}


def build_event(agg: Aggregate, prov: Provenance, opts: ShareOptions) -> MISPEvent:
    """The MISP event of one aggregate of alerts and the model that produced them."""
    event = MISPEvent()
    event.uuid = _uuid("event", opts.org_name, prov.ledger, prov.round, prov.model,
                       *(f"{g.family}|{g.source.value if g.source else ''}|{g.count}|{g.first}|{g.last}" for g in agg.groups))  # fmt: skip
    first = min(g.first for g in agg.groups if g.first is not None)
    event.info = (f"fedledger: {agg.alerts:,} flows flagged by {opts.org_name} with the global model of round "
                  f"{prov.round} ({prov.federation})")  # fmt: skip
    event.date = first.date()
    event.distribution = _DISTRIBUTION[opts.tlp.level]
    event.threat_level_id = 2  # medium: machine-generated detections
    event.analysis = 2  # complete
    event.add_tag(opts.tlp.misp_tag)
    for tag in sorted({t.misp_galaxy_tag for g in agg.groups for t in techniques(g.family)}):
        event.add_tag(tag)
    for g in agg.groups:
        event.add_object(_netflow(event.uuid, g, opts))
    for name, value in (("chain id", prov.chain_id), ("ledger", prov.ledger), ("round", prov.round),
                        ("global model", prov.model), ("descriptor", prov.descriptor), ("federation", prov.federation),
                        ("audited by the sharer", "yes" if prov.audited else "no")):  # fmt: skip
        attr = event.add_attribute("text", str(value), category="Other", to_ids=False, comment=f"fedledger provenance: {name}")
        attr.uuid = _uuid(event.uuid, "provenance", name)
    return event


def event_json(event: MISPEvent) -> str:
    """The event as MISP JSON (``{"Event": {...}}``), as MISP exports and imports it."""
    return json.dumps({"Event": json.loads(event.to_json())}, indent=2, sort_keys=True)


def load_event(text: str) -> MISPEvent:
    """An event back from MISP JSON, through PyMISP's own loader."""
    event = MISPEvent()
    event.load(text)
    return event


def push(event: MISPEvent, url: str, key: str, *, timeout: float = 30.0, verify_tls: bool = True) -> str:
    """Add ``event`` to the MISP instance at ``url``; returns the new event's id."""
    from pymisp import PyMISP
    from pymisp.exceptions import PyMISPError

    check_url(url, "MISP")
    try:
        misp = PyMISP(url, key, ssl=verify_tls, timeout=(min(10.0, timeout), timeout),
                      https_adapter=BoundedAdapter(timeout=timeout))  # fmt: skip
        answer = misp.add_event(event)
    except PyMISPError as exc:
        raise _misp_error(url, str(exc).replace(key, "<key>")) from None
    except Exception as exc:  # requests' errors, raised while PyMISP talks to the server
        raise _misp_error(url, f"{type(exc).__name__}: {exc}".replace(key, "<key>")) from None
    if isinstance(answer, dict) and answer.get("errors"):
        raise ShareRejected(f"MISP at {url} refused the event: {str(answer['errors'])[:300]}",
                            hint="an event with this uuid may already exist there (the same alerts were pushed before)")  # fmt: skip
    got = answer.get("Event", {}).get("id") if isinstance(answer, dict) else getattr(answer, "id", None)
    return str(got or "")


def _misp_error(url: str, detail: str) -> ShareError:
    low = detail.lower()
    if "403" in low or "401" in low or "authentication" in low or "authorization" in low:
        return ShareAuthError(f"MISP at {url} refused the key", hint="check --misp-key-file (an automation key of a user who may add events)")
    return ShareUnavailable(f"cannot reach MISP at {url}: {detail[:200]}", hint="check --misp-url and that the server is up")


def _netflow(event_uuid: str, g: AlertGroup, opts: ShareOptions) -> MISPObject:
    obj = MISPObject("netflow", standalone=False)
    key = f"{g.family}|{g.source.value if g.source else ''}"
    obj.uuid = _uuid(event_uuid, "netflow", key)
    tags = [t.misp_galaxy_tag for t in techniques(g.family)]
    public = [d for d in g.destinations.values() if not d.pseudonym]

    def add(relation: str, value: Any, **kw: Any) -> MISPAttribute:
        attr = obj.add_attribute(relation, value=value, **kw)
        attr.uuid = _uuid(obj.uuid, relation, value)
        return attr

    if g.source is not None and not g.source.pseudonym:
        src = add("ip-src", g.source.value, to_ids=g.confidence >= opts.indicator_confidence)
        for tag in tags:
            src.add_tag(tag)
    if len(public) == 1 and not g.more_destinations:
        add("ip-dst", public[0].value, to_ids=False)
    if len(g.dst_ports) == 1 and not g.more_ports:
        add("dst-port", next(iter(g.dst_ports)), to_ids=False)
    if len(g.protocols) == 1:
        add("protocol", next(iter(g.protocols)).upper())
    add("first-packet-seen", g.first)
    add("last-packet-seen", g.last)
    add("flow-count", g.count)
    notes = [f"fedledger family {g.family}", f"mean confidence {g.confidence:.3f}"]
    if g.source is not None and g.source.pseudonym:
        notes.append(f"source: internal host {g.source.value} (pseudonym)")
    hidden = [d.value for d in g.destinations.values() if d.pseudonym]
    if hidden:
        notes.append("destinations: internal hosts " + ", ".join(hidden) + " (pseudonyms)")
    if len(public) > 1 or g.more_destinations:
        notes.append("destinations: " + ", ".join(d.value for d in public) + (" and more" if g.more_destinations else ""))
    obj.comment = "; ".join(notes)
    return obj


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, chr(31).join(map(str, parts))))
