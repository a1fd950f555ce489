"""Alerts folded into groups, one per shared source address and family.

A million alerts from one scan are one group: how many flows, first and last seen, the
mean and highest confidence, and a bounded sample of what they were sent to. Memory is
bounded too: past ``max_groups`` groups, alerts from further sources are counted in
their family's group without a source (``folded_sources`` says how many alerts were).
Alerts predicted ``normal`` (written with ``detect --all``) are not threats and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fedledger.intel.alerts import Alert
from fedledger.intel.errors import AlertsError
from fedledger.intel.redact import Redactor, SharedAddress
from flows.taxonomy import NORMAL

MAX_GROUPS = 100_000
MAX_SAMPLES = 16  # distinct destinations / ports / protocols kept per group


@dataclass
class AlertGroup:
    family: str
    source: SharedAddress | None
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    confidence_sum: float = 0.0
    confidence_max: float = 0.0
    destinations: dict[str, SharedAddress] = field(default_factory=dict)  # value -> address, at most MAX_SAMPLES
    dst_ports: set[int] = field(default_factory=set)
    protocols: set[str] = field(default_factory=set)
    more_destinations: bool = False
    more_ports: bool = False

    @property
    def confidence(self) -> float:
        """Mean confidence of the group's alerts."""
        return self.confidence_sum / self.count if self.count else 0.0

    def add(self, alert: Alert, dst: SharedAddress | None) -> None:
        self.count += 1
        self.first = alert.time if self.first is None or alert.time < self.first else self.first
        self.last = alert.time if self.last is None or alert.time > self.last else self.last
        self.confidence_sum += alert.confidence
        self.confidence_max = max(self.confidence_max, alert.confidence)
        if dst is not None and dst.value not in self.destinations:
            if len(self.destinations) < MAX_SAMPLES:
                self.destinations[dst.value] = dst
            else:
                self.more_destinations = True
        if alert.dst_port is not None and alert.dst_port not in self.dst_ports:
            if len(self.dst_ports) < MAX_SAMPLES:
                self.dst_ports.add(alert.dst_port)
            else:
                self.more_ports = True
        if alert.protocol and len(self.protocols) < MAX_SAMPLES:
            self.protocols.add(alert.protocol)


@dataclass
class Aggregate:
    """The groups of one alerts file, and the one model (round, CID) that produced them."""

    groups: list[AlertGroup]
    model: str
    round: int
    alerts: int  # threat alerts read (normal ones excluded)
    folded_sources: int = 0


def aggregate(alerts: Iterable[Alert], redactor: Redactor, *, max_groups: int = MAX_GROUPS) -> Aggregate:
    """Group ``alerts`` per (shared source address, family), in a deterministic order."""
    groups: dict[tuple[str, str | None], AlertGroup] = {}
    model: tuple[str, int] | None = None
    total = folded = 0
    for a in alerts:
        if model is None:
            model = (a.model, a.round)
        elif (a.model, a.round) != model:
            raise AlertsError(
                f"alerts from more than one model: round {model[1]} ({model[0]}) and round {a.round} ({a.model})",
                hint="share the alerts of each `fedledger detect` run separately",
            )
        if a.family == NORMAL:
            continue
        total += 1
        src = redactor.shared(a.src_ip)
        key = (a.family, src.value if src else None)
        group = groups.get(key)
        if group is None and src is not None and len(groups) >= max_groups:
            key, src = (a.family, None), None
            group = groups.get(key)
            folded += 1
        if group is None:
            group = groups[key] = AlertGroup(a.family, src)
        group.add(a, redactor.shared(a.dst_ip))
    if model is None or not total:
        raise AlertsError("the alerts file holds no threat alerts", hint="nothing to share: `fedledger detect` found no threat")
    ordered = sorted(groups.values(), key=lambda g: (g.family, g.source is None, g.source.value if g.source else ""))
    return Aggregate(ordered, model[0], model[1], total, folded)
