"""The command line: configuration, keys, deploy/register/export, and how errors read."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from federation.model import load_model_bytes
from fedledger.config import ConfigError, load_config
from fedledger.keys import KeyError_, load_account, write_keystore
from ipfs import EmbeddedStore, cid_to_digest
from ipfs.builder import build

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fedledger", *args], cwd=ROOT, capture_output=True, text=True, timeout=180,
        env=env if env is not None else dict(os.environ), stdin=subprocess.DEVNULL,
    )  # fmt: skip


# ----------------------------------------------------------------------------- configuration


def test_config_reads_toml_and_options_override_it(tmp_path: Path) -> None:
    p = tmp_path / "fed.toml"
    p.write_text('[chain]\nrpc_url = "http://127.0.0.1:9"\nchain_id = 7\n[federation]\nrounds = 3\n')
    cfg = load_config(p)
    assert (cfg.chain.rpc_url, cfg.chain.chain_id, cfg.federation.rounds) == ("http://127.0.0.1:9", 7, 3)
    cfg = cfg.with_overrides(chain={"chain_id": 31337, "ledger": None}, federation={"rounds": 9})
    assert (cfg.chain.chain_id, cfg.federation.rounds, cfg.chain.rpc_url) == (31337, 9, "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[chian]\nrpc_url = 'x'\n", "unknown section"),
        ("[chain]\nrcp_url = 'x'\n", "unknown key(s) in [chain]: rcp_url"),
        ("[chain\n", "not valid TOML"),
        ("chain = 3\n", "must be a table"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- keys


def test_keystore_round_trip_and_errors_never_show_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    acct = Account.create()
    ks = write_keystore(acct, tmp_path / "k.json", "s3cret")
    assert oct(ks.stat().st_mode & 0o777) == "0o600"
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert load_account(keystore=ks, password_file=pw).address == acct.address
    pw.write_text("wrong")
    with pytest.raises(KeyError_, match="wrong password"):
        load_account(keystore=ks, password_file=pw)
    monkeypatch.delenv("FEDLEDGER_KEY_PASSWORD", raising=False)
    with pytest.raises(KeyError_, match="needs a password"):
        load_account(keystore=ks)
    monkeypatch.delenv("FEDLEDGER_PRIVATE_KEY", raising=False)
    with pytest.raises(KeyError_, match="no signing key"):
        load_account()
    bad = acct.key.hex()[:-2]  # 31 bytes: close to a key, must not be echoed
    monkeypatch.setenv("FEDLEDGER_PRIVATE_KEY", bad)
    with pytest.raises(KeyError_) as info:
        load_account()
    assert bad not in str(info.value) and bad not in (info.value.hint or "")


# ----------------------------------------------------------------------------- deploy, register, export


def test_deploy_register_and_export_through_the_cli(tmp_path: Path) -> None:
    admin = Account.create()
    ks = write_keystore(admin, tmp_path / "admin.json", "pw")
    (tmp_path / "pw").write_text("pw")
    store = tmp_path / "store"
    with LocalAnvil(accounts=2) as chain:
        funder = chain.accounts[0]
        from web3 import Web3

        web3 = Web3(Web3.HTTPProvider(chain.rpc_url))
        tx = funder.sign_transaction({
            "to": admin.address, "value": 10**18, "gas": 21000, "gasPrice": web3.eth.gas_price,
            "nonce": web3.eth.get_transaction_count(funder.address), "chainId": chain.chain_id,
        })  # fmt: skip
        web3.eth.wait_for_transaction_receipt(web3.eth.send_raw_transaction(tx.raw_transaction))

        env = dict(os.environ)
        env.pop("FEDLEDGER_PRIVATE_KEY", None)
        toml = tmp_path / "fed.toml"
        common = ["deploy", "--rpc-url", chain.rpc_url, "--store", str(store), "--keystore", str(ks),
                  "--password-file", str(tmp_path / "pw"), "--min-updates", "2", "--out", str(toml)]  # fmt: skip
        refused = _cli(*common, env=env)  # no coordinator: the admin's key would coordinate too
        assert refused.returncode == 1 and "coordinator must be another key" in refused.stderr and "hint:" in refused.stderr
        refused = _cli(*common, "--coordinator", admin.address, env=env)
        assert refused.returncode == 1 and "the admin's own key" in refused.stderr
        coordinator = Account.create()
        done = _cli(*common, "--coordinator", coordinator.address, "--holdout-dir", str(tmp_path / "holdouts"), env=env)
        assert done.returncode == 0, done.stderr
        assert admin.key.hex() not in done.stdout + done.stderr
        cfg = load_config(toml)
        address = done.stdout.strip().splitlines()[-1]
        assert cfg.chain.ledger == address and cfg.federation.descriptor.startswith("Qm")
        assert cfg.chain.chain_id == chain.chain_id  # written by deploy: whoever receives the file refuses other chains
        assert len(list((tmp_path / "holdouts").iterdir())) == 5

        member = Account.create()
        done = _cli("register", member.address, "Test Hospital", "--config", str(toml), "--keystore", str(ks),
                    "--password-file", str(tmp_path / "pw"), env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        ledger = Ledger.attach(chain.rpc_url, address, expected_chain_id=chain.chain_id)
        assert ledger.is_participant(member.address) and ledger.min_updates() == 2

        out = tmp_path / "genesis.safetensors"
        done = _cli("model", "export", str(out), "--config", str(toml), env=env)
        assert done.returncode == 0, done.stderr
        blob = out.read_bytes()
        assert cid_to_digest(build(blob)[0]) == ledger.latest_model() == ledger.genesis_model()
        spec, _ = load_model_bytes(blob)
        assert json.loads(out.with_suffix(".spec.json").read_text())["input_dim"] == spec.input_dim
        assert EmbeddedStore(store).has(cfg.federation.descriptor)

        done = _cli("model", "export", str(out), "--round", "1", "--config", str(toml), env=env)
        assert done.returncode == 1 and "UnknownRound(roundId=1)" in done.stderr and "Traceback" not in done.stderr


def test_errors_are_one_readable_line_with_a_hint(tmp_path: Path) -> None:
    env = dict(os.environ, FEDLEDGER_PRIVATE_KEY="0x" + "11" * 32)
    done = _cli("register", "0x" + "22" * 20, "x", "--rpc-url", "http://127.0.0.1:9", "--ledger", "0x" + "33" * 20, env=env)
    assert done.returncode == 1
    assert "127.0.0.1:9" in done.stderr and "hint:" in done.stderr and "Traceback" not in done.stderr
    assert "11" * 32 not in done.stderr
    done = _cli("audit", "--rpc-url", "http://127.0.0.1:9", env=env)
    assert done.returncode == 1 and "no ledger address given" in done.stderr and "Traceback" not in done.stderr
    usage = _cli("simulate", "--participants", "many", env=env)
    assert usage.returncode == 2 and "--participants" in usage.stderr and "Traceback" not in usage.stderr
    debug = _cli("--debug", "audit", "--rpc-url", "http://127.0.0.1:9", env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_raw_flow_files_use_the_normaliser_merged_from_every_members_statistics(tmp_path: Path) -> None:
    """NSL-KDD members: statistics out, merged at deploy, each member's raw file encoded with the merged normaliser."""
    from federation.descriptor import Descriptor
    from fedledger.cli import main
    from flows import load_dataset
    from flows.schema import Normaliser

    data = ROOT / "tests" / "data"
    files = [data / "nsl_kdd_train.txt", data / "nsl_kdd_test.txt"]
    stats = []
    for i, f in enumerate(files):
        out = tmp_path / f"stats{i}.json"
        assert main(["participant", "stats", "--data", str(f), "--data-format", "nsl-kdd", "--out", str(out)]) == 0
        stats.append(out)
        assert "sum_sq" in json.loads(out.read_text())  # sums only: no row leaves the member
    store = tmp_path / "store"
    with LocalAnvil(accounts=3) as chain:
        admin, org = chain.accounts[0], chain.accounts[1]
        os.environ["FEDLEDGER_PRIVATE_KEY"] = admin.key.hex()
        try:
            toml = tmp_path / "fed.toml"
            rc = main([
                "deploy", "--rpc-url", chain.rpc_url, "--store", str(store), "--validation", str(files[1]),
                "--validation-format", "nsl-kdd", *sum((["--stats", str(s)] for s in stats), []), "--out", str(toml),
                "--hidden", "8", "--dev-same-key", "--holdouts", "0",
            ])  # fmt: skip
            assert rc == 0
            cfg = load_config(toml)
            assert main(["register", org.address, "Member", "--config", str(toml)]) == 0
            desc = Descriptor.from_bytes(EmbeddedStore(store).get(cfg.federation.descriptor))
            assert desc.spec.schema_id == "nsl-kdd/v1" and desc.normaliser is not None
            ledger = Ledger.attach(chain.rpc_url, cfg.chain.ledger, chain.accounts[0])
            ledger.open_round(ledger.latest_model(), chain.block_timestamp() + 600)
            os.environ["FEDLEDGER_PRIVATE_KEY"] = org.key.hex()
            rc = main(["participant", "run", "--config", str(toml), "--data", str(files[0]), "--data-format", "nsl-kdd",
                       "--state-dir", str(tmp_path / "st"), "--one-shot"])  # fmt: skip
            assert rc == 0
        finally:
            os.environ.pop("FEDLEDGER_PRIVATE_KEY", None)
        sub = ledger.get_submission(1, org.address)
        # The member encoded its rows with the federation's merged normaliser, not one fitted on its own rows.
        merged, _ = load_dataset("nsl-kdd", files[0], None, test_fraction=0.0, normaliser=Normaliser.from_dict(desc.normaliser))
        own, _ = load_dataset("nsl-kdd", files[0], None, test_fraction=0.0)
        assert sub is not None and sub.num_samples == len(merged)
        assert not np.allclose(merged.features, own.features)


def test_an_unknown_scoring_rule_is_refused_before_anything_is_deployed(tmp_path: Path) -> None:
    from federation.rounds.scoring import InvalidScoringRule
    from fedledger.deploy import create_federation
    from flows.synthetic import generate

    store = EmbeddedStore(tmp_path / "store")
    with pytest.raises(InvalidScoringRule):
        create_federation(
            rpc_url="http://127.0.0.1:9", admin=Account.create(), store=store, name="x", coordinator="0x" + "11" * 20,
            validation=generate(200, 1), scoring="shapley-ish", holdouts=0,
        )  # fmt: skip
    assert list(store.list()) == []  # nothing was written for a federation that was never created
