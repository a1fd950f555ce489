"""Alerts as a STIX 2.1 bundle, built with the ``stix2`` library.

One bundle holds: the TLP 2.0 marking definition every other object carries; the
sharing organisation's ``identity``; one ``attack-pattern`` per family seen, with its
MITRE ATT&CK references (:mod:`fedledger.intel.attack_map`); per group of alerts (one
shared source address and family, :mod:`fedledger.intel.aggregate`) the ``ipv4-addr`` /
``ipv6-addr`` and ``network-traffic`` observables, an ``observed-data`` with
``number_observed`` and first/last seen, and a ``sighting`` of the family's attack
pattern by the organisation; an ``indicator`` (with an ``indicates`` relationship) for a
source address whose mean confidence reaches the threshold; and a ``note`` with the
provenance of the model (chain id, ledger, round, model and descriptor CIDs).

Every id is derived from content (uuid5 under one namespace; observables get the
deterministic ids STIX defines for them) and every timestamp from the alerts, so sharing
the same alerts again gives the same objects, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stix2

from fedledger.intel.aggregate import Aggregate, AlertGroup
from fedledger.intel.alerts import utc_stamp
from fedledger.intel.attack_map import mapping_for
from fedledger.intel.provenance import Provenance, verify_command
from fedledger.intel.redact import SharedAddress
from fedledger.intel.share_options import ShareOptions

NAMESPACE = uuid.UUID("4f1c3a52-8f0e-5d8b-9a63-6a1f3f0c2d11")
# Objects whose content depends only on the organisation's name or on this build's ATT&CK
# table are dated once, so each keeps one id and one version.
PRODUCER_EPOCH = "2026-12-01T00:00:00.000Z"
MAX_NUMBER_OBSERVED = 999_999_999  # STIX's bound on number_observed and count
# Warnings stix2-validator gives these bundles by design (SHOULD-level): ids are uuid5 (content-derived,
# for determinism) not uuid4; ATT&CK references carry a URL without a hash; an aggregate network-traffic
# has no single port pair.
EXPECTED_WARNINGS = frozenset({"103", "301", "302"})


def build_bundle(agg: Aggregate, prov: Provenance, opts: ShareOptions) -> stix2.Bundle:
    """The STIX 2.1 bundle of one aggregate of alerts and the model that produced them."""
    marking = stix2.MarkingDefinition(**opts.tlp.marking_definition())
    marks = [marking.id]
    identity = stix2.Identity(
        id=_id("identity", opts.org_name), name=opts.org_name, identity_class="organization",
        created=PRODUCER_EPOCH, modified=PRODUCER_EPOCH, object_marking_refs=marks,
    )  # fmt: skip
    common = {"created_by_ref": identity.id, "object_marking_refs": marks}
    patterns = {f: _attack_pattern(f, identity.id, common) for f in sorted({g.family for g in agg.groups})}
    objects: dict[str, Any] = {marking.id: marking, identity.id: identity, **{p.id: p for p in patterns.values()}}
    shared: list[str] = []
    for g in agg.groups:
        for obj in _group_objects(g, patterns[g.family], identity.id, prov, opts, common):
            objects.setdefault(obj.id, obj)  # one observable may belong to several groups
            if obj.id.split("--")[0] not in _OBSERVABLES:
                shared.append(obj.id)
    last = max(g.last for g in agg.groups if g.last is not None)
    note = _provenance_note(prov, agg, shared, _ts(last), common)
    objects[note.id] = note
    ids = sorted(objects)
    return stix2.Bundle(
        id=_id("bundle", hashlib.sha256("\n".join(ids).encode()).hexdigest()),
        objects=[objects[i] for i in ids],
    )


def bundle_text(bundle: stix2.Bundle) -> str:
    """The bundle as JSON text (keys in stix2's order, compact)."""
    return bundle.serialize()


@dataclass(frozen=True)
class Validation:
    errors: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors

    def unexpected_warnings(self) -> list[str]:
        return [w for w in self.warnings if _warning_code(w) not in EXPECTED_WARNINGS]


def validate(text: str) -> Validation:
    """Run stix2-validator (STIX 2.1) on a bundle's JSON text."""
    from stix2validator import ValidationOptions, validate_parsed_json

    results = validate_parsed_json(json.loads(text), ValidationOptions(version="2.1"))
    errors: list[str] = []
    warnings: list[str] = []
    for r in results if isinstance(results, list) else [results]:
        errors += [str(e) for e in (r.errors or [])]
        warnings += [str(w) for w in (r.warnings or [])]
        if not r.is_valid and not r.errors:
            errors.append(f"{r.object_id}: stix2-validator found it invalid")
    return Validation(errors, warnings)


# -- the objects --------------------------------------------------------------------------

_OBSERVABLES = {"ipv4-addr", "ipv6-addr", "network-traffic"}


def _attack_pattern(family: str, identity: str, common: dict[str, Any]) -> stix2.AttackPattern:
    m = mapping_for(family)
    refs = [{"source_name": "mitre-attack", "external_id": t.id, "url": t.url} for t in m.techniques]
    refs.append({"source_name": "fedledger-taxonomy", "external_id": family,
                 "description": "attack family of the federation's flow taxonomy"})  # fmt: skip
    return stix2.AttackPattern(
        id=_id("attack-pattern", identity, family), name=f"{m.title} ({family})",
        description=f"Network flows the federated model classifies as {family}. ATT&CK: {m.note}.",
        external_references=refs, created=PRODUCER_EPOCH, modified=PRODUCER_EPOCH, **common,
    )  # fmt: skip


def _address(a: SharedAddress, marks: list[str]) -> stix2.IPv4Address | stix2.IPv6Address:
    cls = stix2.IPv4Address if a.version == 4 else stix2.IPv6Address
    return cls(value=a.value, object_marking_refs=marks)


def _group_objects(
    g: AlertGroup, pattern: stix2.AttackPattern, identity: str, prov: Provenance, opts: ShareOptions,
    common: dict[str, Any],
) -> Iterable[Any]:  # fmt: skip
    marks = common["object_marking_refs"]
    first, last = _ts(g.first), _ts(g.last)
    count = min(g.count, MAX_NUMBER_OBSERVED)
    confidence = round(100 * g.confidence)
    src = _address(g.source, marks) if g.source is not None and not g.source.pseudonym else None
    dsts = [_address(d, marks) for d in g.destinations.values() if not d.pseudonym]
    observables: list[Any] = [o for o in (src, *dsts) if o is not None]
    dst_ref = dsts[0].id if len(dsts) == 1 and not g.more_destinations else None
    if src is not None or dst_ref is not None:
        version = (src or dsts[0]).value.count(":") and 6 or 4
        traffic: dict[str, Any] = {"protocols": sorted(g.protocols) or [f"ipv{version}"]}
        if src is not None:
            traffic["src_ref"] = src.id
        if dst_ref is not None:
            traffic["dst_ref"] = dst_ref
        if len(g.dst_ports) == 1 and not g.more_ports:
            traffic["dst_port"] = next(iter(g.dst_ports))
        observables.append(stix2.NetworkTraffic(object_marking_refs=marks, **traffic))
    yield from observables
    key = (prov.model, g.family, g.source.value if g.source else "", g.count, first, last)
    observed = None
    if observables:
        observed = stix2.ObservedData(
            id=_id("observed-data", identity, *key), first_observed=first, last_observed=last, number_observed=count,
            object_refs=[o.id for o in observables], confidence=confidence, created=last, modified=last, **common,
        )  # fmt: skip
        yield observed
    yield stix2.Sighting(
        id=_id("sighting", identity, *key), sighting_of_ref=pattern.id, where_sighted_refs=[identity],
        observed_data_refs=[observed.id] if observed else None, count=count, first_seen=first, last_seen=last,
        confidence=confidence, description=_describe(g), created=last, modified=last, **common,
    )  # fmt: skip
    if src is not None and g.confidence >= opts.indicator_confidence:
        kind = "ipv4-addr" if g.source.version == 4 else "ipv6-addr"  # type: ignore[union-attr]
        indicator = stix2.Indicator(
            id=_id("indicator", identity, prov.model, g.family, src.value), name=f"{g.family} from {src.value}",
            description=f"Source of {g.count:,} flows the federated model classifies as {g.family} "
            f"(mean confidence {g.confidence:.3f}).",
            pattern=f"[{kind}:value = '{src.value}']", pattern_type="stix", valid_from=first,
            indicator_types=["malicious-activity"], confidence=confidence, created=last, modified=last, **common,
        )  # fmt: skip
        yield indicator
        yield stix2.Relationship(
            id=_id("relationship", indicator.id, "indicates", pattern.id), relationship_type="indicates",
            source_ref=indicator.id, target_ref=pattern.id, created=last, modified=last, **common,
        )  # fmt: skip


def _describe(g: AlertGroup) -> str:
    parts = [f"{g.count:,} flows classified as {g.family}, mean confidence {g.confidence:.3f}, highest {g.confidence_max:.3f}"]
    if g.source is None:
        parts.append("source address not shared")
    elif g.source.pseudonym:
        parts.append(f"source: internal host {g.source.value} (pseudonym)")
    hidden = [d.value for d in g.destinations.values() if d.pseudonym]
    if hidden:
        parts.append("destinations: internal hosts " + ", ".join(hidden) + " (pseudonyms)")
    if g.more_destinations:
        parts.append(f"more than {len(g.destinations)} destinations")
    if g.dst_ports:
        parts.append("destination ports " + ", ".join(map(str, sorted(g.dst_ports))) + (" and more" if g.more_ports else ""))
    return "; ".join(parts)


def _provenance_note(prov: Provenance, agg: Aggregate, refs: list[str], when: str, common: dict[str, Any]) -> stix2.Note:
    verify = verify_command(prov)
    content = "\n".join([
        f"Detections by the global model of round {prov.round} of the federation '{prov.federation}'"
        + (" (the genesis model)" if prov.round == 0 else "") + ".",
        f"chain id: {prov.chain_id}",
        f"ledger: {prov.ledger}",
        f"round: {prov.round}",
        f"global model: {prov.model}",
        f"descriptor: {prov.descriptor}",
        f"schema: {prov.schema_id}",
        f"alerts: {agg.alerts:,} in {len(agg.groups):,} groups",
        f"audited by the sharer: {'yes' if prov.audited else 'no'}",
        f"verify: {verify}",
    ])  # fmt: skip
    external = [
        {"source_name": "fedledger-ledger", "external_id": f"eip155:{prov.chain_id}:{prov.ledger}",
         "description": "the FederationLedger contract (CAIP-10 account id)"},
        {"source_name": "fedledger-round", "external_id": str(prov.round)},
        {"source_name": "fedledger-global-model", "external_id": prov.model, "description": "CID of the global model"},
        {"source_name": "fedledger-descriptor", "external_id": prov.descriptor, "description": "CID of the federation descriptor"},
    ]  # fmt: skip
    payload = json.dumps([prov.to_dict(), sorted(refs)], sort_keys=True)
    return stix2.Note(
        id=_id("note", hashlib.sha256(payload.encode()).hexdigest()),
        abstract=f"fedledger provenance: round {prov.round} of ledger {prov.ledger} on chain {prov.chain_id}",
        content=content, object_refs=sorted(refs) or [common["created_by_ref"]], external_references=external,
        created=when, modified=when, **common,
    )  # fmt: skip


def _id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, kind + chr(31) + chr(31).join(map(str, parts)))}"


def _ts(when: datetime | None) -> str:
    assert when is not None
    return utc_stamp(when)


def _warning_code(warning: str) -> str:
    start = warning.find("{")
    return warning[start + 1 : warning.find("}", start)] if start >= 0 else ""
