"""One overall time budget that reaches every network call below it.

``with deadline(30):`` sets a :class:`Deadline` in a context variable; code below asks
:func:`remaining` for what is left and shortens its own timeouts to it, and
:func:`faults.retry.retrying` stops before a sleep would overrun it. Nested deadlines
keep the tighter one. Threads started with :func:`run_in_context` see the caller's.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from faults.errors import FedLedgerError

T = TypeVar("T")

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("fedledger_deadline", default=None)


class DeadlineExceeded(FedLedgerError):
    """The time budget of the work in progress ran out."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(
            f"{what}: the {seconds:.3g}-second time budget ran out",
            hint="the other side was too slow or unreachable; raise the timeout if it is expected to be slow",
        )
        self.what = what


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock by which the work must be done."""

    at: float  # time.monotonic() value
    seconds: float  # the budget it was made with, for messages

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + max(0.0, float(seconds)), float(seconds))

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineExceeded` once the budget is spent (call inside long walks)."""
        if time.monotonic() >= self.at:
            raise DeadlineExceeded(what, self.seconds)


def current_deadline() -> Deadline | None:
    """The innermost deadline in force, or None."""
    return _current.get()


def remaining(default: float) -> float:
    """Seconds a call may take: ``default``, or less when the current deadline is nearer."""
    d = _current.get()
    return default if d is None else min(default, d.remaining())


@contextmanager
def deadline(seconds: float | Deadline | None) -> Iterator[Deadline | None]:
    """Run the block under a time budget (the tighter of this one and any outer one)."""
    if seconds is None:
        yield _current.get()
        return
    new = seconds if isinstance(seconds, Deadline) else Deadline.after(seconds)
    outer = _current.get()
    if outer is not None and outer.at < new.at:
        new = outer
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


def run_in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` wrapped to run in a copy of the caller's context (its deadline included), e.g. in a thread pool."""
    ctx = contextvars.copy_context()

    def call(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return call
