"""The audit explorer: a read-only web app over one federation's chain and store.

A :class:`~fedledger.explorer.index.FederationIndex` follows the chain (new rounds, their
manifests) and audits each round once with :class:`fedledger.audit.Auditor`, keeping the
verdicts in a :class:`~fedledger.explorer.cache.VerdictCache`; :mod:`~fedledger.explorer.views`
turns what it holds into the JSON of each page; :mod:`~fedledger.explorer.app` serves that as
JSON and as server-rendered pages; :mod:`~fedledger.explorer.server` runs it on loopback.
"""

from fedledger.explorer.server import (
    ExplorerSettings,
    RunningExplorer,
    explore_demo,
    serve_until_interrupted,
    start_explorer,
)

__all__ = ["ExplorerSettings", "RunningExplorer", "explore_demo", "serve_until_interrupted", "start_explorer"]
