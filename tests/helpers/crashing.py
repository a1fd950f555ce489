"""Run a ``fedledger`` command that dies abruptly (exit 137, as a SIGKILL would) at a named point.

Fault injection for the crash-safety tests lives here, never in a service: the point is a
method of the real service, replaced in this process only by one that exits before doing
the work. ``python -m tests.helpers.crashing POINT fedledger-args...``
"""

from __future__ import annotations

import importlib
import os
import sys

# point -> (module, class, method): the process exits as that method is entered
POINTS = {
    "before-finalize": ("coordinator.service", "CoordinatorService", "finalize"),
    "before-publish": ("coordinator.service", "CoordinatorService", "publish"),
}


def main(argv: list[str]) -> int:
    point, *args = argv
    module, cls, method = POINTS[point]
    klass = getattr(importlib.import_module(module), cls)

    def crash(*_a: object, **_kw: object) -> None:
        sys.stderr.write(f"fault injection: exiting at {point}\n")
        sys.stderr.flush()
        os._exit(137)

    setattr(klass, method, crash)
    from fedledger.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
