"""The FederationLedger contract: its source, committed build, local chain and typed client.

- :mod:`contracts.build` — reproducible compilation and the committed artifact;
- :mod:`contracts.anvil` — :class:`~contracts.anvil.LocalAnvil`, a local chain for demo and tests;
- :mod:`contracts.client` — :class:`~contracts.client.Ledger`, the typed client, over
  :mod:`contracts.transport` (provider, typed RPC errors, sending), :mod:`contracts.nonces`,
  :mod:`contracts.abi` (selectors, revert decoding), :mod:`contracts.events` (paged logs)
  and :mod:`contracts.values` (argument checks);
- :mod:`contracts.history` — what the chain says, assembled per question (a round's record,
  a participant's history, the model lineage);
- :mod:`contracts.errors` — typed failures, one class per custom error of the contract.

It imports nothing of the project's but :mod:`faults`.
"""
