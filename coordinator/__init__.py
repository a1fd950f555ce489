"""The coordinator role: opens rounds, fetches and derives them, publishes and finalises on chain.

All of a round's decisions are :func:`federation.rounds.derive.derive_round`'s, the same
function the audit re-runs; this package holds only the service that drives the chain and
the store. It never imports the participant role.
"""
