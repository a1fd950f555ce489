"""The choices one ``fedledger share`` makes, common to STIX and MISP."""

from __future__ import annotations

from dataclasses import dataclass

from fedledger.intel.errors import IntelError
from fedledger.intel.tlp import Tlp


@dataclass(frozen=True)
class ShareOptions:
    org_name: str
    tlp: Tlp
    indicator_confidence: float = 0.9  # mean confidence (0..1) a source needs to become an indicator

    def __post_init__(self) -> None:
        if not self.org_name.strip():
            raise IntelError("the organisation's name is empty", hint="pass --org-name 'Your Organisation'")
        if not 0.0 <= self.indicator_confidence <= 1.0:
            raise IntelError(f"--indicator-confidence {self.indicator_confidence} is not in 0..1")
