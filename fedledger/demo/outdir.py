"""The demo's report folder: replaced on every run, but only when the demo made it.

A folder the demo writes carries a marker file; any other folder that exists (``--out .``,
a home directory, someone's data) is refused rather than deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from faults import FedLedgerError

MARKER = ".fedledger-demo"


class OutFolderRefused(FedLedgerError):
    """The demo's --out names a folder the demo did not make."""


def prepare_out(out: Path) -> Path:
    """Empty ``out`` (a folder an earlier demo wrote, or a new one) and mark it as the demo's."""
    out = out.resolve()
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise OutFolderRefused(f"--out {out} exists and is not a folder", hint="pass --out with a new folder name")
        if any(out.iterdir()):
            if not (out / MARKER).is_file():
                raise OutFolderRefused(
                    f"--out {out} exists and was not written by the demo (it has no {MARKER} file); nothing was deleted",
                    hint="pass --out with a new folder (e.g. demo-out), or empty this one yourself",
                )
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `fedledger demo`; the next demo run with this --out replaces this folder\n")
    return out
