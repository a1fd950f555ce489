"""`fedledger demo` with planted attackers as real participant processes: flags, scores and the audit in the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_plants_attackers_and_reports_their_flags_and_scores(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "fedledger", "demo", "--participants", "5", "--rounds", "2", "--out", str(out),
         "--round-seconds", "120", "--strategy", "median",
         "--attack", "copy:1", "--attack", "free-ride:1", "--attack", "sign-flip:1"],
        env=dict(os.environ), cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["audit"]["ok"]
    kinds = {o["address"]: o["attack"] for o in report["organisations"]}
    assert sorted(k for k in kinds.values() if k) == ["copy", "free-ride", "sign-flip"]
    for row in report["rounds"]:
        assert row["finalized"]
        entries = {e["address"]: e for e in row["participants"]}
        assert set(entries) == set(kinds)
        for addr, kind in kinds.items():
            e = entries[addr]
            assert e["attack"] == kind
            reasons = {f["reason"] for f in e["flags"]}
            if kind == "copy" and row["round"] == 1:
                # Updates are committed before any is readable: with no earlier round to copy from, it sends the base.
                assert reasons & {"free-ride-unchanged", "copy-payload"} and not e["accepted"] and e["score"] <= 0
            elif kind == "copy":  # last round's update of another member, replayed
                assert reasons & {"copy-stale"} and not e["accepted"] and e["score"] <= 0
            elif kind == "free-ride":  # the same zero update as the first-round copier's: one of them is its copy
                assert reasons & {"free-ride-unchanged", "copy-payload"} and not e["accepted"] and e["score"] <= 0
            else:
                assert e["accepted"] and not reasons & {"copy-payload", "copy-similar", "free-ride-unchanged"}
    md = (out / "report.md").read_text()
    assert "## Planted attackers and flags" in md and "free-ride-unchanged" in md and "| sign-flip |" in md
