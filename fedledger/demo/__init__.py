"""The local demo: a whole federation on one machine, then the audit and a report.

- :mod:`fedledger.demo.run`: the orchestration (chain, store, organisations as processes, coordinator, audit);
- :mod:`fedledger.demo.report`: the tables it prints, report.md and the plots.
"""

from fedledger.demo.run import DemoOptions, OrgProcess, chain_args, run_demo

__all__ = ["DemoOptions", "OrgProcess", "chain_args", "run_demo"]
