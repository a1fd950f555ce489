"""fedledger: blockchain-audited federated learning for cyber-threat intelligence.

This package holds the domain both the participant and the coordinator need:
flow data and feature schema, the model spec and file formats, configuration,
the CLI and the audit.
"""

__version__ = "0.1.0"
