"""The forge suite beside the contract (contracts/test/, run by ./scripts/test) tests the same
contract the artifact holds: same compiler settings, and every function and custom error of
the ABI exercised by its unit tests. (Running forge itself is ./scripts/test's job.)"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from contracts import build

ROOT = Path(__file__).resolve().parents[2]
FORGE_TESTS = ROOT / "contracts" / "test"
SHIM = ROOT / "contracts" / "forge_solc_shim.js"


def test_foundry_compiles_like_the_reproducible_build():
    config = tomllib.loads((ROOT / "foundry.toml").read_text())["profile"]["default"]
    assert (config["src"], config["test"]) == ("contracts", "contracts/test")
    assert config["optimizer"] is True and config["optimizer_runs"] == build.SETTINGS["optimizer"]["runs"]
    assert config["evm_version"] == build.SETTINGS["evmVersion"]
    assert config["bytecode_hash"] == build.SETTINGS["metadata"]["bytecodeHash"]
    assert (ROOT / config["solc"]).resolve() == SHIM
    for key in ("out", "cache_path", "test_failures_file"):
        assert config[key].startswith(".forge/"), key  # everything forge writes stays under .forge/


def test_every_function_and_custom_error_has_a_forge_unit_test():
    abi = build.load_artifact().abi
    unit = (FORGE_TESTS / "FederationLedger.t.sol").read_text()
    errors = [item["name"] for item in abi if item["type"] == "error"]
    assert [e for e in errors if f"FederationLedger.{e}.selector" not in unit] == []
    functions = [item["name"] for item in abi if item["type"] == "function"]
    called = set(re.findall(r"\b(?:ledger|fresh|open)\.(\w+)\(", unit))
    assert [f for f in functions if f not in called] == []


def _node() -> str:
    try:
        subprocess.run(["node", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("node is not installed")
    if not (ROOT / "node_modules" / "solc").is_dir():
        pytest.skip("npm solc is not installed (./scripts/setup)")
    return "node"


def test_the_solc_shim_answers_like_native_solc():
    _node()
    version = subprocess.run([str(SHIM), "--version"], check=True, capture_output=True, text=True).stdout
    assert version.splitlines() == [
        "solc, the solidity compiler commandline interface",
        f"Version: {build.PINNED_SOLC}+commit.73712a01.Linux.g++",
    ]
    refused = subprocess.run([str(SHIM), "--optimize"], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "unsupported argument" in refused.stderr
