"""The operator options of the daemons (`coordinator run`, `participant run`): --metrics-port, --log-format."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from fedledger.cli.common import console, setup_logging
from fedledger.config import ConfigError

MetricsPortOpt = typer.Option(
    None, "--metrics-port", help="Serve Prometheus /metrics and /healthz on 127.0.0.1:PORT (loopback only; off by default)."
)
LogFormatOpt = typer.Option("text", "--log-format", help="text, or json: one JSON object a line carrying the round id.")
LOG_FORMATS = ("text", "json")


@contextmanager
def operated(role: str, *, metrics_port: int | None, log_format: str, verbose: bool) -> Iterator:  # type: ignore[type-arg]
    """Set up logging and, when asked, the metrics endpoint; yields the event callback that feeds both."""
    from fedledger.ops import fan_out
    from fedledger.ops.logs import RoundTracker, json_handler

    if log_format not in LOG_FORMATS:
        raise ConfigError(f"unknown --log-format {log_format!r}", hint=f"use one of {', '.join(LOG_FORMATS)}")
    tracker = RoundTracker()
    setup_logging(verbose, json_handler(tracker, sys.stderr) if log_format == "json" else None)
    if metrics_port is None:
        yield tracker.on_event
        return
    from fedledger.ops.metrics import ServiceMetrics
    from fedledger.ops.server import MetricsServer

    metrics = ServiceMetrics(role)
    with MetricsServer(metrics, metrics_port) as server:
        console.print(f"{role}: metrics on {server.url}/metrics, health on {server.url}/healthz", highlight=False)
        yield fan_out(tracker.on_event, metrics.on_event)
