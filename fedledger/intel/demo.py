"""The demo's last step: detection on its test flows with the final global model, then sharing.

The demo's flows are synthetic and carry no addresses, so each test flow gets a synthetic,
deterministic (seeded) endpoint: attack flows come from a few sources per family in the
documentation ranges 198.51.100.0/24 and 203.0.113.0/24 (RFC 5737), normal flows from 32
addresses of 192.0.2.0/24; every flow goes to one of 40 internal hosts in 10.20.0.0/24 on a port
typical of its family. Internal destinations are dropped when shared, as by default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from contracts.client import Ledger
from fedledger.intel.detect import dataset_batches, detect
from fedledger.intel.provenance import resolve_model
from fedledger.intel.redact import Redactor
from fedledger.intel.share import load_aggregate, write_misp, write_stix
from fedledger.intel.share_options import ShareOptions
from fedledger.intel.tlp import tlp
from flows import FlowDataset
from ipfs import ContentStore

ALERTS, STIX, MISP = "alerts.jsonl", "bundle.json", "misp-event.json"
_PORTS = {"dos": (80,), "probe": tuple(range(1, 1025)), "bruteforce": (22, 21), "web": (80, 443), "botnet": (6667, 8080)}


def synthetic_endpoints(data: FlowDataset, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic src/dst addresses, destination ports and protocol for flows that have none."""
    rng = np.random.default_rng(seed)
    n = len(data)
    src = np.empty(n, dtype=object)
    port = np.empty(n, dtype=object)
    for k, name in enumerate(data.classes):
        rows = np.flatnonzero(data.labels == k)
        if k == 0:
            src[rows] = [f"192.0.2.{i}" for i in rng.integers(1, 33, rows.size)]
            port[rows] = [str(p) for p in rng.choice([80, 443, 53, 22, 25], rows.size)]
        else:
            net = "198.51.100" if k % 2 else "203.0.113"
            pool = [f"{net}.{10 * k + i}" for i in range(4)]  # a few sources per family
            src[rows] = [pool[i] for i in rng.integers(0, len(pool), rows.size)]
            port[rows] = [str(p) for p in rng.choice(_PORTS.get(name, (443,)), rows.size)]
    dst = np.asarray([f"10.20.0.{i}" for i in rng.integers(1, 41, n)], dtype=object)
    return {"src_ip": src, "dst_ip": dst, "dst_port": port, "protocol": np.full(n, "tcp", dtype=object)}


def demo_outputs(
    out: Path,
    ledger: Ledger,
    store: ContentStore,
    descriptor_cid: str,
    test: FlowDataset,
    *,
    org_name: str = "First Bank",
    audited: bool = False,
    seed: int = 0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Score ``test`` with the latest global model (verified on chain) and write alerts.jsonl,
    bundle.json (STIX 2.1) and misp-event.json into ``out``; returns what the report records.
    ``audited`` says the caller's audit of the federation passed (the provenance records it)."""
    console = console or Console(stderr=True)
    model = resolve_model(ledger, store, descriptor_cid)
    if audited:  # the caller has just audited every round, this model's included
        model = dataclasses.replace(model, provenance=dataclasses.replace(model.provenance, audited=True))
    with open(out / ALERTS, "w", encoding="utf-8") as sink:
        summary = detect(dataset_batches(test, endpoints=synthetic_endpoints(test, seed), file="test-flows"), model, sink)
    opts = ShareOptions(org_name, tlp("amber"), 0.9)
    result: dict[str, Any] = {
        "files": {"alerts": ALERTS}, "round": model.provenance.round, "model": model.provenance.model,
        "flows": summary.flows, "alerts": summary.alerts, "by_family": dict(sorted(summary.by_family.items())),
        "endpoints": "synthetic (see fedledger.intel.demo)",
    }  # fmt: skip
    if summary.alerts:
        agg = load_aggregate(out / ALERTS, Redactor())
        stix = write_stix(agg, model.provenance, opts, out / STIX)
        misp, _ = write_misp(agg, model.provenance, opts, out / MISP)
        result["files"].update(stix=STIX, misp=MISP)
        result.update(groups=len(agg.groups), stix_objects=stix.objects, misp_objects=misp.objects, tlp=opts.tlp.name)
    console.print(
        f"detection with round {model.provenance.round}'s model on {summary.flows:,} test flows: {summary.alerts:,} alerts; "
        f"wrote {', '.join(result['files'].values())}"
    )
    return result
