"""`fedledger ipfs check-swarm`: a Kubo repository set up as docs/store.md says, and each way it can fall short."""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from ipfs import StoreError
from ipfs.swarm_check import check_repo

ROOT = Path(__file__).resolve().parents[2]

# The parts of `ipfs init`'s config the check reads, after docs/store.md's commands ran.
PRIVATE = {
    "Identity": {"PeerID": "12D3KooWExampleExampleExampleExampleExampleExample1"},
    "Addresses": {"API": "/ip4/127.0.0.1/tcp/5001", "Gateway": "/ip4/127.0.0.1/tcp/8080",
                  "Swarm": ["/ip4/0.0.0.0/tcp/4001"]},
    "Bootstrap": [],
    "AutoConf": {"Enabled": False},
    "Routing": {"Type": "none"},
    "Provide": {"Enabled": False},
    "Peering": {"Peers": [{"ID": "12D3KooWOtherOtherOtherOtherOtherOtherOtherOther2", "Addrs": ["/dns4/org-b.example/tcp/4001"]}]},
}  # fmt: skip


def _repo(tmp_path: Path, config: dict, key: str | None = None, mode: int = 0o600) -> Path:
    repo = tmp_path / "ipfs"
    repo.mkdir(exist_ok=True)
    (repo / "config").write_text(json.dumps(config))
    if key is None:
        key = f"/key/swarm/psk/1.0.0/\n/base16/\n{secrets.token_hex(32)}\n"
    if key:
        (repo / "swarm.key").write_text(key)
        os.chmod(repo / "swarm.key", mode)
    return repo


def test_a_private_member_node_passes(tmp_path) -> None:
    findings = check_repo(_repo(tmp_path, PRIVATE))
    assert [f.setting for f in findings if not f.ok] == []
    legacy = copy.deepcopy(PRIVATE)
    del legacy["Provide"]
    legacy["Reprovider"] = {"Interval": "0"}  # Kubo before 0.38
    legacy["Routing"]["Type"] = "dhtclient"
    assert all(f.ok for f in check_repo(_repo(tmp_path, legacy)))


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        (lambda c: c.update(Bootstrap=["auto"]), "Bootstrap"),
        (lambda c: c.update(Bootstrap=["/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"]), "Bootstrap"),
        (lambda c: c.pop("Routing"), "Routing.Type"),
        (lambda c: c["Routing"].update(Type="dht"), "Routing.Type"),
        (lambda c: c["Routing"].update(Type="auto"), "Routing.Type"),
        (lambda c: c.pop("Provide"), "Provide.Enabled"),
        (lambda c: c["Provide"].update(Enabled=True), "Provide.Enabled"),
        (lambda c: c.pop("AutoConf"), "AutoConf.Enabled"),
        (lambda c: c["Addresses"].update(API="/ip4/0.0.0.0/tcp/5001"), "Addresses.API"),
        (lambda c: c["Peering"].update(Peers=[]), "Peering.Peers"),
    ],
)
def test_each_public_setting_is_named(tmp_path, change, setting) -> None:
    config = copy.deepcopy(PRIVATE)
    change(config)
    failed = [f for f in check_repo(_repo(tmp_path, config)) if not f.ok]
    assert [f.setting for f in failed] == [setting]


@pytest.mark.parametrize(
    ("key", "mode", "detail"),
    [
        ("", 0o600, "missing"),
        ("/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n", 0o600, "not a pre-shared key"),
        (f"/key/swarm/psk/1.0.0/\n/base16/\n{'ab' * 32}\n", 0o644, "readable by other users"),
    ],
)
def test_the_swarm_key_must_be_there_well_formed_and_private(tmp_path, key, mode, detail) -> None:
    failed = [f for f in check_repo(_repo(tmp_path, PRIVATE, key=key, mode=mode)) if not f.ok]
    assert [f.setting for f in failed] == ["swarm.key"] and detail in failed[0].detail


def test_not_a_repository(tmp_path) -> None:
    with pytest.raises(StoreError, match="not a Kubo repository"):
        check_repo(tmp_path)


def test_the_command_prints_every_finding_and_fails_on_one(tmp_path) -> None:
    config = copy.deepcopy(PRIVATE)
    config["Bootstrap"] = ["auto"]
    repo = _repo(tmp_path, config)
    run = subprocess.run([sys.executable, "-m", "fedledger", "ipfs", "check-swarm", "--repo", str(repo)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert "FAIL Bootstrap" in run.stdout and "ok   Routing.Type" in run.stdout
    assert "is not a private member node: Bootstrap" in run.stderr and "Traceback" not in run.stderr
