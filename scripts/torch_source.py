"""Where scripts/setup takes torch from: PyPI as configured, or the PyTorch CPU index.

On Linux, PyPI's torch wheels are CUDA builds of several GB; the CPU build lives on the
PyTorch index (and on disk where a machine keeps wheels). So set-up first asks pip, with
``pip install --dry-run --report``, what a plain install would take, and only when that is
not a CPU build does it install from the CPU index. A machine that has the CPU wheel on
disk (and no route to the PyTorch index) never needs that index.

Usage: ``python scripts/torch_source.py REPORT.json`` prints ``plain`` or ``cpu-index``.
Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PLAIN = "plain"
CPU_INDEX = "cpu-index"
_GPU_LABELS = ("+cu", "+rocm", "+xpu")


def torch_source(report: dict[str, Any]) -> str:
    """``plain`` when a plain install takes a CPU build (or nothing), else ``cpu-index``."""
    wheels = [i for i in report.get("install", []) if i.get("metadata", {}).get("name", "").lower() == "torch"]
    if not wheels:
        return PLAIN  # already installed: nothing to take
    version = str(wheels[0]["metadata"].get("version", ""))
    url = str(wheels[0].get("download_info", {}).get("url", ""))
    if version.endswith("+cpu") or "+cpu." in version:
        return PLAIN
    if any(label in version for label in _GPU_LABELS):
        return CPU_INDEX
    if url.startswith("file:"):
        return PLAIN  # a wheel this machine keeps on disk: its owner's choice
    # PyPI's macOS and Windows wheels are CPU builds; its Linux wheels carry CUDA.
    return CPU_INDEX if report.get("environment", {}).get("sys_platform") == "linux" else PLAIN


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: torch_source.py REPORT.json", file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8") as fh:
            report = json.load(fh)
    except (OSError, ValueError):
        print(CPU_INDEX)  # no usable answer from pip: the CPU index is the safe source
        return 0
    print(torch_source(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
