"""Typed failures of the flow-data layer.

Every one names what is wrong (file, line, column, value) and says what to do,
so a participant can fix its export without reading our source.
"""

from __future__ import annotations

from pathlib import Path

from faults import FedLedgerError


class DataError(FedLedgerError):
    """Any problem with flow data, a feature schema or a split."""


class MalformedRow(DataError):
    """A row of a flow file that cannot become a correct feature vector."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(
            f"{self.path}:{line}: malformed row: {reason}",
            hint="fix or remove the row, or load with on_bad_row='skip' to skip and count bad rows",
        )


class UnknownLabel(DataError):
    """A label that no taxonomy table knows."""

    def __init__(self, label: str, source: str, where: str | None = None) -> None:
        self.label = label
        self.source = source
        at = f"{where}: " if where else ""
        super().__init__(
            f"{at}label {label!r} is not a known {source} attack name",
            hint="add it to the mapping table in fedledger/data/taxonomy.py, or load with "
            "unknown_labels='unknown' to keep such rows under the family 'unknown'",
        )


class SchemaError(DataError):
    """Features, statistics or a normaliser that do not fit a schema."""


class PartitionError(DataError):
    """A split that cannot be made as asked."""
