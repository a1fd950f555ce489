"""The explorer's JSON API over a real federation (anvil, the store, real training): every number
matches the audit's own report, a tampered round shows as a mismatch, bad input is a 4xx JSON error,
reads are bounded, downloads are verified, and verdicts are audited once and then cached."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

with warnings.catch_warnings():  # starlette's note about a future httpx, not about this code
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from contracts.anvil import LocalAnvil
from fedledger.audit import Auditor
from fedledger.explorer.app import create_app
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.index import FederationIndex
from ipfs import cid_to_digest, content_cid
from tests.helpers.explorer import (
    TAMPER_BONUS,
    explorer_over,
    finalize_with_inflated_scores,
)
from tests.helpers.runtime import Env, make_env, run_round

TAMPERED = 3


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Rounds 1 and 2 honest (org-2 sits out round 2), round 3 finalised with inflated scores."""
    with LocalAnvil(accounts=8) as chain:
        env = make_env(tmp_path_factory.mktemp("fed"), chain)
        run_round(env, [0, 1, 2])
        run_round(env, [0, 1])
        assert finalize_with_inflated_scores(env) == TAMPERED
        yield env


@pytest.fixture(scope="module")
def explorer(fed: Env, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    index, details = explorer_over(fed, tmp_path_factory.mktemp("cache"))
    index.refresh()
    client = TestClient(create_app(index, details), base_url="http://127.0.0.1", raise_server_exceptions=False)
    return index, client


def without_seconds(verdict: dict) -> dict:
    return {k: v for k, v in verdict.items() if k != "seconds"}


def test_rounds_and_verdicts_are_the_audits_own(fed: Env, explorer) -> None:  # noqa: ANN001
    _, client = explorer
    report = Auditor(fed.ledger, fed.store, descriptor_cid=fed.fed.descriptor_cid).audit().to_dict()
    rounds = client.get("/api/rounds").json()
    assert [r["id"] for r in rounds] == [3, 2, 1]
    by_id = {r["id"]: r for r in rounds}
    for expected in report["rounds"]:
        got = by_id[expected["round_id"]]
        assert without_seconds(got["audit"]) == without_seconds(expected)
        assert got["state"] == expected["state"] == "finalized"
    assert [by_id[r]["verdict"] for r in (1, 2, 3)] == ["verified", "verified", "mismatch"]
    assert any("score on chain" in m for m in by_id[TAMPERED]["audit"]["mismatches"])
    api_report = client.get("/api/audit").json()
    assert api_report["ok"] is report["ok"] is False
    assert [without_seconds(r) for r in api_report["rounds"]] == [without_seconds(r) for r in report["rounds"]]


def test_federation_overview(fed: Env, explorer) -> None:  # noqa: ANN001
    _, client = explorer
    f = client.get("/api/federation").json()
    assert (f["ledger"], f["chain_id"], f["descriptor"]) == (fed.ledger.address, fed.chain.chain_id, fed.fed.descriptor_cid)
    assert f["current_round"] == 3 and f["privacy_mode"] == "public" and f["genesis_ok"] is True
    assert f["genesis"] == "seeded from the descriptor" and f["lineage"] == []
    assert f["rounds"] == {"verified": 2, "mismatch": 1} and f["audit_ok"] is False
    assert {m["address"]: m["total_score"] for m in f["members"]} == {o.address: fed.ledger.total_score(o.address) for o in fed.orgs}


def test_round_page_data_follows_the_chain(fed: Env, explorer) -> None:  # noqa: ANN001
    _, client = explorer
    r = client.get(f"/api/rounds/{TAMPERED}").json()
    info = fed.ledger.get_round(TAMPERED)
    assert [s["participant"] for s in r["submissions"]] == fed.ledger.submitters(TAMPERED)
    for s in r["submissions"]:
        assert s["score"] == fed.ledger.get_submission(TAMPERED, s["participant"]).score == s["manifest_score"] + TAMPER_BONUS
        assert s["status"] == "accepted" and s["gas"] > 0
    assert cid_to_digest(r["global_model"]) == info.global_model and cid_to_digest(r["manifest"]) == info.manifest
    assert r["gas"]["open"] > 0 and r["gas"]["close"] > 0
    assert [e["name"] for e in r["events"]][:1] == ["RoundOpened"] and r["events"][-1]["name"] == "RoundFinalized"
    assert r["manifest_json"]["round"] == TAMPERED
    org = fed.orgs[0].address
    u = client.get(f"/api/rounds/{TAMPERED}/updates/{org}").json()
    assert u["header"]["participant"] == org and u["header"]["round_id"] == TAMPERED
    assert any("score on chain" in line for line in u["audit_lines"])


def test_member_and_lineage(fed: Env, explorer) -> None:  # noqa: ANN001
    _, client = explorer
    absent = fed.orgs[2].address
    m = client.get(f"/api/members/{absent.lower()}").json()  # any spelling of an address
    assert m["address"] == absent and m["name"] == "org-2"
    assert [h["round"] for h in m["rounds"]] == [1, 3]
    assert m["total_score"] == fed.ledger.total_score(absent) == sum(h["score"] for h in m["rounds"])
    assert [h["round_verdict"] for h in m["rounds"]] == ["verified", "mismatch"]
    lin = client.get("/api/lineage").json()
    assert [n["round"] for n in lin["models"]] == [0, 1, 2, 3]
    assert all(n["links_previous"] for n in lin["models"][1:])
    assert lin["latest"] == lin["models"][-1]["model"]


@pytest.mark.parametrize("path, status", [
    ("/api/rounds/abc", 400), ("/api/rounds/-1", 400), ("/api/rounds/1.5", 400), ("/api/rounds/0", 404),
    ("/api/rounds/99", 404), ("/api/rounds/99999999999999999999999", 400), ("/api/members/0x12", 400),
    ("/api/members/not-an-address", 400), ("/api/members/0x000000000000000000000000000000000000dEaD", 404),
    ("/api/rounds/1/updates/0x000000000000000000000000000000000000dEaD", 404), ("/api/nothing", 404),
    ("/download/rounds/1/weights", 404), ("/download/rounds/x/model", 400), ("/download/rounds/42/model", 404),
])  # fmt: skip
def test_bad_input_is_a_4xx_json_error(explorer, path: str, status: int) -> None:  # noqa: ANN001
    _, client = explorer
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status and body["error"] and "Traceback" not in r.text


def test_a_bad_page_is_an_html_error_page_and_other_hosts_are_refused(explorer) -> None:  # noqa: ANN001
    _, client = explorer
    r = client.get("/rounds/abc")
    assert r.status_code == 400 and "text/html" in r.headers["content-type"] and "is not a number" in r.text
    assert client.get("/api/federation", headers={"host": "evil.example"}).status_code == 400


def test_downloads_are_verified_against_the_chain(fed: Env, explorer) -> None:  # noqa: ANN001
    _, client = explorer
    info = fed.ledger.get_round(1)
    model = client.get("/download/rounds/1/model")
    assert model.status_code == 200 and cid_to_digest(content_cid(model.content)) == info.global_model
    assert 'filename="round-1-model.safetensors"' in model.headers["content-disposition"]
    manifest = client.get("/download/rounds/1/manifest")
    assert cid_to_digest(content_cid(manifest.content)) == info.manifest
    genesis = client.get("/download/genesis")
    assert cid_to_digest(content_cid(genesis.content)) == fed.ledger.genesis_model()


class LyingStore:
    """A store that returns other bytes than the CID asked for (a node that is corrupt or lies)."""

    def __init__(self, store) -> None:  # noqa: ANN001
        self.store = store

    def iter_bytes(self, cid: str):  # noqa: ANN201
        data = bytearray(self.store.get(cid))
        data[len(data) // 2] ^= 1
        yield memoryview(bytes(data))


def test_bytes_that_do_not_match_their_digest_are_not_served(fed: Env, explorer) -> None:  # noqa: ANN001
    index, _ = explorer
    client = TestClient(create_app(index, ChainDetails(fed.ledger, LyingStore(fed.store))), base_url="http://127.0.0.1")
    r = client.get("/download/rounds/1/model")
    assert r.status_code == 502 and "not served" in r.json()["error"]


def test_a_chain_that_does_not_answer_costs_a_bounded_wait_and_a_503(fed: Env, explorer) -> None:  # noqa: ANN001
    from web3 import Web3

    from contracts.client import Ledger
    from contracts.transport import CountingProvider

    index, _ = explorer
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        stuck = Ledger(Web3(CountingProvider(url, 60.0)), fed.ledger.address, fed.ledger.chain_id, url, None,
                       artifact=fed.ledger._artifact, receipt_timeout=1.0)  # fmt: skip
        client = TestClient(create_app(index, ChainDetails(stuck, fed.store, read_timeout=0.5)), base_url="http://127.0.0.1")
        t0 = time.monotonic()
        r = client.get("/api/rounds/2")
        assert r.status_code == 503 and r.json()["error"]
        assert time.monotonic() - t0 < 5
        # The poller, too: a refresh against a silent node ends within its read timeout and says why.
        follower = FederationIndex(stuck, fed.store, cache_dir=fed.tmp / "silent-cache", read_timeout=0.5)
        t0 = time.monotonic()
        snap = follower.refresh()
        assert time.monotonic() - t0 < 5 and snap.error
    finally:
        silent.close()


def test_verdicts_are_cached_and_a_new_round_costs_one_audit(fed: Env, tmp_path: Path) -> None:
    first, _ = explorer_over(fed, tmp_path)
    first.refresh()
    assert first.audits_run == 3
    again, _ = explorer_over(fed, tmp_path)
    snap = again.refresh()
    assert again.audits_run == 0  # every verdict from the cache file
    assert [e.verdict for e in snap.rounds] == [e.verdict for e in first.snapshot().rounds]
    run_round(fed, [0, 1, 2])
    snap = again.refresh()
    assert again.audits_run == 1
    assert [e.verdict.ok for e in snap.rounds] == [True, True, False, True]
    # A cache over another audit's verdict shape, or a garbled file, is audited afresh rather than misread.
    cache_file = next(tmp_path.glob("*.json"))
    cache_file.write_text("{not json", encoding="utf-8")
    fresh, _ = explorer_over(fed, tmp_path)
    fresh.refresh()
    assert fresh.audits_run == 4


def test_the_explorer_follows_a_round_while_it_is_open(fed: Env, explorer) -> None:  # noqa: ANN001
    index, client = explorer
    before = client.get("/api/federation").json()["version"]
    coord = fed.coordinator()
    assert coord.step(None) == "opened"
    rid = fed.ledger.current_round()
    fed.participant(0).step()
    index.refresh()
    opened = client.get(f"/api/rounds/{rid}").json()
    assert opened["state"] == "open" and opened["verdict"] == "open" and len(opened["submissions"]) == 1
    assert client.get("/api/federation").json()["version"] > before
    for i in (1, 2):
        fed.participant(i).step()
    fed.close_submissions(rid)
    for i in (0, 1, 2):
        fed.participant(i).step()  # each member reveals its bytes once submissions close
    assert coord.close_round(rid).finalized
    index.refresh()
    closed = client.get(f"/api/rounds/{rid}").json()
    assert closed["state"] == "finalized" and closed["verdict"] == "verified" and len(closed["submissions"]) == 3


def test_the_server_binds_loopback_and_serves_its_own_assets(fed: Env, tmp_path: Path) -> None:
    import httpx

    from fedledger.explorer import ExplorerSettings, start_explorer

    with start_explorer(fed.ledger, fed.store, settings=ExplorerSettings(cache_dir=tmp_path, poll_seconds=0.2)) as ex:
        assert ex.url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 60
        while client_get(ex.url + "api/federation")["descriptor"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        page = httpx.get(ex.url, timeout=10)
        assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
        for asset in ("static/explorer.css", "static/explorer.js"):
            assert httpx.get(ex.url + asset, timeout=10).status_code == 200
        assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert not any(t.name.startswith("explorer-") for t in threading.enumerate())


def client_get(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=10).json()


def test_round_by_round_audit_matches_the_whole_audit(fed: Env) -> None:
    """The explorer audits one round at a time as they close; a fresh auditor doing that agrees with one audit of all."""
    whole = Auditor(fed.ledger, fed.store, descriptor_cid=fed.fed.descriptor_cid).audit().rounds
    follower = Auditor(fed.ledger, fed.store, descriptor_cid=fed.fed.descriptor_cid)
    stepped = [replace(follower.audit_round(v.round_id), seconds=0.0) for v in whole]
    assert stepped == [replace(v, seconds=0.0) for v in whole]
