"""TLP 2.0 markings as STIX 2.1 marking definitions and as MISP tags.

STIX 2.1 predefines only TLP 1.0 (WHITE, GREEN, AMBER, RED: the ``stix2.TLP_*``
constants). TLP 2.0 is the OASIS extension definition
``extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d``, whose marking
definitions have fixed ids and a fixed ``created`` timestamp; a bundle carries the
marking definition it references, exactly as OASIS publishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedledger.intel.errors import IntelError

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_CREATED = "2022-10-01T00:00:00.000Z"


@dataclass(frozen=True)
class Tlp:
    """One TLP 2.0 level: its name, STIX marking-definition id and MISP tag."""

    level: str  # clear, green, amber, amber+strict, red
    marking_id: str

    @property
    def name(self) -> str:
        return f"TLP:{self.level.upper()}"

    @property
    def misp_tag(self) -> str:
        return f"tlp:{self.level}"

    def marking_definition(self) -> dict[str, Any]:
        """The marking-definition object as OASIS publishes it."""
        return {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": self.marking_id,
            "created": TLP2_CREATED,
            "name": self.name,
            "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": self.level}},
        }


LEVELS: dict[str, Tlp] = {
    t.level: t
    for t in (
        Tlp("clear", "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"),
        Tlp("green", "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"),
        Tlp("amber", "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"),
        Tlp("amber+strict", "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"),
        Tlp("red", "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"),
    )
}
DEFAULT = "amber"


def tlp(level: str) -> Tlp:
    """The TLP 2.0 level named ``level`` (case-insensitive, ``TLP:`` prefix allowed)."""
    key = level.strip().lower().removeprefix("tlp:")
    if key == "white":
        raise IntelError("TLP:WHITE is TLP 1.0; TLP 2.0 calls it TLP:CLEAR", hint="use --tlp clear")
    if key not in LEVELS:
        raise IntelError(f"unknown TLP level {level!r}", hint=f"use one of {', '.join(LEVELS)}")
    return LEVELS[key]
