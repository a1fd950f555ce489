"""The root of every typed exception the project raises.

Each component subclasses :class:`FedLedgerError`; the CLI turns any of them into
one readable line plus a hint (``--debug`` shows the trace).
"""

from __future__ import annotations


class FedLedgerError(Exception):
    """A failure the user can act on.

    ``hint`` says what to do about it; it is printed under the message by the CLI.
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint
