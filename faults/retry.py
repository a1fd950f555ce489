"""The one retry policy: exponential backoff with full jitter, bounded by attempts and the deadline.

Built on tenacity. A call is retried only when it raised a :class:`FedLedgerError` whose
class is ``transient`` (or one of the types the caller names, e.g. "not in the store yet"
while waiting for a member to reveal its update); anything else propagates at once. Jitter
keeps many members that lost the same node from retrying in lock-step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from faults.deadline import current_deadline
from faults.errors import FedLedgerError


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, FedLedgerError) and type(exc).transient


def retrying(
    *,
    attempts: int | None = 4,
    initial: float = 0.2,
    maximum: float = 2.0,
    also: tuple[type[BaseException], ...] = (),
    sleep: Callable[[float], object] = time.sleep,
    stop: Callable[[], bool] | None = None,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for ``for attempt in retrying(...): with attempt: ...``.

    Retries transient errors (and ``also``) up to ``attempts`` times in all (None: no limit),
    waiting ``initial`` x 2^n seconds with full jitter, at most ``maximum``; gives up when
    the current :func:`faults.deadline` would pass before the next try, or when ``stop()``
    says so; the last error is re-raised unchanged.
    """

    def should_retry(exc: BaseException) -> bool:
        return is_transient(exc) or isinstance(exc, also)

    def give_up(state: tenacity.RetryCallState) -> bool:
        if stop is not None and stop():
            return True
        if attempts is not None and state.attempt_number >= attempts:
            return True
        d = current_deadline()
        upcoming = state.upcoming_sleep or 0.0
        return d is not None and d.remaining() <= upcoming

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(should_retry),
        wait=tenacity.wait_random_exponential(multiplier=initial, max=maximum),
        stop=give_up,
        sleep=sleep,
        reraise=True,
    )


@dataclass
class Backoff:
    """Delays for a daemon's loop after transient failures: the same jittered exponential, reset on success."""

    initial: float = 0.5
    maximum: float = 10.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        ceiling = min(self.maximum, self.initial * (2 ** (self.failures - 1)))
        return random.uniform(self.initial / 2, max(self.initial / 2, ceiling))

    def reset(self) -> None:
        self.failures = 0
