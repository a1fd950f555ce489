"""Prometheus metrics of a coordinator or participant daemon, fed by the service's events.

Each daemon gets its own registry (so two in one process, as in the tests, never share
counts). The event names and payloads are the services' own:

| event | from | moves |
|---|---|---|
| ``opened`` | coordinator | rounds opened, gas (openRound), last round |
| ``fetching`` | coordinator | submissions (the round's count) |
| ``fetched`` | both | update fetch latency (coordinator: each update; participant: the base model) |
| ``finalized`` / ``aborted`` | coordinator | rounds finalised / aborted, gas, last round |
| ``submitted`` | participant | submissions, gas (submitUpdate), last round |
| ``retry`` / ``skipped`` | both | errors by kind (the exception's class) |
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from fedledger.ops import round_of

disable_created_metrics()  # the *_created series only add noise to every counter

FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_GAS_FUNCTION = {"opened": "openRound", "finalized": "finalizeRound", "aborted": "abortRound", "submitted": "submitUpdate"}


class ServiceMetrics:
    """The metrics of one daemon (``role``: coordinator or participant); ``on_event`` is its event callback."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rounds_opened = Counter("fedledger_rounds_opened", "Rounds this coordinator opened.", registry=r)
        self.rounds_finalized = Counter("fedledger_rounds_finalized", "Rounds this coordinator finalised.", registry=r)
        self.rounds_aborted = Counter("fedledger_rounds_aborted", "Rounds this coordinator aborted.", registry=r)
        self.submissions = Counter(
            "fedledger_submissions", "Updates submitted (participant) or collected for a round (coordinator).", registry=r
        )
        self.fetch_seconds = Histogram(
            "fedledger_update_fetch_seconds", "Seconds to fetch an update or base model from the store.",
            buckets=FETCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.gas_used = Counter("fedledger_gas_used", "Gas used by this daemon's transactions.", ["function"], registry=r)
        self.errors = Counter("fedledger_errors", "Failures the daemon retried or skipped, by kind.", ["kind"], registry=r)
        self.last_round = Gauge("fedledger_last_round_id", "The last round this daemon acted on.", registry=r)
        self.last_event = Gauge("fedledger_last_event_timestamp_seconds", "When the service last reported an event.", registry=r)

    def on_event(self, kind: str, info: dict) -> None:
        self.last_event.set(time.time())
        round_id = round_of(info)
        if kind in ("opened", "finalized", "aborted", "submitted") and round_id is not None:
            self.last_round.set(round_id)
        if kind == "opened":
            self.rounds_opened.inc()
        elif kind == "finalized":
            self.rounds_finalized.inc()
        elif kind == "aborted":
            self.rounds_aborted.inc()
        elif kind == "fetching":
            self.submissions.inc(int(info.get("count", 0)))
        elif kind == "submitted":
            self.submissions.inc()
        elif kind == "fetched" and isinstance(info.get("seconds"), (int, float)):
            self.fetch_seconds.observe(float(info["seconds"]))
        elif kind in ("retry", "skipped"):
            self.errors.labels(kind=str(info.get("kind") or "unknown")).inc()
        gas = info.get("gas", info.get("gas_used"))
        if kind in _GAS_FUNCTION and isinstance(gas, int) and gas > 0:
            self.gas_used.labels(function=_GAS_FUNCTION[kind]).inc(gas)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
