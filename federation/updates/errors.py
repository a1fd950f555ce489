"""The one error every malformed update raises, with the reason code the manifest records."""

from __future__ import annotations

from faults import FedLedgerError


class InvalidUpdate(FedLedgerError):
    """An update that fails validation; ``reason`` is a short code recorded in the round manifest.

    Reason codes: ``too-large``, ``truncated``, ``magic``, ``version``, ``header``,
    ``spec-mismatch``, ``codec``, ``zstd``, ``size-mismatch``, ``trailing-bytes``,
    ``indices``, ``scales``, ``values``, ``non-finite``, ``shape-mismatch``, ``dp-section``.
    """

    def __init__(self, reason: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "the update is rejected; the participant must re-encode and resubmit it")
        self.reason = reason
