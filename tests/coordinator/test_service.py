"""The federation runtime against a real anvil, the compiled ledger, the embedded store and torch.

Each test builds a small federation (synthetic flows, three organisations) on its own
anvil chain, so tests that stop or restart the chain do not disturb anything else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from contracts.client import RoundState
from contracts.errors import RoundNotOpen, RpcUnavailable
from coordinator.service import (
    CoordinatorError,
    CoordinatorSettings,
)
from faults import Deadline
from federation.fetch import fetch_update
from federation.flowset import flowset_bytes
from fedledger.audit import Auditor
from flows.synthetic import generate
from ipfs import ContentNotFound, cid_to_digest, content_cid, digest_to_cid
from participant.service import ParticipantService
from tests.helpers.runtime import (
    ROOT,
    Env,
    commit,
    make_env,
    manifest_of,
    run_round,
    trained_update,
)

# ----------------------------------------------------------------------------- the protocol


def test_rounds_finalise_and_the_audit_re_derives_them(env: Env) -> None:
    for _ in range(2):
        out = run_round(env, [0, 1, 2])
        assert out.finalized and len(out.result.aggregated) == 3
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert [v.round_id for v in report.rounds] == [1, 2] and all(v.accepted == 3 for v in report.rounds)
    manifest = manifest_of(env, 2)
    assert manifest["scored_on"] == env.fed.descriptor.holdout_for(2) != env.fed.descriptor.validation
    assert manifest["chain_id"] == env.ledger.chain_id and manifest["ledger"] == env.ledger.address


def test_members_commit_before_anyone_can_read_an_update(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    first = env.participant(0).step()
    assert first is not None
    assert not env.store.has(first.cid)  # committed on chain, not readable by anyone yet
    assert not env.ledger.round_phases(1).submissions_closed
    env.participant(1).step()
    env.participant(2).step()  # the last eligible member: submissions close at once
    assert env.ledger.round_phases(1).submissions_closed
    env.participant(0).step()  # now it reveals
    assert env.store.get(first.cid)
    assert env.participant(0).step() is None  # and only once


def test_a_restarted_participant_never_submits_twice(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    assert env.participant(0).step() is not None
    assert env.participant(0).step() is None  # a fresh service object, same state dir: it sees its commitment
    assert env.ledger.get_round(1).submission_count == 1


def test_a_commitment_interrupted_before_it_landed_is_resubmitted_from_disk_not_retrained(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    svc = env.participant(0)

    def fail(*_a, **_kw):  # noqa: ANN002, ANN003, ANN202
        raise RpcUnavailable(env.chain.rpc_url, "connection refused")

    real = svc.ledger.submit_update
    svc.ledger.submit_update = fail  # type: ignore[method-assign]
    with pytest.raises(RpcUnavailable):
        svc.step()
    kept = svc._pending(1)
    assert kept is not None
    svc.ledger.submit_update = real  # type: ignore[method-assign]
    done = env.participant(0).step()  # the node is back; a restarted service submits the kept bytes
    assert done is not None and done.train_seconds == 0 and cid_to_digest(done.cid) == env.ledger.get_submission(1, env.orgs[0].address).update
    assert content_cid(kept) == done.cid


def test_quorum_missed_aborts_and_keeps_the_latest_model(env: Env) -> None:
    out = run_round(env, [0])  # one update, quorum two
    assert not out.finalized and "quorum" in (out.reason or "")
    assert env.ledger.latest_model() == env.ledger.genesis_model()
    assert env.ledger.get_round(1).state == RoundState.ABORTED
    assert run_round(env, [0, 1, 2]).finalized  # the next round starts from the genesis again
    assert Auditor(env.ledger, env.store).audit().ok


def test_an_update_never_revealed_is_recorded_unavailable_at_the_end_of_the_reveal_window(env: Env) -> None:
    t0 = time.monotonic()
    out = run_round(env, [0, 1, 2], reveal=[0, 1])  # member 2 committed and never put its bytes in the store
    assert out.finalized
    assert time.monotonic() - t0 < 30
    entry = {s["participant"]: s for s in out.result.manifest["submissions"]}[env.orgs[2].address]
    assert (entry["status"], entry["reason"]) == ("rejected", "unavailable")
    assert env.ledger.get_submission(1, env.orgs[2].address).score is None  # not aggregated: not scored
    assert Auditor(env.ledger, env.store, fetch_timeout=1.0).audit().ok


def test_a_block_altered_in_the_shared_store_counts_as_unavailable_not_as_the_members_fault(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    subs = [env.participant(i).step() for i in range(3)]
    for i in range(3):
        env.participant(i).step()  # reveal
    victim = subs[1]
    block = env.store._block_path(bytes([0x12, 0x20]) + cid_to_digest(victim.cid))
    block.write_bytes(block.read_bytes()[:-1] + b"\x00")  # someone with write access to the directory
    out = coord.close_round(1)
    entry = {s["participant"]: s for s in out.result.manifest["submissions"]}[env.orgs[1].address]
    assert (entry["status"], entry["reason"]) == ("rejected", "unavailable")
    assert out.finalized and len(out.result.aggregated) == 2


def test_hostile_and_misattributed_updates_are_rejected_never_crash(tmp_path: Path, chain: LocalAnvil) -> None:
    env = make_env(tmp_path, chain, min_updates=1)
    coord = env.coordinator()
    coord.step(None)
    env.participant(0).step()
    # Org 1 commits to garbage; org 2 to a real update for another ledger.
    junk = b"\x00not an update" * 100
    commit(env, 1, 1, junk, 50)
    other, h = trained_update(env, 2, 1, ledger="0x" + "11" * 20)
    commit(env, 2, 1, other, h.num_samples)  # type: ignore[attr-defined]
    env.close_submissions(1)
    env.participant(0).step()
    env.store.put(junk)
    env.store.put(other)
    out = coord.close_round(1)
    verdicts = {v.participant: v for v in out.result.verdicts}
    assert verdicts[env.orgs[0].address].accepted
    assert (verdicts[env.orgs[1].address].accepted, verdicts[env.orgs[1].address].reason) == (False, "magic")
    assert (verdicts[env.orgs[2].address].accepted, verdicts[env.orgs[2].address].reason) == (False, "ledger-mismatch")
    assert out.finalized and out.result.aggregated == [env.orgs[0].address]
    assert Auditor(env.ledger, env.store).audit().ok


def test_a_round_with_too_few_acceptable_updates_waits_for_the_grace_period_then_aborts(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    env.participant(0).step()
    commit(env, 1, 1, b"\x00junk" * 10, 10)
    env.close_submissions(1)
    env.participant(0).step()
    assert coord.close_round(1) is None  # quorum of submissions reached, of acceptable updates not: the chain refuses an abort
    assert env.ledger.get_round(1).state == RoundState.OPEN
    env.chain.increase_time(env.fed.descriptor.abort_grace + 1)
    out = coord.close_round(1)
    assert out is not None and not out.finalized
    assert env.ledger.get_round(1).state == RoundState.ABORTED
    assert Auditor(env.ledger, env.store).audit().ok


def test_the_store_briefly_unavailable_is_retried(env: Env) -> None:
    cid = env.store.put(b"an update that appears a moment late" * 1000)
    block = env.store._block_path(bytes([0x12, 0x20]) + cid_to_digest(cid))
    hidden = block.with_suffix(".hidden")
    block.rename(hidden)
    import threading

    threading.Timer(0.8, lambda: hidden.rename(block)).start()
    t0 = time.monotonic()
    data, err = fetch_update(env.store, cid, max_bytes=1 << 20, until=Deadline.after(10))
    assert err is None and data == b"an update that appears a moment late" * 1000
    assert 0.7 < time.monotonic() - t0 < 10
    with pytest.raises(ContentNotFound):
        env.store.get(digest_to_cid(os.urandom(32)))


def test_a_second_close_of_a_finalised_round_is_refused(env: Env) -> None:
    out = run_round(env, [0, 1])
    assert out.finalized
    coord = env.coordinator()
    with pytest.raises(CoordinatorError, match="not open"):
        coord.close_round(1)
    with pytest.raises(RoundNotOpen):
        env.coordinator_ledger.finalize_round(1, os.urandom(32), os.urandom(32), [], [])


# ----------------------------------------------------------------------------- processes and faults


def _cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fedledger", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_coordinator_killed_before_finalising_restarts_to_the_same_result(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    for i in range(3):
        env.participant(i).step()
    for i in range(3):
        env.participant(i).step()  # reveal
    crash_env = env.cli_env(None)
    crash_env["FEDLEDGER_PRIVATE_KEY"] = env.coordinator_key.key.hex()
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.crashing", "before-finalize", "coordinator", "run", "--rounds", "1",
         "--fetch-timeout", "3", "--holdout-dir", str(env.fed.holdout_dir), *env.common_args()],
        env=crash_env, cwd=ROOT, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr
    assert env.ledger.get_round(1).state == RoundState.OPEN  # killed between the store and the chain
    pinned_before = set(env.store.list())
    out = env.coordinator().close_round(1)  # the restarted coordinator
    assert out.finalized
    info = env.ledger.get_round(1)
    # The restart re-derived exactly what the killed process had already put in the store.
    assert {digest_to_cid(info.global_model), digest_to_cid(info.manifest)} <= pinned_before
    assert Auditor(env.ledger, env.store).audit().ok


def test_participant_killed_while_training_round_finalises_without_it(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedledger", "participant", "run", "--data", str(env.flows_file(2)),
         "--state-dir", str(env.tmp / "p2"), "--one-shot", "--events", *env.common_args()],
        env=env.cli_env(2), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if json.loads(line).get("event") == "train":
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    env.participant(0).step()
    env.participant(1).step()
    env.close_submissions(1)
    env.participant(0).step()
    env.participant(1).step()
    out = coord.close_round(1)
    assert out.finalized
    assert out.result.manifest["absent"] == [env.orgs[2].address]
    assert env.ledger.get_submission(1, env.orgs[2].address) is None


def test_services_continue_after_anvil_restarts_from_saved_state(tmp_path: Path) -> None:
    import threading

    state = tmp_path / "anvil-state.json"
    first = LocalAnvil(accounts=8, state_path=state).start()
    second = LocalAnvil(port=first.port, accounts=8, state_path=state)
    try:
        env = make_env(tmp_path, first)
        assert run_round(env, [0, 1, 2]).finalized
        # A generous deadline: under load, the restart and the retries must not outlive the round.
        coord = env.coordinator(settings=CoordinatorSettings(round_seconds=600, fetch_timeout=5.0, poll_seconds=0.2, holdout_dir=env.fed.holdout_dir))
        coord.step(None)  # round 2 opens
        member = env.participant(0)
        assert member.step() is not None
        member2 = env.participant(1)
        first.stop()  # the chain goes away with round 2 open; its state is saved
        # The same service objects keep running: they retry while the node is down and carry on once it is back.
        # (anvil is started from this thread: its parent-death signal is tied to the thread that forks it.)
        done: list = []
        worker = threading.Thread(target=lambda: done.extend(member2.run(rounds=1)), daemon=True)
        worker.start()
        time.sleep(2.0)
        assert worker.is_alive() and not done  # still retrying against the dead node
        second.start()
        t0 = time.monotonic()
        while env.ledger.get_submission(2, env.orgs[1].address) is None and time.monotonic() - t0 < 120:
            time.sleep(0.2)  # it retried and committed once the node was back
        assert env.participant(2).step() is not None  # everyone has submitted: the round closes at once
        worker.join(timeout=120)  # it revealed its bytes, then stopped
        assert [d.round_id for d in done] == [2]
        for i in range(3):
            env.participant(i).step()  # reveal
        outcomes = coord.run(rounds=2)
        assert [o.round_id for o in outcomes] == [2] and outcomes[0].finalized
        assert env.ledger.get_round(1).state == RoundState.FINALIZED  # round 1 survived the restart
        assert Auditor(env.ledger, env.store).audit().ok
    finally:
        second.stop()
        first.stop()


def test_the_cli_runs_a_round_and_the_audit_exits_non_zero_on_tampering(env: Env) -> None:
    admin_env = env.cli_env(None)
    admin_env["FEDLEDGER_PRIVATE_KEY"] = env.coordinator_key.key.hex()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fedledger", "participant", "run", "--data", str(env.flows_file(i)),
             "--state-dir", str(env.tmp / f"cli{i}"), "--one-shot", "--epochs", "1", *env.common_args()],
            env=env.cli_env(i), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in range(3)
    ]
    done = _cli("coordinator", "run", "--rounds", "1", "--round-seconds", "120", "--holdout-dir", str(env.fed.holdout_dir),
                *env.common_args(), env=admin_env)  # fmt: skip
    for p in procs:
        p.wait(timeout=120)
        assert p.returncode == 0, p.stderr.read()
    assert done.returncode == 0, done.stderr
    assert env.ledger.get_round(1).state == RoundState.FINALIZED
    assert env.ledger.get_round(1).submission_count == 3

    audited = _cli("audit", "--json", *env.common_args(), env=env.cli_env(None))
    assert audited.returncode == 0, audited.stderr
    assert json.loads(audited.stdout)["ok"] is True
    queried = _cli("audit", "--json", *env.common_args(), "round", "1", env=env.cli_env(None))
    assert queried.returncode == 0, queried.stderr
    record = json.loads(queried.stdout)
    assert record["audit"]["ok"] and len(record["record"]["submissions"]) == 3
    history = _cli("audit", "--json", *env.common_args(), "participant", env.orgs[1].address, env=env.cli_env(None))
    assert history.returncode == 0, history.stderr
    record = json.loads(history.stdout)
    assert [s["round_id"] for s in record["submissions"]] == [1]
    assert record["total_score"] == env.ledger.get_submission(1, env.orgs[1].address).score
    lineage = _cli("audit", "--json", *env.common_args(), "lineage", env=env.cli_env(None))
    assert lineage.returncode == 0, lineage.stderr
    steps = json.loads(lineage.stdout)["steps"]
    assert [s["global_model"] for s in steps] == [digest_to_cid(env.ledger.get_round(1).global_model)]

    # Round 2 finalised by a dishonest coordinator: the right model and manifest, but inflated scores.
    coord = env.coordinator()
    coord.step(None)
    for i in range(3):
        env.participant(i).step()
    for i in range(3):
        env.participant(i).step()  # reveal
    coord.reveal_holdout(2)
    result = coord.replay.derive(2).result
    g, m = env.store.put(result.global_model), env.store.put(result.manifest_bytes)
    env.coordinator_ledger.finalize_round(
        2, cid_to_digest(g), cid_to_digest(m), result.aggregated, [result.scores[a] + 500 for a in result.aggregated]
    )
    audited = _cli("audit", "--json", *env.common_args(), env=env.cli_env(None))
    assert audited.returncode == 1
    verdict = json.loads(audited.stdout)
    r2 = [r for r in verdict["rounds"] if r["round_id"] == 2][0]
    assert not r2["ok"] and any("score on chain" in m for m in r2["mismatches"])
    assert all(r["ok"] for r in verdict["rounds"] if r["round_id"] == 1)


def test_the_demo_writes_its_report_with_every_round_verified(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = _cli(
        "demo", "--participants", "3", "--rounds", "2", "--out", str(out), "--round-seconds", "240",
        env=dict(os.environ), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["audit"]["ok"] is True
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for row in report["rounds"]:
        assert row["finalized"] and row["audit"]["ok"]
        assert set(row["scores"]) == {o["name"] for o in report["organisations"]}
        assert row["gas"]["total"] > 0 and all(b > 0 for b in row["update_bytes"].values())
        assert row["gas"]["open"] > 0  # taken from the coordinator's own openRound receipt
        assert 0.0 <= row["test_metrics"]["macro_f1"] <= 1.0
    for name in ("report.md", "metrics.png", "scores.png"):
        assert (out / name).stat().st_size > 0


# ----------------------------------------------------------------------------- bad federation files


def test_malformed_flow_sets_and_descriptors_are_refused_by_name(env: Env) -> None:
    from federation.descriptor import Descriptor, InvalidDescriptor
    from federation.flowset import load_flowset
    from participant.service import ParticipantError

    spec = env.fed.descriptor.spec
    with pytest.raises(InvalidDescriptor, match="flow set"):
        load_flowset(b"\x00" * 64, spec)
    with pytest.raises(InvalidDescriptor, match="not a fedledger flow set"):
        load_flowset(env.store.get(env.fed.genesis_cid), spec)  # a model file, not flows
    other = generate(50, 1)
    narrow = type(other)(other.features[:, :5], other.labels, other.classes, other.schema_id, other.feature_names[:5])
    with pytest.raises(InvalidDescriptor, match="does not fit the model spec"):
        load_flowset(flowset_bytes(narrow), spec)
    with pytest.raises(ParticipantError, match="does not fit this federation"):
        ParticipantService(env.ledger.with_account(env.orgs[0]), env.store, env.fed.descriptor, narrow, state_dir=env.tmp / "x")

    raw = env.fed.descriptor.to_bytes()
    with pytest.raises(InvalidDescriptor, match=r"fields \['sed', 'seed'\] are missing or unexpected"):
        Descriptor.from_bytes(raw.replace(b'"seed"', b'"sed"'))
    with pytest.raises(InvalidDescriptor, match="canonical"):
        Descriptor.from_bytes(raw.replace(b'{"format"', b'{ "format"', 1))
    with pytest.raises(InvalidDescriptor, match="not a federation descriptor"):
        Descriptor.from_bytes(b'{"format": "something-else"}')
