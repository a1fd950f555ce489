"""Secure aggregation with every role its own OS process: `fedledger coordinator run`, five
`fedledger participant run` and `fedledger audit`, meeting only through anvil and the store on disk.

Round 1 has every member in the sum. In round 2 one member's process is killed (SIGKILL) as soon
as its shares are on chain: the four survivors reveal its mask-key shares, the coordinator removes
its pairwise masks and finalises without it, and the audit re-derives both rounds from chain and
store alone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from contracts.client import RoundState
from tests.helpers.runtime import manifest_of
from tests.helpers.secure import make_secure_env

ROOT = Path(__file__).resolve().parents[2]

ROUND_SECONDS = 30
VICTIM = 4


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil(block_time=1) as node:  # the chain's clock runs: round 2 closes at its deadline
        yield node


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _participant(env, i: int) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen(
        [sys.executable, "-m", "fedledger", "participant", "run", "--data", str(env.flows_file(i)),
         "--state-dir", str(env.tmp / f"proc{i}"), "--rounds", "2", "--epochs", "1", "--batch-size", "256",
         "--idle-exit", "300", "--events", *env.common_args()],
        env=env.cli_env(i), cwd=ROOT, stdout=subprocess.PIPE if i == VICTIM else (env.tmp / f"member{i}.out").open("w"),
        stderr=(env.tmp / f"member{i}.log").open("w"), text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_five_member_processes_one_killed_after_sharing_round_verified(tmp_path: Path, chain: LocalAnvil) -> None:
    env = make_secure_env(tmp_path, chain, participants=5, threshold=3, min_updates=2, reveal_seconds=20, share_seconds=30)
    coord_env = env.cli_env(None)
    coord_env["FEDLEDGER_PRIVATE_KEY"] = env.coordinator_key.key.hex()
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "fedledger", "coordinator", "run", "--rounds", "2", "--round-seconds", str(ROUND_SECONDS),
         "--fetch-timeout", "5", "--holdout-dir", str(env.fed.holdout_dir), "--events", *env.common_args()],
        env=coord_env, cwd=ROOT, stdout=(tmp_path / "coordinator.out").open("w"),
        stderr=(tmp_path / "coordinator.log").open("w"), text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    members = [_participant(env, i) for i in range(5)]
    victim_events: list[dict] = []

    def watch_victim() -> None:
        for line in members[VICTIM].stdout:  # type: ignore[union-attr]
            event = json.loads(line)
            victim_events.append(event)
            if event.get("event") == "shared" and event.get("round") == 2:
                members[VICTIM].send_signal(signal.SIGKILL)  # its shares are dealt; it never commits round 2
                return

    watcher = threading.Thread(target=watch_victim, daemon=True)
    watcher.start()
    try:
        coordinator.wait(timeout=420)
        assert coordinator.returncode == 0, _tail(tmp_path / "coordinator.log")
        for i, proc in enumerate(members):
            if i != VICTIM:
                proc.wait(timeout=120)
                assert proc.returncode == 0, f"member {i}: " + _tail(tmp_path / f"member{i}.log")
        members[VICTIM].wait(timeout=30)
        assert members[VICTIM].returncode == -signal.SIGKILL
    finally:
        for proc in [coordinator, *members]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    watcher.join(timeout=5)
    assert [e for e in victim_events if e.get("event") == "shared" and e.get("round") == 2]

    victim = env.orgs[VICTIM].address
    for round_id in (1, 2):
        assert env.ledger.get_round(round_id).state is RoundState.FINALIZED
    first, second = manifest_of(env, 1)["secure_aggregation"], manifest_of(env, 2)["secure_aggregation"]
    assert [m["status"] for m in first["members"]] == ["in the sum"] * 5
    status = {m["participant"]: m["status"] for m in second["members"]}
    assert status.pop(victim) == "dropped after sharing"
    assert set(status.values()) == {"in the sum"}
    assert second["dropped"] == [victim]

    audit = subprocess.run(
        [sys.executable, "-m", "fedledger", "audit", "--json", *env.common_args()],
        env=env.cli_env(None), cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
    verdicts = {r["round_id"]: r["verdict"] for r in json.loads(audit.stdout)["rounds"]}
    assert verdicts == {1: "verified", 2: "verified"}
