"""The root of every typed exception the project raises.

Each component subclasses :class:`FedLedgerError`; the CLI turns any of them into one
readable line plus a hint (``--debug`` shows the trace).
"""

from __future__ import annotations

from typing import ClassVar


class FedLedgerError(Exception):
    """A failure the user can act on.

    ``hint`` says what to do about it; it is printed under the message by the CLI.
    ``transient`` is a property of the class: True where the same call may succeed if it
    is made again later (an unreachable node, a timeout), False where repeating it cannot
    help (bad input, a contract revert, a wrong key). Retry loops ask this, never a list.
    """

    hint: str | None = None
    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint
