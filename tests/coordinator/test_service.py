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
from contracts.errors import RoundNotOpen
from coordinator.service import (
    CoordinatorError,
    CoordinatorSettings,
)
from faults import Deadline
from federation.fetch import fetch_update
from federation.flowset import flowset_bytes
from fedledger.audit import Auditor
from flows.synthetic import generate
from ipfs import ContentNotFound, cid_to_digest, digest_to_cid
from participant.service import ParticipantService
from tests.helpers.runtime import ROOT, Env, make_env, manifest_of, run_round

# ----------------------------------------------------------------------------- the protocol


def test_rounds_finalise_and_the_audit_re_derives_them(env: Env) -> None:
    first = run_round(env, [0, 1, 2])
    second = run_round(env, [0, 1, 2])
    assert first.finalized and second.finalized
    r1, r2 = env.ledger.get_round(1), env.ledger.get_round(2)
    # Lineage: round 2 started from round 1's global model, which is the ledger's latest.
    assert r2.base_model == r1.global_model != r1.base_model
    assert env.ledger.latest_model() == r2.global_model
    m = manifest_of(env, 2)
    assert [s["participant"] for s in m["submissions"]] == env.ledger.submitters(2)
    assert all(s["status"] == "accepted" for s in m["submissions"])
    for s in m["submissions"]:
        on_chain = env.ledger.get_submission(2, s["participant"])
        assert on_chain.score == s["score"] and cid_to_digest(s["update"]) == on_chain.update
    assert m["global_model"] == digest_to_cid(r2.global_model)
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert [v.round_id for v in report.rounds] == [1, 2] and all(v.accepted == 3 for v in report.rounds)


def test_a_restarted_participant_never_submits_twice(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    first = env.participant(0).step()
    assert first is not None
    assert env.participant(0).step() is None  # a fresh service (a restart) reads the chain first
    assert env.ledger.get_round(1).submission_count == 1


def test_quorum_missed_aborts_and_keeps_the_latest_model(env: Env) -> None:
    before = env.ledger.latest_model()
    out = run_round(env, [0])  # quorum is 2
    assert not out.finalized and "quorum" in out.reason
    assert env.ledger.get_round(1).state == RoundState.ABORTED
    assert env.ledger.latest_model() == before


def test_an_update_altered_in_the_store_is_rejected_with_its_reason(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    subs = [env.participant(i).step() for i in range(3)]
    victim = subs[1]
    block = env.store._block_path(bytes([0x12, 0x20]) + cid_to_digest(victim.cid))
    raw = bytearray(block.read_bytes())
    raw[-1] ^= 0xFF
    block.write_bytes(bytes(raw))
    out = coord.close_round(1)
    assert out.finalized
    entry = {s["participant"]: s for s in manifest_of(env, 1)["submissions"]}[env.orgs[1].address]
    assert (entry["status"], entry["reason"], entry["score"]) == ("rejected", "corrupt", 0)
    assert Auditor(env.ledger, env.store).audit().ok


def test_a_digest_never_stored_is_rejected_at_the_deadline_not_waited_on(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    env.participant(0).step()
    env.participant(1).step()
    ghost = os.urandom(32)
    env.ledger.with_account(env.orgs[2]).submit_update(1, ghost, 100, 0)
    t0 = time.monotonic()
    out = coord.close_round(1)
    assert time.monotonic() - t0 < 30
    entry = {s["participant"]: s for s in out.result.manifest["submissions"]}[env.orgs[2].address]
    assert (entry["status"], entry["reason"]) == ("rejected", "unavailable")
    assert Auditor(env.ledger, env.store, fetch_timeout=1.0).audit().ok


def test_hostile_and_misattributed_updates_are_rejected_never_crash(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    mine = env.participant(0).step()
    # Org 1 submits garbage; org 2 submits a real update truncated in the middle of its payload.
    junk = env.store.put(b"\x00not an update" * 100)
    env.ledger.with_account(env.orgs[1]).submit_update(1, cid_to_digest(junk), 50, 0)
    cut = env.store.put(env.store.get(mine.cid)[:-40])
    env.ledger.with_account(env.orgs[2]).submit_update(1, cid_to_digest(cut), mine.num_samples, 0)
    out = coord.close_round(1)
    verdicts = {v.participant: v for v in out.result.verdicts}
    assert verdicts[env.orgs[0].address].accepted
    assert (verdicts[env.orgs[1].address].accepted, verdicts[env.orgs[1].address].reason) == (False, "magic")
    assert not verdicts[env.orgs[2].address].accepted and verdicts[env.orgs[2].address].reason == "zstd"
    assert Auditor(env.ledger, env.store).audit().ok


def test_an_update_whose_header_names_another_sender_is_rejected(env: Env) -> None:
    coord = env.coordinator()
    coord.step(None)
    # Org 0 trains and encodes but does not submit; org 1 submits org 0's bytes as its own.
    svc = env.participant(0)
    from federation.model import load_model_bytes
    from federation.updates import UpdateHeader, encode_update
    from participant.training import train_local

    info = env.ledger.get_round(1)
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), env.fed.descriptor.spec)
    res = train_local(env.fed.descriptor.spec, base, env.data[0], epochs=1, seed=1)
    header = UpdateHeader(
        participant=env.orgs[0].address, round_id=1, base_model=info.base_model.hex(),
        spec_digest=env.fed.descriptor.spec.digest(), num_samples=res.num_samples,
    )  # fmt: skip
    cid = env.store.put(encode_update(header, res.delta, env.fed.descriptor.spec))
    env.ledger.with_account(env.orgs[1]).submit_update(1, cid_to_digest(cid), res.num_samples, 0)
    env.participant(2).step()
    out = coord.close_round(1)
    verdicts = {v.participant: v for v in out.result.verdicts}
    assert verdicts[env.orgs[1].address].reason == "sender-mismatch"
    assert verdicts[env.orgs[2].address].accepted
    assert svc.step() is None  # the round is closed: org 0 does not submit late
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
        env.ledger.finalize_round(1, os.urandom(32), os.urandom(32), [], [])


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
    crash_env = env.cli_env(None)
    crash_env["FEDLEDGER_PRIVATE_KEY"] = env.chain.accounts[0].key.hex()
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.crashing", "before-finalize", "coordinator", "run", "--rounds", "1",
         "--fetch-timeout", "3", *env.common_args()],
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
        coord = env.coordinator(settings=CoordinatorSettings(round_seconds=600, fetch_timeout=5.0, poll_seconds=0.2))
        coord.step(None)  # round 2 opens
        member = env.participant(0)
        assert member.step() is not None
        first.stop()  # the chain goes away with round 2 open; its state is saved
        # The same service objects keep running: they retry while the node is down and carry on once it is back.
        # (anvil is started from this thread: its parent-death signal is tied to the thread that forks it.)
        member2, done = env.participant(1), []
        worker = threading.Thread(target=lambda: done.extend(member2.run(rounds=1)), daemon=True)
        worker.start()
        time.sleep(2.0)
        assert worker.is_alive() and not done  # still retrying against the dead node
        second.start()
        worker.join(timeout=120)
        assert [d.round_id for d in done] == [2]
        assert env.participant(2).step() is not None  # everyone has submitted: the round closes at once
        outcomes = coord.run(rounds=2)
        assert [o.round_id for o in outcomes] == [2] and outcomes[0].finalized
        assert env.ledger.get_round(1).state == RoundState.FINALIZED  # round 1 survived the restart
        assert Auditor(env.ledger, env.store).audit().ok
    finally:
        second.stop()
        first.stop()


def test_the_cli_runs_a_round_and_the_audit_exits_non_zero_on_tampering(env: Env) -> None:
    admin_env = env.cli_env(None)
    admin_env["FEDLEDGER_PRIVATE_KEY"] = env.chain.accounts[0].key.hex()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fedledger", "participant", "run", "--data", str(env.flows_file(i)),
             "--state-dir", str(env.tmp / f"cli{i}"), "--one-shot", "--epochs", "1", *env.common_args()],
            env=env.cli_env(i), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in range(3)
    ]
    done = _cli("coordinator", "run", "--rounds", "1", "--round-seconds", "120", *env.common_args(), env=admin_env)
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
    from federation.model import load_model_bytes
    from federation.rounds.derive import RoundInputs, SubmissionInput, derive_round

    info = env.ledger.get_round(2)
    subs = env.ledger.submitters(2)
    base = env.store.get(digest_to_cid(info.base_model))
    records = [env.ledger.get_submission(2, a) for a in subs]
    result = derive_round(RoundInputs(
        2, env.fed.descriptor_cid, env.fed.descriptor, base, load_model_bytes(base)[1], coord.previous_state(2),
        [SubmissionInput(a, s.update, s.num_samples, s.epsilon_milli, env.store.get(digest_to_cid(s.update))) for a, s in zip(subs, records)],
        validation=coord.validation,
    ))  # fmt: skip
    g, m = env.store.put(result.global_model), env.store.put(result.manifest_bytes)
    env.ledger.finalize_round(2, cid_to_digest(g), cid_to_digest(m), subs, [result.scores[a] + 500 for a in subs])
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
    with pytest.raises(InvalidDescriptor, match="malformed"):
        Descriptor.from_bytes(raw.replace(b'"seed"', b'"sed"'))
    with pytest.raises(InvalidDescriptor, match="canonical"):
        Descriptor.from_bytes(raw.replace(b'{"format"', b'{ "format"', 1))
    with pytest.raises(InvalidDescriptor, match="not a federation descriptor"):
        Descriptor.from_bytes(b'{"format": "something-else"}')
