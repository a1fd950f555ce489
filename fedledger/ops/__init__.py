"""What operators run the daemons with: Prometheus metrics and a health endpoint on loopback, JSON logs.

The services (``coordinator.service``, ``participant.service``) know none of this: they
report what they do through their ``on_event`` callbacks, and this package turns those
events into metrics and into the round id carried by every JSON log line.

- :mod:`fedledger.ops.metrics`: the counters, histogram and gauges, fed by service events;
- :mod:`fedledger.ops.server`: ``/metrics`` and ``/healthz`` over HTTP, bound to 127.0.0.1;
- :mod:`fedledger.ops.logs`: JSON-lines logging with the current round id.
"""

from collections.abc import Callable

EventHandler = Callable[[str, dict], None]


def fan_out(*handlers: EventHandler | None) -> EventHandler:
    """One ``on_event`` callback that calls each handler in turn."""
    chosen = [h for h in handlers if h is not None]

    def emit(kind: str, info: dict) -> None:
        for handler in chosen:
            handler(kind, info)

    return emit


def round_of(info: dict) -> int | None:
    """The round an event is about (the services name it ``round`` or, in a submission, ``round_id``)."""
    value = info.get("round", info.get("round_id"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None
