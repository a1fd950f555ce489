"""Child processes that a test stops with Ctrl-C (SIGINT), as a user at a terminal would."""

from __future__ import annotations

import signal


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` for such a child: SIGINT back to its default.

    A test run started in the background of a non-interactive shell inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt in the child; at a terminal it is not ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
