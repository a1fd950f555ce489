"""From the federation's model to shared threat intelligence.

``fedledger detect`` scores an organisation's flow files with a global model it has
verified against the chain (:mod:`fedledger.intel.model`, :mod:`fedledger.intel.detect`)
and writes alerts as JSON lines (:mod:`fedledger.intel.alerts`). ``fedledger share``
turns alerts into what other organisations import: a STIX 2.1 bundle
(:mod:`fedledger.intel.stix`), published to a TAXII 2.1 collection
(:mod:`fedledger.intel.taxii`), or a MISP event (:mod:`fedledger.intel.misp`). Alerts are
aggregated per source address and family first (:mod:`fedledger.intel.aggregate`), and
what leaves the organisation is decided by :mod:`fedledger.intel.redact`; every output
carries the provenance of the model that produced it, so a recipient can audit it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["demo_outputs"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one module of the package does not import stix2 and pymisp.
    if name == "demo_outputs":
        from fedledger.intel.demo import demo_outputs

        return demo_outputs
    raise AttributeError(name)
