"""Alerts: one JSON object per line, one line per flow the model did not call normal.

A line holds, in this order (a field the flow file has no value for is left out)::

    {"row": 1042, "file": "thursday.csv", "src_ip": "203.0.113.7", "src_port": 51234,
     "dst_ip": "10.0.0.5", "dst_port": 80, "protocol": "tcp", "family": "dos",
     "confidence": 0.998312, "model": "Qm…", "round": 4, "time": "2026-01-05T10:00:00.123Z"}

``row`` is the flow's line in its file (for flow sets and in-memory data, its 1-based
row); ``family`` the predicted class, ``confidence`` its softmax probability; ``model``
and ``round`` name the global model on chain; ``time`` is when the flow was scored
(UTC). Alerts stay inside the organisation: ``fedledger share`` decides what of them
leaves it.

Writing is vectorised per chunk (:func:`format_lines`); reading (:func:`read_alerts`)
checks every field and bounds each line, since an alerts file may come from anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fedledger.intel.errors import AlertsError
from flows.schema import CodedColumn

MAX_LINE_BYTES = 16 << 10
ENDPOINT_ORDER = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol")
_PROTOCOL_NUMBERS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp", "132": "sctp", "47": "gre"}


@dataclass(frozen=True, slots=True)
class Alert:
    row: int
    family: str
    confidence: float
    model: str
    round: int
    time: datetime
    file: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    protocol: str | None = None


def utc_stamp(when: datetime) -> str:
    """``when`` as the alerts (and STIX) write time: UTC, milliseconds, ``Z``."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def format_lines(
    rows: np.ndarray,
    pred: np.ndarray,
    conf: np.ndarray,
    classes: Sequence[str],
    *,
    model: str,
    round_id: int,
    time: str,
    file: str | None = None,
    endpoints: Mapping[str, np.ndarray | CodedColumn] | None = None,
) -> str:
    """The alert lines of one chunk (``rows``, ``pred`` and ``conf`` already selected)."""
    if not len(rows):
        return ""
    family = np.asarray([json.dumps(c) for c in classes], dtype=object)
    fragments = [_fragments(name, values) for name in ENDPOINT_ORDER
                 if (values := (endpoints or {}).get(name)) is not None]  # fmt: skip
    ends = list(map("".join, zip(*fragments))) if len(fragments) > 1 else fragments[0] if fragments else [""] * len(rows)
    head = '{"row":%d' + (f',"file":{json.dumps(file)}' if file else "").replace("%", "%%")
    tail = f',"model":{json.dumps(model)},"round":{int(round_id)},"time":"{time}"}}\n'.replace("%", "%%")
    template = head + '%s,"family":%s,"confidence":%.6f' + tail  # one formatting operation per line
    return "".join([template % t for t in zip(rows.tolist(), ends, family[pred].tolist(), conf.tolist())])


def _fragments(name: str, values: np.ndarray | CodedColumn) -> list[str]:
    """``,"name":value`` per row (empty where the cell is empty or not a valid value), each distinct value escaped once."""
    if isinstance(values, CodedColumn):
        uniq, inverse = [str(v) for v in values.values], values.codes
    else:
        uniq, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
        uniq = uniq.tolist()
    out = []
    for u in uniq:
        v = _clean(name, u)
        out.append("" if v is None else f',"{name}":{json.dumps(v)}')
    table = np.asarray(out, dtype=object)
    return table[inverse.reshape(-1)].tolist()


def _clean(name: str, cell: str) -> str | int | None:
    cell = cell.strip()
    if not cell or cell == "-" or len(cell) > 64:
        return None
    if name.endswith("_port"):
        try:
            port = int(cell, 16) if cell.lower().startswith("0x") else int(cell)  # UNSW-NB15 writes some ports in hex
        except ValueError:
            return None
        return port if 0 <= port <= 65535 else None
    if name == "protocol":
        return _PROTOCOL_NUMBERS.get(cell, cell.lower())
    return cell


def read_alerts(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Alert]:
    """Every alert of a JSON-lines file, checked field by field; blank lines are ignored."""
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise AlertsError(f"cannot open alerts file {path}: {exc.strerror or exc}", hint="pass the file `fedledger detect` wrote") from None
    times: dict[str, datetime] = {}  # a chunk's alerts share one time: parse each once
    with fh:
        for line_no, raw in enumerate(iter(lambda: fh.readline(max_line_bytes + 1), b""), start=1):
            if len(raw) > max_line_bytes:
                raise AlertsError(f"{path}:{line_no}: line longer than {max_line_bytes:,} bytes", hint="this is not an alerts file")
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise AlertsError(f"{path}:{line_no}: not JSON: {exc}", hint="this is not an alerts file") from None
            yield _alert(obj, path, line_no, times)


def _alert(obj: object, path: Path, line_no: int, times: dict[str, datetime]) -> Alert:
    where = f"{path}:{line_no}"
    if not isinstance(obj, dict):
        raise AlertsError(f"{where}: an alert must be a JSON object")
    f = _Fields(obj, where)
    confidence = f.number("confidence")
    if not 0.0 <= confidence <= 1.0:
        raise AlertsError(f"{where}: confidence {confidence} is not a probability")
    round_id = f.integer("round")
    if round_id < 0:
        raise AlertsError(f"{where}: round {round_id} is negative")
    stamp = f.text("time", limit=40)
    when = times.get(stamp)
    if when is None:
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            raise AlertsError(f"{where}: time {stamp!r} is not an ISO 8601 timestamp") from None
        if when.tzinfo is None:
            raise AlertsError(f"{where}: time {stamp!r} has no time zone")
        when = when.astimezone(timezone.utc)
        if len(times) > 4096:
            times.clear()
        times[stamp] = when
    return Alert(
        row=f.integer("row"), family=f.text("family", limit=64), confidence=confidence,
        model=f.text("model", limit=128), round=round_id, time=when,
        file=f.optional_text("file", limit=1024), src_ip=f.optional_text("src_ip", limit=64),
        src_port=f.port("src_port"), dst_ip=f.optional_text("dst_ip", limit=64), dst_port=f.port("dst_port"),
        protocol=f.optional_text("protocol", limit=32),
    )  # fmt: skip


class _Fields:
    """Typed access to one alert's fields, naming the line in every error."""

    def __init__(self, obj: dict, where: str) -> None:
        self.obj = obj
        self.where = where

    def _get(self, name: str) -> object:
        v = self.obj.get(name)
        if v is None:
            raise AlertsError(f"{self.where}: alert lacks {name!r}", hint="alerts are written by `fedledger detect`")
        return v

    def integer(self, name: str) -> int:
        v = self._get(name)
        if type(v) is not int:
            raise AlertsError(f"{self.where}: {name!r} must be an integer, not {v!r}")
        return v

    def number(self, name: str) -> float:
        v = self._get(name)
        if type(v) not in (int, float) or not math.isfinite(v):  # type: ignore[arg-type]
            raise AlertsError(f"{self.where}: {name!r} must be a finite number, not {v!r}")
        return float(v)  # type: ignore[arg-type]

    def text(self, name: str, *, limit: int) -> str:
        v = self._get(name)
        if not isinstance(v, str) or not v or len(v) > limit:
            raise AlertsError(f"{self.where}: {name!r} must be a non-empty string of at most {limit} characters")
        return v

    def optional_text(self, name: str, *, limit: int) -> str | None:
        return None if self.obj.get(name) is None else self.text(name, limit=limit)

    def port(self, name: str) -> int | None:
        if self.obj.get(name) is None:
            return None
        p = self.integer(name)
        if not 0 <= p <= 65535:
            raise AlertsError(f"{self.where}: {name} {p} is not a port")
        return p
