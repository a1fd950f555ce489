"""The core every role and the auditor share: what a federation is and how one round is derived.

- :mod:`federation.model`: the model spec, the canonical model file, the torch MLP;
- :mod:`federation.updates`: the update file (header, codec, zstd frame), encoded and decoded;
- :mod:`federation.privacy`: the DP vocabulary and what a mechanism costs, composed;
- :mod:`federation.descriptor`, :mod:`federation.flowset`, :mod:`federation.manifest`: the
  federation descriptor, flow sets, and the round manifest as a type;
- :mod:`federation.training`: local training (members run it; the audit re-runs a pretraining);
- :mod:`federation.genesis`: the genesis model a descriptor commits to: seeded, pretrained on a
  public flow set, or a global model of a parent federation;
- :mod:`federation.fetch`: fetching an update within a byte limit and a deadline;
- :mod:`federation.rounds`: the pure round derivation (validation, defences, strategies,
  scoring) that the coordinator runs and the audit re-runs.

It stands on the leaves (:mod:`ipfs`, :mod:`contracts`) and the flow data (:mod:`flows`),
and never imports a role or an app.
"""
