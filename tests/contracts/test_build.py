"""The reproducible build: the committed artifact is what the pinned compiler produces."""

from __future__ import annotations

import json
import os

import pytest
from eth_utils import keccak

from contracts import build, errors
from ipfs import cid_to_digest, content_cid


@pytest.fixture(scope="module")
def rebuilt() -> build.Artifact:
    """A fresh compile with whatever solc 0.8.30 this machine has (solcjs from npm here)."""
    return build.compile_ledger()


def test_rebuild_reproduces_the_committed_bytecode(rebuilt):
    committed = json.loads(build.ARTIFACT_PATH.read_text())
    assert rebuilt.bytecode == committed["bytecode"]
    assert rebuilt.deployed_bytecode == committed["deployedBytecode"]
    assert rebuilt.abi == committed["abi"]
    assert rebuilt.compiler_version == committed["compilerVersion"] == "0.8.30+commit.73712a01"
    assert committed["settings"] == {"optimizer": {"enabled": True, "runs": 1000}, "evmVersion": "cancun",
                                     "metadata": {"bytecodeHash": "ipfs"}}
    assert committed["sourceSha256"] == build.source_sha256()
    assert rebuilt.method_identifiers == committed["methodIdentifiers"]
    assert rebuilt.storage_layout == committed["storageLayout"]
    assert rebuilt.raw_metadata == committed["rawMetadata"]
    assert json.loads(committed["rawMetadata"]) == committed["metadata"]


def test_method_identifiers_are_the_abi_selectors():
    artifact = build.load_artifact()
    functions = [item for item in artifact.abi if item["type"] == "function"]
    expected = {}
    for fn in functions:
        signature = f"{fn['name']}({','.join(_abi_type(i) for i in fn['inputs'])})"
        expected[signature] = keccak(text=signature)[:4].hex()
    assert artifact.method_identifiers == expected


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][len("tuple"):]
    return param["type"]


def test_the_metadata_is_the_one_the_runtime_code_commits_to():
    """Sourcify's check: the IPFS hash in the runtime code's CBOR tail is the CID of the metadata JSON."""
    artifact = build.load_artifact()
    code = bytes.fromhex(artifact.deployed_bytecode[2:])
    tail = code[-2 - int.from_bytes(code[-2:], "big") : -2]
    marker = b"\x64ipfs\x58\x22"  # text key "ipfs", then a 34-byte byte string (the multihash)
    assert marker in tail
    multihash = tail[tail.index(marker) + len(marker) :][:34]
    assert multihash[:2] == b"\x12\x20"  # sha2-256, 32 bytes
    assert cid_to_digest(content_cid(artifact.raw_metadata.encode("utf-8"))) == multihash[2:]
    metadata = json.loads(artifact.raw_metadata)
    assert metadata["compiler"]["version"] == artifact.compiler_version
    assert metadata["settings"]["optimizer"] == build.SETTINGS["optimizer"]
    assert metadata["settings"]["compilationTarget"] == {build.SOURCE_NAME: build.CONTRACT_NAME}


def test_the_storage_layout_packs_what_the_docs_say():
    slots: dict[str, list[str]] = {}
    for var in build.load_artifact().storage_layout["storage"]:
        slots.setdefault(var["slot"], []).append(var["label"])
    assert slots["0"] == ["_coordinator", "_currentRound", "_latestFinalizedRound"]  # the lineage head


def test_check_command_passes_on_the_committed_artifact(rebuilt, monkeypatch, capsys):
    monkeypatch.setattr(build, "compile_ledger", lambda solc=None: rebuilt)
    assert build.main(["--check"]) == 0
    assert "reproduced" in capsys.readouterr().out


def test_check_command_fails_on_a_stale_artifact(rebuilt, monkeypatch, tmp_path, capsys):
    stale = tmp_path / "FederationLedger.json"
    data = rebuilt.to_json()
    data["deployedBytecode"] = data["deployedBytecode"][:-2] + "00"
    stale.write_text(json.dumps(data))
    monkeypatch.setattr(build, "ARTIFACT_PATH", stale)
    monkeypatch.setattr(build, "compile_ledger", lambda solc=None: rebuilt)
    assert build.main(["--check"]) == 1
    assert "stale" in capsys.readouterr().err


def _fake_solc(tmp_path, version: str) -> str:
    path = tmp_path / "solc"
    path.write_text(f"#!/bin/sh\necho 'solc, the solidity compiler'\necho 'Version: {version}+commit.deadbeef.Linux.g++'\n")
    path.chmod(0o755)
    return str(path)


def test_a_wrong_version_in_solc_binary_is_passed_over(tmp_path, monkeypatch):
    monkeypatch.setenv("SOLC_BINARY", _fake_solc(tmp_path, "0.8.29"))
    found = build.find_solc()
    assert found.origin in ("py-solc-x", "PATH", "solcjs") and found.version == build.PINNED_SOLC


def test_the_right_version_in_solc_binary_wins(tmp_path, monkeypatch):
    fake = _fake_solc(tmp_path, build.PINNED_SOLC)
    monkeypatch.setenv("SOLC_BINARY", fake)
    assert build.find_solc() == build.Solc(fake, "SOLC_BINARY", build.PINNED_SOLC)


def test_a_compiler_of_another_version_is_refused(tmp_path):
    wrong = build.Solc(_fake_solc(tmp_path, "0.8.29"), "SOLC_BINARY", build.PINNED_SOLC)
    with pytest.raises(errors.CompilerNotFound, match="version 0.8.29, the build is pinned to 0.8.30"):
        build.compile_ledger(wrong)


def test_no_compiler_anywhere_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("SOLC_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no solc, no node
    monkeypatch.setenv("SOLCX_BINARY_PATH", str(tmp_path / "solcx"))
    monkeypatch.setattr(build, "REPO_ROOT", tmp_path)  # no node_modules
    with pytest.raises(errors.CompilerNotFound) as exc:
        build.find_solc()
    message = str(exc.value)
    assert "solc on PATH (none)" in message and "npm solc in node_modules (not installed) (node not found)" in message
    assert "scripts/setup" in exc.value.hint


def test_a_compile_error_is_reported_with_its_location(tmp_path, monkeypatch):
    broken = tmp_path / build.SOURCE_NAME
    broken.write_text("// SPDX-License-Identifier: Apache-2.0\npragma solidity 0.8.30;\ncontract FederationLedger { uint x = ; }\n")
    monkeypatch.setattr(build, "SOURCE_PATH", broken)
    with pytest.raises(errors.CompilationFailed, match="ParserError") as exc:
        build.compile_ledger()
    assert "FederationLedger.sol:3" in str(exc.value)


def test_artifact_from_another_source_is_refused(tmp_path, rebuilt):
    data = rebuilt.to_json()
    data["sourceSha256"] = "0" * 64
    path = tmp_path / "FederationLedger.json"
    path.write_text(json.dumps(data))
    with pytest.raises(errors.ArtifactError, match="different FederationLedger.sol"):
        build.load_artifact(path)


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"abi": []})])
def test_missing_or_broken_artifact(tmp_path, content):
    path = tmp_path / "FederationLedger.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(errors.ArtifactError) as exc:
        build.load_artifact(path)
    assert exc.value.hint and "contracts.build" in exc.value.hint
    assert os.fspath(path) in str(exc.value)
