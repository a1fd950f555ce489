"""Federated transfer learning the audit checks: a pretrained genesis re-derived, lineage across ledgers.

Real anvil, the compiled contract, the store on disk and real torch training. The hostile
cases are an admin who starts a ledger from another model than the descriptor's recipe
makes, who withholds the public set the recipe needs, and who names a parent round that
never published the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from contracts.client import Ledger
from federation.flowset import flowset_bytes
from federation.genesis import ParentModel, Pretraining
from federation.model import save_model_bytes
from federation.model.network import init_model
from fedledger.audit import Auditor
from fedledger.deploy import parent_genesis
from flows.synthetic import generate
from ipfs import EmbeddedStore, cid_to_digest, digest_to_cid
from participant.service import BaseRefused
from tests.helpers.runtime import ROOT, Env, delete_content, make_env, run_round

RECIPE = {"epochs": 3}


@pytest.fixture(scope="module")
def public():  # type: ignore[no-untyped-def]
    return generate(2000, 31)


def _events(env: Env, i: int):  # type: ignore[no-untyped-def]
    seen: list[tuple[str, dict]] = []
    return env.participant(i, on_event=lambda kind, info: seen.append((kind, info))), seen


def _open(ledger: Ledger, env: Env) -> int:
    """Open a round on ``ledger`` as its coordinator, from its latest model."""
    opened = ledger.with_account(env.coordinator_key).open_round(ledger.latest_model(), env.chain.block_timestamp() + 60)
    return opened.round_id


def test_a_pretrained_genesis_is_re_derived_by_the_audit_and_by_members_before_they_train(tmp_path: Path, chain, public) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path, chain, pretrain=public, pretrain_recipe=RECIPE)
    g = env.fed.descriptor.genesis
    assert isinstance(g, Pretraining) and g.epochs == 3 and g.torch == torch.__version__
    assert env.store.get(g.dataset) == flowset_bytes(public)  # the public set is in the store under the CID named
    assert cid_to_digest(env.fed.genesis_cid) == env.ledger.genesis_model()

    report = Auditor(env.ledger, env.store).audit()
    assert report.ok and report.genesis_ok and report.mismatches == []

    member, seen = _events(env, 0)
    coord = env.coordinator()  # it checks the federation (pretraining included) when it starts
    assert coord.step(None) == "opened"
    assert member.step() is not None
    assert ("verified", {"round": 0, "seconds": seen[0][1]["seconds"], "ok": True}) in seen
    assert env.participant(1).step() is not None
    env.close_submissions(1)
    for i in (0, 1):
        env.participant(i).step()
    assert coord.close_round(1).finalized
    assert Auditor(env.ledger, env.store).audit().ok


def test_a_ledger_started_from_another_model_than_the_recipe_makes_is_named_and_refused(tmp_path: Path, chain, public) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path, chain, pretrain=public, pretrain_recipe=RECIPE)
    spec = env.fed.descriptor.spec
    crafted = env.store.put(save_model_bytes(spec, {k: v * 40 for k, v in init_model(spec, 1234).items()}))
    # the admin deploys a ledger naming the honest descriptor, but starting from its own model
    admin = chain.accounts[0]
    hostile = Ledger.deploy(chain.rpc_url, admin, cid_to_digest(crafted), 1, descriptor=cid_to_digest(env.fed.descriptor_cid),
                            expected_chain_id=chain.chain_id, abort_grace=120)  # fmt: skip
    hostile.set_coordinator(env.coordinator_key.address)
    hostile.register_participant(env.orgs[0].address, "org-0")

    report = Auditor(hostile, env.store).audit()
    assert not report.ok and not report.genesis_ok
    assert report.mismatches == [
        f"genesis: re-running the descriptor's pretraining (torch {torch.__version__} here, {torch.__version__} when it "
        f"was made) gives genesis model {env.fed.genesis_cid}, the chain starts from {crafted}"
    ]
    round_id = _open(hostile, env)
    member = replace(env, fed=replace(env.fed, ledger=hostile), tmp=tmp_path / "hostile")
    with pytest.raises(BaseRefused, match="the genesis model cannot be trusted: genesis: re-running the descriptor's pretraining"):
        member.participant(0).step()
    assert hostile.get_submission(round_id, env.orgs[0].address) is None  # nothing was trained on the crafted model


def test_a_withheld_pretraining_set_makes_the_genesis_unverifiable_by_name(tmp_path: Path, chain, public) -> None:  # type: ignore[no-untyped-def]
    env = make_env(tmp_path, chain, pretrain=public, pretrain_recipe=RECIPE)
    delete_content(env, env.fed.descriptor.genesis.dataset)
    report = Auditor(env.ledger, env.store).audit()
    assert not report.genesis_ok
    assert report.mismatches[0].startswith("genesis: cannot re-derive the pretrained genesis model, content is missing: ")
    assert env.fed.descriptor.genesis.dataset in report.mismatches[0]


def _copy(src: Env, dst_store, *cids: str) -> None:  # type: ignore[no-untyped-def]
    for cid in cids:
        assert dst_store.put(src.store.get(cid)) == cid


def test_a_federation_started_from_anothers_global_model_records_and_checks_its_lineage(tmp_path: Path, chain) -> None:  # type: ignore[no-untyped-def]
    a = make_env(tmp_path / "a", chain)
    assert run_round(a, [0, 1]).finalized
    store_b = EmbeddedStore(tmp_path / "b" / "store")  # B's members hold A's descriptor and model
    _copy(a, store_b, a.fed.descriptor_cid, digest_to_cid(a.ledger.get_round(1).global_model))
    entry, parent_desc = parent_genesis(a.ledger, store_b)
    assert entry == ParentModel(chain.chain_id, a.ledger.address, 1, digest_to_cid(a.ledger.get_round(1).global_model))
    assert parent_desc.spec == a.fed.descriptor.spec
    b = make_env(tmp_path / "b", chain, parent=entry)
    assert b.ledger.genesis_model() == a.ledger.get_round(1).global_model  # B starts where A's round 1 ended

    report = Auditor(b.ledger, b.store).audit()
    assert report.ok, report.mismatches
    assert report.lineage == [{"child": b.ledger.address, "parent": a.ledger.address, "chain_id": chain.chain_id, "round": 1,
                               "model": entry.model, "ok": True, "problems": []}]  # fmt: skip
    member, seen = _events(b, 0)
    assert b.coordinator().step(None) == "opened"
    assert member.step() is not None and seen[0] == ("verified", {"round": 0, "seconds": seen[0][1]["seconds"], "ok": True})

    # the audit as a command prints the link
    out = subprocess.run(
        [sys.executable, "-m", "fedledger", "audit", *b.common_args()], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=dict(os.environ, COLUMNS="200"), stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"starts from round 1 of {a.ledger.address} (chain {chain.chain_id}), model {entry.model}: verified" in out.stderr
    ancestry = subprocess.run(
        [sys.executable, "-m", "fedledger", "audit", "lineage", "--json", *b.common_args()], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env=dict(os.environ), stdin=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    assert json.loads(ancestry.stdout)["ancestors"] == report.lineage


def test_a_parent_round_that_never_published_the_model_breaks_the_lineage(tmp_path: Path, chain) -> None:  # type: ignore[no-untyped-def]
    a = make_env(tmp_path / "a", chain)
    assert run_round(a, [0, 1]).finalized
    published = digest_to_cid(a.ledger.get_round(1).global_model)
    # the admin of C claims A's round 1 published A's genesis model (say, one it crafted and planted as A's genesis)
    forged = ParentModel(chain.chain_id, a.ledger.address, 1, a.fed.genesis_cid)
    _parent_store(a, tmp_path / "c", forged)
    c = make_env(tmp_path / "c", chain, parent=forged)
    report = Auditor(c.ledger, c.store).audit()
    assert report.genesis_ok  # the genesis bytes are the model named ...
    assert not report.ok  # ... but the link to the parent does not hold
    assert report.mismatches == [
        f"lineage: round 1 of ledger {a.ledger.address} is finalized with global model {published}, not {a.fed.genesis_cid}"
    ]
    assert c.coordinator().step(None) == "opened"
    with pytest.raises(BaseRefused, match=f"the genesis model cannot be trusted: round 1 of ledger {a.ledger.address}"):
        c.participant(0).step()
    # the explorer shows the broken link and does not call the federation audited
    import warnings

    with warnings.catch_warnings():  # starlette's note about a future httpx, not about this code
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from fedledger.explorer.app import create_app
    from tests.helpers.explorer import explorer_over

    index, details = explorer_over(c, tmp_path / "explorer-cache")
    index.refresh()
    page = TestClient(create_app(index, details), base_url="http://127.0.0.1").get("/api/federation").json()
    assert page["genesis"] == f"round 1 of ledger {a.ledger.address} (chain {chain.chain_id})"
    assert page["genesis_ok"] is False and page["lineage"][0]["ok"] is False
    assert page["genesis_mismatches"] == report.mismatches

    for entry, named in (
        (ParentModel(chain.chain_id, a.ledger.address, 7, published), f"ledger {a.ledger.address} on chain {chain.chain_id} has no round 7"),
        (ParentModel(999, a.ledger.address, 1, published), "the lineage reaches chain 999, and no JSON-RPC URL is known for it"),
    ):
        where = tmp_path / f"d{entry.round}-{entry.chain_id}"
        _parent_store(a, where, entry)
        d = make_env(where, chain, parent=entry)
        found = Auditor(d.ledger, d.store).audit().mismatches
        assert len(found) == 1 and named in found[0], found


def _parent_store(a: Env, where: Path, entry: ParentModel) -> None:
    """Put the parent's descriptor and the named model into the store ``make_env`` will open at ``where``."""
    _copy(a, EmbeddedStore(where / "store"), a.fed.descriptor_cid, entry.model)


def test_deploy_from_the_command_line_with_a_parent_and_with_pretraining(tmp_path: Path, chain, public) -> None:  # type: ignore[no-untyped-def]
    a = make_env(tmp_path / "a", chain)
    assert run_round(a, [0, 1]).finalized
    admin, coordinator = chain.accounts[0], chain.accounts[1]
    base = ["--rpc-url", chain.rpc_url, "--chain-id", str(chain.chain_id), "--store", str(a.store_dir), "--holdouts", "0",
            "--coordinator", coordinator.address]  # fmt: skip
    env = dict(os.environ, FEDLEDGER_PRIVATE_KEY=admin.key.hex(), COLUMNS="250")

    def deploy(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fedledger", "deploy", *base, *extra], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, check=False)  # fmt: skip

    child = deploy("--parent-ledger", a.ledger.address, "--hidden", "99")  # the parent's layer sizes win over --hidden
    assert child.returncode == 0, child.stderr
    address = child.stdout.strip().splitlines()[-1]
    assert f"round 1 of ledger {a.ledger.address} (chain {chain.chain_id})" in child.stderr
    ledger = Ledger.attach(chain.rpc_url, address)
    assert ledger.genesis_model() == a.ledger.get_round(1).global_model
    assert Auditor(ledger, a.store).audit().ok

    (tmp_path / "public.flowset").write_bytes(flowset_bytes(public))
    pre = deploy("--pretrain", str(tmp_path / "public.flowset"), "--pretrain-epochs", "2", "--validation", str(tmp_path / "public.flowset"))
    assert pre.returncode == 0, pre.stderr
    pre_ledger = Ledger.attach(chain.rpc_url, pre.stdout.strip().splitlines()[-1])
    audit = Auditor(pre_ledger, a.store)
    assert audit.audit().ok and audit.descriptor().genesis.epochs == 2

    (tmp_path / "garbage.flowset").write_bytes(b"not a flow set")
    for extra, named in (
        (("--pretrain", str(tmp_path / "missing.flowset")), "does not exist"),
        (("--pretrain", str(tmp_path / "garbage.flowset")), f"pretraining file {tmp_path / 'garbage.flowset'}: flow set:"),
        (("--parent-ledger", a.ledger.address, "--pretrain", str(tmp_path / "public.flowset")), "--pretrain and --parent-ledger"),
        (("--parent-ledger", a.ledger.address, "--parent-round", "5"), "has no finalised round 5"),
        (("--parent-ledger", "0x" + "12" * 20), "no contract at"),
    ):
        bad = deploy(*extra)
        assert bad.returncode != 0 and named in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
