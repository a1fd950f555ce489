"""The explorer on a 200-round ledger: once every round has a verdict, the overview and the rounds
API render in well under a second, a restart audits nothing, and a new round costs one audit.

The rounds are cheap ones (random digests, as in tests/contracts/test_history.py), so their
verdicts are the audit's real mismatch reports (the manifests are not in the store)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

from contracts.client import Ledger
from federation.descriptor import Descriptor
from federation.model import ModelSpec
from fedledger.explorer.app import create_app
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.index import FederationIndex
from ipfs import EmbeddedStore, cid_to_digest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROUNDS = 200
ABORTED = {4, 50, 120}
RENDER_BUDGET = 1.0  # seconds, for one page of the whole federation


@pytest.fixture(scope="module")
def long_federation(anvil, accounts, tmp_path_factory):  # noqa: ANN001, ANN201
    store = EmbeddedStore(tmp_path_factory.mktemp("store"))
    spec = ModelSpec(schema_id="test/v1", input_dim=8, hidden=(4,), classes=("normal", "dos", "probe"))
    descriptor = store.put(Descriptor(name="long", spec=spec, validation=store.put(b"no validation set")).to_bytes())
    admin = Ledger.deploy(anvil.rpc_url, accounts[0], os.urandom(32), 1, descriptor=cid_to_digest(descriptor),
                          expected_chain_id=anvil.chain_id)  # fmt: skip
    admin.set_coordinator(accounts[1].address)
    members = [admin.with_account(a) for a in accounts[2:5]]
    for i, m in enumerate(members):
        admin.register_participant(m.account, f"org-{i}")
    coordinator = admin.with_account(accounts[1])

    def add_round(round_id: int) -> None:
        deadline = anvil.block_timestamp() + 3600
        assert coordinator.open_round(admin.latest_model(), deadline).round_id == round_id
        if round_id in ABORTED:  # nobody submitted by the deadline: the coordinator may abort (short of the quorum)
            anvil.increase_time(3601)
            coordinator.abort_round(round_id)
            return
        for m in members:
            m.submit_update(round_id, os.urandom(32), 10 + round_id, 0)
        scores = [round_id * (j + 1) for j in range(len(members))]
        coordinator.finalize_round(round_id, os.urandom(32), os.urandom(32), [m.account for m in members], scores)

    for r in range(1, ROUNDS + 1):
        add_round(r)
    return admin, store, descriptor, add_round


def timed(client: TestClient, path: str) -> tuple[float, object]:
    t0 = time.perf_counter()
    r = client.get(path)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text[:500]
    return elapsed, r


def test_200_rounds_render_in_under_a_second_and_a_new_round_costs_one_audit(long_federation, tmp_path: Path) -> None:  # noqa: ANN001
    ledger, store, descriptor, add_round = long_federation
    index = FederationIndex(ledger, store, cache_dir=tmp_path, descriptor_cid=descriptor)
    t0 = time.perf_counter()
    index.refresh()
    first_refresh = time.perf_counter() - t0
    assert index.audits_run == ROUNDS
    client = TestClient(create_app(index, ChainDetails(ledger, store)), base_url="http://127.0.0.1")
    timed(client, "/")  # templates compiled once
    overview, page = timed(client, "/")
    api, rounds = timed(client, "/api/rounds")
    lineage, _ = timed(client, "/lineage")
    assert len(rounds.json()) == ROUNDS and page.text.count('<tr data-round="') == ROUNDS
    states = {r["id"]: r["verdict"] for r in rounds.json()}
    assert {states[r] for r in ABORTED} == {"aborted"}
    assert {v for r, v in states.items() if r not in ABORTED} == {"unverifiable"}  # no manifest in the store: the audit says so
    assert any("manifest" in m for m in rounds.json()[0]["audit"]["unavailable"])

    # A restart reads the chain again but audits nothing; one more round costs one audit.
    restarted = FederationIndex(ledger, store, cache_dir=tmp_path, descriptor_cid=descriptor)
    t0 = time.perf_counter()
    restarted.refresh()
    cached_refresh = time.perf_counter() - t0
    assert restarted.audits_run == 0
    client = TestClient(create_app(restarted, ChainDetails(ledger, store)), base_url="http://127.0.0.1")
    timed(client, "/")
    cached_overview, _ = timed(client, "/")
    add_round(ROUNDS + 1)
    t0 = time.perf_counter()
    restarted.refresh()
    incremental = time.perf_counter() - t0
    assert restarted.audits_run == 1
    print(
        f"\nexplorer, {ROUNDS} rounds: overview {overview * 1000:.0f} ms, /api/rounds {api * 1000:.0f} ms, "
        f"lineage {lineage * 1000:.0f} ms; after a restart from the cache: overview {cached_overview * 1000:.0f} ms "
        f"(refresh {cached_refresh:.2f} s, 0 audits); first refresh with {ROUNDS} audits {first_refresh:.2f} s; "
        f"round {ROUNDS + 1}: refresh with 1 audit {incremental:.2f} s"
    )
    assert max(overview, api, lineage, cached_overview) < RENDER_BUDGET
