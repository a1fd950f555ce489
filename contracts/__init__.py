"""The FederationLedger contract: its source, committed build, local chain and typed client.

- :mod:`contracts.build` — reproducible compilation and the committed artifact;
- :mod:`contracts.anvil` — :class:`~contracts.anvil.LocalAnvil`, a local chain for demo and tests;
- :mod:`contracts.client` — :class:`~contracts.client.Ledger`, the typed client;
- :mod:`contracts.audit` — audit queries (participant history, round record, lineage);
- :mod:`contracts.errors` — typed failures, one class per custom error of the contract.
"""
