"""JSON-lines logs (``--log-format json``): one object a line, with the round the daemon is working on.

The round comes from the service's events (the services log plain messages and know no
log format): every event that names a round sets it for the log lines that follow.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fedledger.ops import round_of

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RoundTracker:
    """The round of the latest event; ``on_event`` is an event callback."""

    def __init__(self) -> None:
        self.round: int | None = None

    def on_event(self, kind: str, info: dict) -> None:
        round_id = round_of(info)
        if round_id is not None:
            self.round = round_id


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "round", ...}``; extra fields given to the logger are kept."""

    def __init__(self, tracker: RoundTracker | None = None) -> None:
        super().__init__()
        self.tracker = tracker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "round": self.tracker.round if self.tracker is not None else None,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["error"] = record.exc_info[1].__class__.__name__ if record.exc_info[1] else None
        return json.dumps(out, ensure_ascii=False)


def json_handler(tracker: RoundTracker | None, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(tracker))
    return handler
