"""Defences and scores in real rounds: a real anvil chain, the compiled ledger, the store, and the auditor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from coordinator.service import CoordinatorService, CoordinatorSettings
from federation.descriptor import Descriptor
from federation.flowset import flowset_bytes
from federation.model import ModelSpec
from federation.updates import UpdateHeader, encode_update, read_header
from fedledger.attacks.kinds import copy_update, free_ride_delta
from fedledger.audit import Auditor
from flows.partition import partition
from flows.synthetic import generate
from ipfs import EmbeddedStore, cid_to_digest, digest_to_cid
from participant.service import ParticipantService, TrainingSettings

FAST = TrainingSettings(epochs=1, batch_size=256, lr=0.005, deadline_margin=0.5)
GTG = {"rule": "gtg-shapley", "metric": "macro_f1", "scale": 10000, "max_evaluations": 40}


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil(accounts=7) as c:
        yield c


def _federation(tmp_path: Path, chain: LocalAnvil, strategy: str, params: dict, scoring: dict):  # type: ignore[no-untyped-def]
    store = EmbeddedStore(tmp_path / "store")
    admin, *orgs = chain.accounts[:6]
    train, validation = generate(4000, 11), generate(800, 12)
    parts = partition(train.labels, len(orgs), "iid", 3, classes=train.classes)
    desc = Descriptor(
        name="defences", spec=ModelSpec.for_dataset(validation, hidden=(16,)), validation=store.put(flowset_bytes(validation)),
        strategy=strategy, strategy_params=params, scoring=scoring, seed=5,
    )  # fmt: skip
    desc_cid = store.put(desc.to_bytes())
    ledger = Ledger.deploy(chain.rpc_url, admin, cid_to_digest(store.put(desc.genesis_model())), 2, expected_chain_id=chain.chain_id)
    ledger.set_coordinator(admin.address)
    for i, acct in enumerate(orgs):
        ledger.register_participant(acct.address, f"org-{i}")
    members = [
        ParticipantService(ledger.with_account(o), store, desc, train.subset(p), state_dir=tmp_path / f"org{i}", settings=FAST)
        for i, (o, p) in enumerate(zip(orgs, parts))
    ]  # fmt: skip
    coord = CoordinatorService(ledger, store, desc_cid, settings=CoordinatorSettings(round_seconds=120, fetch_timeout=3.0, poll_seconds=0.2))
    return store, ledger, orgs, members, coord, desc


def _submit(ledger: Ledger, store: EmbeddedStore, account, round_id: int, blob: bytes, n: int) -> None:  # type: ignore[no-untyped-def]
    ledger.with_account(account).submit_update(round_id, cid_to_digest(store.put(blob)), n, 0)


@pytest.mark.parametrize("strategy, params, scoring", [
    ("fedavg", {}, GTG),
    ("median", {"clip_norm": 50.0}, {"rule": "leave-one-out", "metric": "macro_f1", "scale": 10000}),
])  # fmt: skip
def test_copier_and_free_rider_flagged_on_chain_and_the_audit_recomputes_every_score(
    tmp_path: Path, chain: LocalAnvil, strategy: str, params: dict, scoring: dict
) -> None:
    store, ledger, orgs, members, coord, desc = _federation(tmp_path, chain, strategy, params, scoring)
    for rnd in (1, 2):
        assert coord.step(None) == "opened"
        for m in members[:3]:
            assert m.step() is not None
        victim = ledger.get_submission(rnd, orgs[0].address)
        victim_blob = store.get(digest_to_cid(victim.update))
        base = read_header(victim_blob).base_model
        copier, rider = orgs[3], orgs[4]
        _submit(ledger, store, copier, rnd, copy_update(victim_blob, UpdateHeader(copier.address, rnd, base, desc.spec.digest(), 900), desc.spec), 900)
        zero = free_ride_delta("free-ride", desc.spec.tensor_shapes(), seed=0, address=rider.address, round_id=rnd)
        _submit(ledger, store, rider, rnd, encode_update(UpdateHeader(rider.address, rnd, base, desc.spec.digest(), 900), zero, desc.spec), 900)
        assert coord.close_round(rnd).finalized

        manifest = json.loads(store.get(digest_to_cid(ledger.get_round(rnd).manifest)))
        entries = {e["participant"]: e for e in manifest["submissions"]}
        assert manifest["strategy"]["name"] == strategy and params.items() <= manifest["strategy"]["params"].items()
        assert [f["reason"] for f in entries[copier.address]["flags"]] == ["copy-payload"]
        assert orgs[0].address in entries[copier.address]["flags"][0]["detail"]
        assert [f["reason"] for f in entries[rider.address]["flags"]] == ["free-ride-unchanged"]
        for cheat in (copier, rider):
            assert entries[cheat.address]["status"] == "accepted" and entries[cheat.address]["aggregated"] is False
            assert entries[cheat.address]["score"] == 0 == ledger.get_submission(rnd, cheat.address).score
        assert "flags" not in entries[orgs[0].address] and "aggregated" not in entries[orgs[0].address]
        assert copier.address not in manifest["aggregation_order"] and rider.address not in manifest["aggregation_order"]
        if scoring["rule"] == "gtg-shapley":
            report = manifest["scoring"]["report"]
            assert 0 < report["evaluations"] <= 40 and len(report["seed"]) == 64
    report = Auditor(ledger, store).audit()
    assert report.ok, report.to_dict()
    assert [v.round_id for v in report.rounds] == [1, 2]


def test_the_audit_catches_a_score_given_to_a_copier(tmp_path: Path, chain: LocalAnvil) -> None:
    from federation.model import load_model_bytes
    from federation.rounds.derive import RoundInputs, SubmissionInput, derive_round

    store, ledger, orgs, members, coord, desc = _federation(tmp_path, chain, "fedavg", {}, GTG)
    coord.step(None)
    for m in members[:3]:
        m.step()
    victim_blob = store.get(digest_to_cid(ledger.get_submission(1, orgs[0].address).update))
    base_hex = read_header(victim_blob).base_model
    header = UpdateHeader(orgs[3].address, 1, base_hex, desc.spec.digest(), 900)
    _submit(ledger, store, orgs[3], 1, copy_update(victim_blob, header, desc.spec), 900)
    subs = ledger.submitters(1)
    records = [ledger.get_submission(1, a) for a in subs]
    base = store.get(digest_to_cid(ledger.get_round(1).base_model))
    result = derive_round(RoundInputs(
        1, coord.descriptor_cid, desc, base, load_model_bytes(base)[1], None,
        [SubmissionInput(a, s.update, s.num_samples, s.epsilon_milli, store.get(digest_to_cid(s.update))) for a, s in zip(subs, records)],
        validation=coord.validation,
    ))  # fmt: skip
    assert result.scores[orgs[3].address] == 0
    g, m = store.put(result.global_model), store.put(result.manifest_bytes)
    # A dishonest coordinator pays the copier as if its update were its own work.
    scores = [result.scores[a] if a != orgs[3].address else max(1, result.scores[orgs[0].address]) for a in subs]
    ledger.finalize_round(1, cid_to_digest(g), cid_to_digest(m), subs, scores)
    report = Auditor(ledger, store).audit()
    assert not report.ok
    assert any("score on chain" in x and orgs[3].address in x for x in report.rounds[0].mismatches)
