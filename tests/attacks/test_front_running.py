"""Front-running and credit theft: a member that watches the mempool, or the store, to take another's place or credit.

Played against a real anvil (its mempool, with automine off while the attacker races), the
compiled ledger, the embedded store on disk and the real participant and coordinator services.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from contracts.client import RoundState
from contracts.errors import SubmissionsClosed
from contracts.nonces import forget_nonces
from federation.updates import MAGIC, UpdateHeader, decode_update, encode_update
from fedledger.audit import Auditor
from ipfs import cid_to_digest, content_cid
from tests.helpers.runtime import Env, make_env, manifest_of


def _pending_submission(env: Env, sender: str, timeout: float = 60) -> dict:
    """The sender's transaction waiting in anvil's mempool (what a front-runner watches)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pool = env.chain.rpc("txpool_content", [])["pending"]
        for address, txs in pool.items():
            if address.lower() == sender.lower() and txs:
                return next(iter(txs.values()))
        time.sleep(0.05)
    raise AssertionError(f"no pending transaction from {sender}")


def _front_run(env: Env, victim: int, attacker: int, round_id: int) -> tuple[object, bytes]:
    """The victim's participant service commits while the attacker, reading the mempool, sends the
    victim's digest first with a higher tip, in the same block. Returns (the victim's outcome, the digest)."""
    chain = env.chain
    svc = env.participant(victim)
    outcome: list = []
    chain.rpc("evm_setAutomine", [False])
    try:
        worker = threading.Thread(target=lambda: outcome.append(svc.step()), daemon=True)
        worker.start()
        tx = _pending_submission(env, env.orgs[victim].address)
        _, args = env.ledger.contract.decode_function_input(tx["input"])
        digest = bytes(args["update"])
        me = env.orgs[attacker]
        data = env.ledger.contract.encode_abi("submitUpdate", args=[round_id, digest, args["numSamples"], 0])
        copy = {"to": env.ledger.address, "data": data, "value": 0, "chainId": chain.chain_id, "gas": 300_000,
                "maxFeePerGas": int(tx["maxFeePerGas"], 16) * 2, "type": 2,
                "maxPriorityFeePerGas": int(tx["maxPriorityFeePerGas"], 16) * 2 + 1,
                "nonce": int(chain.rpc("eth_getTransactionCount", [me.address, "pending"]), 16)}  # fmt: skip
        chain.rpc("eth_sendRawTransaction", ["0x" + me.sign_transaction(copy).raw_transaction.hex()])
        chain.rpc("evm_mine", [])
        worker.join(timeout=60)
    finally:
        chain.rpc("evm_setAutomine", [True])
        forget_nonces()
    assert not worker.is_alive()
    return outcome[0], digest


def test_a_front_runner_copying_a_digest_neither_locks_the_victim_out_nor_makes_up_the_quorum(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: submitUpdate reverted DuplicateUpdate when another member had already submitted the
    same digest to the round. An attacker watching the mempool copied the victim's digest and
    landed first with a higher tip; the victim's participant exited, and every retry re-derived
    the same bytes: it was out of the round. The attacker's entry, later rejected as
    sender-mismatch, still counted toward the quorum.

    Now the victim's participant service gets in, in the same block as the copy (the copy first);
    the coordinator rejects the attacker's entry as `sender-mismatch` (the bytes' header names the
    victim), it is never scored, and it does not make up the quorum: with only the victim's real
    update the round waits for the grace period and is aborted, never finalised on one update.
    The next round, with a third member, finalises with the victim and that member."""
    env = make_env(tmp_path, chain, participants=3, min_updates=2)
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    submitted, digest = _front_run(env, victim=0, attacker=1, round_id=1)
    assert submitted is not None and cid_to_digest(submitted.cid) == digest  # the victim got in
    assert env.ledger.submitters(1) == [env.orgs[1].address, env.orgs[0].address]  # the copy landed first
    env.close_submissions(1)
    env.participant(0).step()  # the victim reveals
    assert coord.close_round(1) is None  # two submissions, one acceptable update: below the quorum
    verdicts = {v.participant: v for v in coord.replay.derive(1).result.verdicts}
    assert (verdicts[env.orgs[1].address].accepted, verdicts[env.orgs[1].address].reason) == (False, "sender-mismatch")
    assert verdicts[env.orgs[0].address].accepted
    env.chain.increase_time(env.fed.descriptor.abort_grace + 1)
    out = coord.close_round(1)
    assert out is not None and not out.finalized and env.ledger.get_round(1).state == RoundState.ABORTED

    assert coord.step(None) == "opened"
    submitted, digest = _front_run(env, victim=0, attacker=1, round_id=2)
    assert submitted is not None
    assert env.participant(2).step() is not None  # the last eligible member: submissions close
    for i in (0, 2):
        env.participant(i).step()
    out = coord.close_round(2)
    assert out is not None and out.finalized
    assert out.result.aggregated == sorted((env.orgs[0].address, env.orgs[2].address), key=lambda a: bytes.fromhex(a[2:]))
    entry = {e["participant"]: e for e in manifest_of(env, 2)["submissions"]}[env.orgs[1].address]
    assert (entry["status"], entry["reason"]) == ("rejected", "sender-mismatch")
    assert env.ledger.get_submission(2, env.orgs[1].address).score is None
    assert env.ledger.get_submission(2, env.orgs[0].address).score is not None
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert [r.verdict for r in report.rounds] == ["aborted", "verified"]


def _blocks_holding_updates(env: Env) -> list[Path]:
    """Every block file in the store whose bytes hold an update header (the update format's magic)."""
    return [p for p in (env.store_dir / "blocks").rglob("*.data") if MAGIC in p.read_bytes()]


def test_no_update_can_be_read_or_re_wrapped_before_submissions_close_and_a_later_copy_is_flagged(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: a participant put its bytes in the store before its transaction was mined, and the
    copy defence took the earlier of two matching updates as the original. An attacker fetched
    the victim's bytes, re-wrapped the payload under its own header, landed first, and was scored
    as the original while the victim was flagged as the copier.

    Now the digest on chain is a commitment computed without storing anything: while submissions
    are open, no block in the store holds any update (the whole store is scanned), so there is
    nothing to re-wrap. Once submissions close the victim reveals, and an attacker that re-wraps
    the revealed bytes is refused by the chain (SubmissionsClosed). Sending the re-wrap in the
    next round instead (the only copy left to it) is flagged `copy-stale` and scores 0, while the
    victim keeps its score."""
    env = make_env(tmp_path, chain, participants=3, min_updates=2)
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    committed = [env.participant(i).step() for i in (0, 1)]
    assert all(committed) and not env.ledger.round_phases(1).submissions_closed
    assert _blocks_holding_updates(env) == []
    assert not any(env.store.has(c.cid) for c in committed)  # type: ignore[union-attr]
    assert not set(env.store.list()) & {c.cid for c in committed}  # type: ignore[union-attr]

    env.close_submissions(1)
    for i in (0, 1):
        env.participant(i).step()  # reveal
    assert len(_blocks_holding_updates(env)) == 2
    victim = committed[0]
    spec = env.fed.descriptor.spec
    header, delta = decode_update(env.store.get(victim.cid), spec)  # type: ignore[union-attr]
    mine = UpdateHeader(**{**header.__dict__, "participant": env.orgs[2].address})
    rewrapped = encode_update(mine, delta, spec)
    with pytest.raises(SubmissionsClosed):
        env.ledger.with_account(env.orgs[2]).submit_update(1, cid_to_digest(content_cid(rewrapped)), header.num_samples, 0)
    out = coord.close_round(1)
    assert out is not None and out.finalized

    # Round 2: the attacker sends the victim's round-1 payload under its own round-2 header.
    assert coord.step(None) == "opened"
    info = env.ledger.get_round(2)
    stale = encode_update(UpdateHeader(**{**mine.__dict__, "round_id": 2, "base_model": info.base_model.hex()}), delta, spec)
    env.ledger.with_account(env.orgs[2]).submit_update(2, cid_to_digest(content_cid(stale)), header.num_samples, 0)
    for i in (0, 1):
        assert env.participant(i).step() is not None
    for i in (0, 1):
        env.participant(i).step()
    env.store.put(stale)
    out = coord.close_round(2)
    assert out is not None and out.finalized
    entry = {e["participant"]: e for e in manifest_of(env, 2)["submissions"]}
    flags = [f["reason"] for f in entry[env.orgs[2].address].get("flags", [])]
    assert flags == ["copy-stale"] and entry[env.orgs[2].address]["score"] == 0
    assert env.orgs[0].address in entry[env.orgs[2].address]["flags"][0]["detail"]  # names whose update it was
    assert "flags" not in entry[env.orgs[0].address]
    assert env.ledger.get_submission(2, env.orgs[2].address).score is None
    assert Auditor(env.ledger, env.store).audit().ok

