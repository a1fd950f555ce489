"""What can go wrong, and how a call waits it out: the bottom of every layer.

- :class:`FedLedgerError`: the root of every typed exception the project raises. It
  carries a ``hint`` (what to do about it) and says whether it is ``transient`` (the same
  call may succeed later: a node that is down, a timeout) or permanent (bad input, a
  revert, a wrong key), so no caller keeps its own list of which errors to retry.
- :class:`Deadline` and :func:`deadline`: one overall time budget for a piece of work,
  kept in a context variable so that every network call below it (an RPC request, a
  store read, a retry's sleep) shortens its own timeout to what is left.
- :func:`retrying`: the one retry policy, tenacity's exponential backoff with jitter,
  bounded by attempts and by the current deadline.

Nothing here imports anything else of the project's.
"""

from faults.deadline import (
    Deadline,
    DeadlineExceeded,
    current_deadline,
    deadline,
    remaining,
    run_in_context,
)
from faults.errors import FedLedgerError
from faults.retry import Backoff, retrying

__all__ = [
    "Backoff",
    "Deadline",
    "DeadlineExceeded",
    "FedLedgerError",
    "current_deadline",
    "deadline",
    "remaining",
    "retrying",
    "run_in_context",
]
