"""Typed failures of detection and sharing: each names what is wrong and says what to do."""

from __future__ import annotations

from faults import FedLedgerError


class IntelError(FedLedgerError):
    """Any failure of ``fedledger detect`` or ``fedledger share``."""


class ModelNotOnChain(IntelError):
    """A model, round or descriptor that the ledger does not record."""


class AuditRefused(IntelError):
    """``--require-audit`` was given and the audit of the model's round did not pass."""


class AlertsError(IntelError):
    """An alerts file that cannot be read or shared."""


class KeyFileError(IntelError):
    """A key or credentials file (pseudonymisation key, TAXII password, MISP key) that cannot be used."""


class ShareError(IntelError):
    """Publishing to a sharing platform failed."""


class ShareUnavailable(ShareError):
    """The platform could not be reached or did not answer in time; the same call may succeed later."""

    transient = True


class ShareAuthError(ShareError):
    """The platform refused the credentials."""


class ShareNotFound(ShareError):
    """The platform has no such collection (or API root)."""


class ShareRejected(ShareError):
    """The platform answered, but did not accept what was sent."""
