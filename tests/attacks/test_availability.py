"""Data availability (issue 12.4): content the audit needs disappears after the round.

A real anvil with the compiled ledger, the embedded store on disk (shared by every party, as
in a consortium that shares one directory), the coordinator with its CAR archive, real
participants and the audit, in process and as `fedledger audit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from coordinator.service import CoordinatorSettings
from fedledger.audit import Auditor
from ipfs import digest_to_cid
from participant.service import BaseRefused
from tests.helpers.runtime import ROOT, Env, delete_content, make_env, run_round


def _audit_exit(env: Env) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "fedledger", "audit", "--json", *env.common_args()], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=dict(os.environ), stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def test_an_update_deleted_after_its_round_is_unverifiable_not_a_mismatch_and_the_coordinators_archive_restores_it(
    tmp_path: Path, chain: LocalAnvil
) -> None:
    """Before: the audit depended on every member keeping its updates for ever. A member that
    unpinned or deleted its update after the round (or whose node went away) made that round fail
    the audit as a mismatch, which reads as coordinator misconduct; and nobody kept a copy.

    Now the coordinator pins every accepted update, the validation set and the descriptor, and
    archives every accepted update as a CAR file. A member's unpin loses nothing (the embedded
    store has no garbage collection). A member that deletes its update's blocks makes the round
    `unverifiable` (no mismatch; `fedledger audit` exits 1 naming the update), and every member
    refuses to train on that round's model, since it can no longer re-derive it. Importing the
    coordinator's CAR archive restores the update: the audit verifies again and the next round
    trains."""
    env = make_env(tmp_path, chain)
    archive = tmp_path / "archive"
    fixed = [env.fed.descriptor_cid, env.fed.validation_cid]
    for cid in fixed:
        env.store.unpin(cid)  # the deployer's pins are not the coordinator's: it must keep these itself
    settings = CoordinatorSettings(round_seconds=60, fetch_timeout=3.0, poll_seconds=0.2, holdout_dir=env.fed.holdout_dir,
                                   archive_dir=archive)  # fmt: skip
    coord = env.coordinator(settings=settings)
    out = run_round(env, [0, 1, 2], coord)
    assert out.finalized
    info = env.ledger.get_round(1)
    accepted = [digest_to_cid(s.update) for s in env.ledger.submissions(1)]
    pinned = set(env.store.list())
    assert {*accepted, *fixed, digest_to_cid(info.global_model), digest_to_cid(info.manifest)} <= pinned
    assert env.fed.descriptor.holdout_for(1) in pinned
    assert sorted(p.name for p in (archive / "round-1").iterdir()) == sorted(f"{c}.car" for c in accepted)

    victim = accepted[1]
    env.store.unpin(victim)  # the member unpins its update
    assert Auditor(env.ledger, env.store).audit().ok

    delete_content(env, victim)  # ...then deletes it
    report = Auditor(env.ledger, env.store, fetch_timeout=2.0).audit()
    r1 = report.rounds[0]
    assert (r1.verdict, r1.mismatches, len(r1.unavailable)) == ("unverifiable", [], 1)
    assert victim in r1.unavailable[0] and "cannot be fetched now" in r1.unavailable[0]
    code, printed = _audit_exit(env)
    assert code == 1 and printed["rounds"][0]["verdict"] == "unverifiable"
    assert coord.step(None) == "opened"
    with pytest.raises(BaseRefused, match="cannot be re-derived"):
        env.participant(0).step()

    done = subprocess.run(
        [sys.executable, "-m", "fedledger", "ipfs", "dag", "import", "--store", str(env.store_dir),
         str(archive / "round-1" / f"{victim}.car")], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == victim, done.stderr
    assert Auditor(env.ledger, env.store).audit().ok
    for i in range(3):
        assert env.participant(i).step() is not None  # round 2: every member re-derives round 1 and trains
    for i in range(3):
        env.participant(i).step()
    assert coord.close_round(2).finalized  # type: ignore[union-attr]
    code, printed = _audit_exit(env)
    assert code == 0 and [r["verdict"] for r in printed["rounds"]] == ["verified", "verified"]
