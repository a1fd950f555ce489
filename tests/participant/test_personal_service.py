"""A member's personal model on a real federation (anvil, contract, store): kept on disk, never in an update or the store."""

from __future__ import annotations

import json
from dataclasses import replace

from federation.model import load_model_bytes, model_digest
from fedledger.audit import Auditor
from ipfs import digest_to_cid
from participant.service import ParticipantService
from participant.update import RoundTask
from tests.helpers.runtime import FAST, Env, run_round


def test_a_personal_model_is_kept_locally_and_the_updates_and_audit_do_not_change(env: Env) -> None:
    personal = replace(FAST, personal_epochs=2)
    coord = env.coordinator()
    assert coord.step(None) == "opened"
    round_id = env.ledger.current_round()
    member = env.participant(0, settings=personal)
    sent = member.step()
    assert sent is not None
    for i in (1, 2):
        assert env.participant(i).step() is not None
    # the same member without personalisation computes the same update bytes: the personal model entered none of them
    info = env.ledger.get_round(round_id)
    spec = env.fed.descriptor.spec
    _, base = load_model_bytes(env.store.get(digest_to_cid(info.base_model)), spec)
    plain = ParticipantService(env.ledger.with_account(env.orgs[0]), env.store, env.fed.descriptor, env.data[0],
                               state_dir=env.tmp / "plain", descriptor_cid=env.fed.descriptor_cid, settings=FAST)  # fmt: skip
    task = RoundTask(round_id, plain.address, info.base_model, plain.round_seed(round_id), env.ledger.chain_id, env.ledger.address)
    assert env.store.put(plain.make_update(task, base, info.deadline).blob, only_hash=True) == sent.cid
    # the personal model is on disk, says which global model it came from, and is nowhere in the store
    meta = json.loads(member.personal_model_path.with_suffix(".json").read_bytes())
    assert meta["global_round"] == 0 and meta["global_cid"] == digest_to_cid(info.base_model)
    assert meta["chosen"] == "fine-tuned"  # the genesis model is random: fine-tuning beats it on the member's slice
    blob = member.personal_model_path.read_bytes()
    _, mine = load_model_bytes(blob, spec)
    assert set(mine) == set(base) and model_digest(blob) != info.base_model
    assert not env.store.has(env.store.put(blob, only_hash=True))
    env.close_submissions(round_id)
    for i in (0, 1, 2):
        env.participant(i, settings=personal if i == 0 else FAST).step()
    assert coord.close_round(round_id).finalized
    report = Auditor(env.ledger, env.store).audit()
    assert report.ok, report.to_dict()
    assert run_round(env, [0, 1, 2]).finalized  # round 2 also trains from the global model, not the personal one
