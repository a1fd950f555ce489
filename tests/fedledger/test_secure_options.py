"""`--privacy secure-aggregation` on `fedledger deploy` and `fedledger simulate`: what each writes, and what each refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from federation.descriptor import Descriptor
from fedledger.cli import main
from fedledger.config import load_config
from ipfs import EmbeddedStore

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedledger", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env=env, stdin=subprocess.DEVNULL)  # fmt: skip


def test_deploy_writes_the_secure_parameters_in_the_descriptor_and_the_mode_on_chain(tmp_path: Path) -> None:
    with LocalAnvil(accounts=3) as chain:
        admin, coordinator = chain.accounts[0], chain.accounts[1]
        env = dict(os.environ, FEDLEDGER_PRIVATE_KEY=admin.key.hex())
        common = ["deploy", "--rpc-url", chain.rpc_url, "--store", str(tmp_path / "store"), "--min-updates", "2",
                  "--coordinator", coordinator.address, "--holdout-dir", str(tmp_path / "holdouts")]  # fmt: skip

        refused = _cli(*common, "--threshold", "3", "--out", str(tmp_path / "a.toml"), env=env)
        assert refused.returncode == 1 and "secure-aggregation parameters" in refused.stderr and "hint:" in refused.stderr
        refused = _cli(*common, "--privacy", "secure-aggregation", "--max-members", "6", "--threshold", "3",
                       "--out", str(tmp_path / "b.toml"), env=env)  # fmt: skip
        assert refused.returncode == 1 and "threshold must exceed half" in refused.stderr
        refused = _cli(*common, "--privacy", "secure-aggregation", "--max-members", "5", "--strategy", "median",
                       "--out", str(tmp_path / "c.toml"), env=env)  # fmt: skip
        assert refused.returncode == 1 and "median" in refused.stderr
        refused = _cli(*common, "--privacy", "secret", "--out", str(tmp_path / "d.toml"), env=env)
        assert refused.returncode == 1 and "unknown privacy mode" in refused.stderr
        assert not any((tmp_path / f"{x}.toml").exists() for x in "abcd")  # nothing half-deployed

        done = _cli(*common, "--privacy", "secure-aggregation", "--max-members", "7", "--clip", "0.5",
                    "--share-seconds", "45", "--out", str(tmp_path / "fed.toml"), env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert admin.key.hex() not in done.stdout + done.stderr
        cfg = load_config(tmp_path / "fed.toml")
        store = EmbeddedStore(tmp_path / "store")
        desc = Descriptor.from_bytes(store.get(cfg.federation.descriptor))
        assert desc.privacy == {"mode": "secure-aggregation", "threshold": 4, "max_members": 7, "clip": 0.5,
                                "weight_cap": 10_000, "share_seconds": 45}  # fmt: skip
        assert desc.scoring["rule"] == "sample-share"
        ledger = Ledger.attach(chain.rpc_url, cfg.chain.ledger)
        assert ledger.contract.functions.secureAggregation().call() is True


def test_simulate_runs_the_masking_protocol_and_refuses_what_needs_plaintext(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "sim.json"
    assert main(["simulate", "--records", "3000", "--participants", "5", "--rounds", "2", "--hidden", "16",
                 "--privacy", "secure-aggregation", "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["privacy_mode"] == "secure-aggregation" and result["scoring"]["rule"] == "sample-share"
    assert len(result["rounds"]) == 2
    for rnd in result["rounds"]:
        scores = [p["score"] for p in rnd["participants"]]
        assert len(scores) == 5 and all(s > 0 for s in scores)  # every member is in the sum, scored by its sample share
    first, second = (r["metrics"]["macro_f1"] for r in result["rounds"])
    assert second > first  # the model learns from the unmasked sums
    assert len(set(result["rounds"][0]["update_bytes"].values())) == 1  # masked updates: one size, whatever the data

    bad = tmp_path / "bad.json"
    assert main(["simulate", "--privacy", "secure-aggregation", "--attack", "copy:1", "--records", "500", "--json", str(bad)]) == 1
    assert "secure aggregation shows only their sum" in capsys.readouterr().err
    assert main(["simulate", "--privacy", "hidden", "--records", "500", "--json", str(bad)]) == 1
    assert "unknown privacy mode" in capsys.readouterr().err
    assert not bad.exists()
