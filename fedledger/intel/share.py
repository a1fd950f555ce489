"""From an alerts file to what is shared: read, redact, aggregate, check the provenance, export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.client import Ledger
from fedledger.intel.aggregate import MAX_GROUPS, Aggregate, aggregate
from fedledger.intel.alerts import read_alerts
from fedledger.intel.errors import IntelError
from fedledger.intel.provenance import Provenance, VerifiedModel, resolve_model
from fedledger.intel.redact import Redactor
from fedledger.intel.share_options import ShareOptions
from ipfs import ContentStore


def load_aggregate(path: Path, redactor: Redactor, *, max_groups: int = MAX_GROUPS) -> Aggregate:
    """The alerts of ``path``, redacted and grouped per shared source and family (one pass)."""
    return aggregate(read_alerts(path), redactor, max_groups=max_groups)


def checked_model(agg: Aggregate, ledger: Ledger, store: ContentStore, descriptor_cid: str) -> VerifiedModel:
    """The alerts' model, after checking on chain that it is round ``agg.round``'s global model."""
    return resolve_model(ledger, store, descriptor_cid, round_id=agg.round, model_cid=agg.model)


@dataclass(frozen=True)
class Written:
    path: Path
    objects: int
    warnings: int = 0


def write_stix(agg: Aggregate, prov: Provenance, opts: ShareOptions, out: Path, *, check: bool = True) -> Written:
    """Build the STIX bundle, refuse it if stix2-validator finds an error, write it."""
    from fedledger.intel.stix import build_bundle, bundle_text, validate

    bundle = build_bundle(agg, prov, opts)
    text = bundle_text(bundle)
    warnings = 0
    if check:
        result = validate(text)
        if not result.ok:
            raise IntelError(f"stix2-validator rejects the bundle: {result.errors[0]}",
                             hint="this is a bug in fedledger: report it with the alerts that produced it")  # fmt: skip
        warnings = len(result.unexpected_warnings())
    _write(out, text)
    return Written(out, len(bundle.objects), warnings)


def write_misp(agg: Aggregate, prov: Provenance, opts: ShareOptions, out: Path) -> tuple[Written, Any]:
    """Build the MISP event, check that PyMISP loads it back, write it; returns the event too."""
    from fedledger.intel.misp import build_event, event_json, load_event

    event = build_event(agg, prov, opts)
    text = event_json(event)
    back = load_event(text)
    if back.uuid != event.uuid or len(back.objects) != len(event.objects):
        raise IntelError("PyMISP does not load the event it built back", hint="this is a bug in fedledger: report it")
    _write(out, text + "\n")
    return Written(out, len(event.objects)), event


def _write(out: Path, text: str) -> None:
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise IntelError(f"cannot write {out}: {exc.strerror or exc}", hint="check the directory and its permissions") from None
