"""Makes the npm ``solc`` package (solcjs) answer like the native ``solc`` for py-solc-x.

Run as ``python solcjs_shim.py <node> <solc.js> [solc args...]``. solcjs ``--standard-json``
may print a notice line (e.g. about SMT solvers) before its JSON; py-solc-x parses stdout
as JSON, so everything before the first ``{`` is dropped. Every other invocation
(``--version``) passes through unchanged.

solcjs ends with ``process.exit``, which cuts off output still queued for a pipe (large
outputs arrive truncated, differently each run), so its stdout goes to a temporary file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile


def main(argv: list[str]) -> int:
    node, solcjs, *args = argv
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.run([node, solcjs, *args], stdin=sys.stdin, stdout=stdout, stderr=subprocess.PIPE)
        stdout.seek(0)
        out = stdout.read().decode("utf-8")
    if "--standard-json" in args:
        start = out.find("{")
        out = out[start:] if start >= 0 else out
    sys.stdout.write(out)
    sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
