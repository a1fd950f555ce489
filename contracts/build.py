"""Reproducible build of ``FederationLedger.sol`` and access to its committed artifact.

The compiler version, optimizer runs and EVM version are pinned, so any solc 0.8.30 build
(native or solcjs) gives the same bytes; the artifact in ``build/FederationLedger.json`` is
committed so deploying never needs a compiler. Rebuild with ``python -m contracts.build``;
``python -m contracts.build --check`` fails when the committed artifact is stale.

solc is looked up in this order: ``SOLC_BINARY``; a version py-solc-x installed; ``solc`` on
PATH; the npm package ``solc`` (solcjs) in the repository's ``node_modules``, through
``solcjs_shim.py``. Only the pinned version is accepted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError

from contracts.errors import ArtifactError, CompilationFailed, CompilerNotFound

PINNED_SOLC = "0.8.30"
CONTRACT_NAME = "FederationLedger"
SOURCE_NAME = "FederationLedger.sol"  # source unit name: part of the metadata hash, so never a path
PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_PATH = PACKAGE_DIR / SOURCE_NAME
ARTIFACT_PATH = PACKAGE_DIR / "build" / f"{CONTRACT_NAME}.json"
REPO_ROOT = PACKAGE_DIR.parent

#: Everything that changes the bytecode besides the source and compiler version.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 1000},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {
        SOURCE_NAME: {
            CONTRACT_NAME: [
                "abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences",
                "evm.methodIdentifiers", "storageLayout", "metadata",
            ]
        }
    },
}


@dataclass(frozen=True)
class Solc:
    """A compiler to run: the executable and where it was found."""

    path: str
    origin: str  # "SOLC_BINARY", "py-solc-x", "PATH" or "solcjs"
    version: str


@dataclass(frozen=True)
class Artifact:
    """The compiled contract as committed in ``build/FederationLedger.json``."""

    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code
    deployed_bytecode: str  # 0x-prefixed runtime code, compared on attach
    compiler_version: str
    settings: dict[str, Any]
    source_sha256: str
    # Where the constructor writes each immutable into the runtime code: (start, length) pairs.
    immutable_ranges: tuple[tuple[int, int], ...] = ()
    # What Foundry, Hardhat and Sourcify users expect beside the code: "signature()" -> selector hex,
    # solc's storage layout, and the compiler's metadata JSON exactly as solc wrote it (its IPFS
    # hash is the one at the end of the runtime code, so Sourcify can verify a deployment with it).
    method_identifiers: dict[str, str] | None = None
    storage_layout: dict[str, Any] | None = None
    raw_metadata: str | None = None

    def runtime_template(self, code: bytes) -> bytes:
        """``code`` with every immutable's bytes zeroed: equal for every deployment of this artifact."""
        out = bytearray(code)
        for start, length in self.immutable_ranges:
            out[start : start + length] = bytes(length)
        return bytes(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "contractName": CONTRACT_NAME,
            "sourceName": SOURCE_NAME,
            "sourceSha256": self.source_sha256,
            "compilerVersion": self.compiler_version,
            "settings": self.settings,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "immutableRanges": [list(r) for r in self.immutable_ranges],
            "methodIdentifiers": self.method_identifiers,
            "storageLayout": self.storage_layout,
            "rawMetadata": self.raw_metadata,
            "metadata": json.loads(self.raw_metadata) if self.raw_metadata is not None else None,
        }


def source_sha256(source: bytes | None = None) -> str:
    data = SOURCE_PATH.read_bytes() if source is None else source
    return hashlib.sha256(data).hexdigest()


def _version_of(path: str) -> str | None:
    try:
        return str(solcx.wrapper.get_solc_version(path))
    except (OSError, SolcError, ValueError) as exc:  # not executable, not solc, unparsable output
        del exc
        return None


def _solcjs_path() -> Path | None:
    candidate = REPO_ROOT / "node_modules" / "solc" / "solc.js"
    return candidate if candidate.is_file() else None


def find_solc() -> Solc:
    """The first compiler of the pinned version in the documented lookup order."""
    tried: list[str] = []
    env = os.environ.get("SOLC_BINARY")
    if env:
        version = _version_of(env)
        if version == PINNED_SOLC:
            return Solc(env, "SOLC_BINARY", version)
        tried.append(f"SOLC_BINARY={env} (version {version or 'unknown'})")
    try:
        installed = [str(v) for v in solcx.get_installed_solc_versions()]
    except (OSError, SolcError):
        installed = []
    if PINNED_SOLC in installed:
        path = str(solcx.get_executable(PINNED_SOLC))
        return Solc(path, "py-solc-x", PINNED_SOLC)
    tried.append(f"py-solc-x installs ({', '.join(installed) or 'none'})")
    on_path = shutil.which("solc")
    if on_path:
        version = _version_of(on_path)
        if version == PINNED_SOLC:
            return Solc(on_path, "PATH", version)
        tried.append(f"solc on PATH at {on_path} (version {version or 'unknown'})")
    else:
        tried.append("solc on PATH (none)")
    solcjs = _solcjs_path()
    node = shutil.which("node")
    if solcjs and node:
        # The version check runs through the shim inside compile(); here we trust package.json's pin
        # but still verify below, so a different npm solc is rejected rather than silently used.
        return Solc(str(solcjs), "solcjs", PINNED_SOLC)
    tried.append("npm solc in node_modules" + ("" if solcjs else " (not installed)") + ("" if node else " (node not found)"))
    raise CompilerNotFound(
        f"no solc {PINNED_SOLC} found; tried: " + "; ".join(tried),
        hint=(
            f"run ./scripts/setup (installs solcjs {PINNED_SOLC} into node_modules), "
            f"or `python -c 'import solcx; solcx.install_solc(\"{PINNED_SOLC}\")'`, "
            "or point SOLC_BINARY at a solc "
            f"{PINNED_SOLC}; deploying does not need a compiler (the artifact is committed)"
        ),
    )


@contextmanager
def _runnable(solc: Solc) -> Iterator[str]:
    """A path py-solc-x can execute for ``solc``; for solcjs, a temporary shim script."""
    if solc.origin != "solcjs":
        yield solc.path
        return
    node = shutil.which("node")
    assert node is not None  # find_solc checked
    with tempfile.TemporaryDirectory(prefix="fedledger-solcjs-") as tmp:
        shim = Path(tmp) / "solc"
        shim.write_text(
            "#!/bin/sh\n"
            f'exec "{sys.executable}" "{PACKAGE_DIR / "solcjs_shim.py"}" "{node}" "{solc.path}" "$@"\n'
        )
        shim.chmod(0o755)
        yield str(shim)


def compile_ledger(solc: Solc | None = None) -> Artifact:
    """Compile the contract with the pinned settings and return the artifact (not written)."""
    solc = solc or find_solc()
    source = SOURCE_PATH.read_bytes()
    input_data = {
        "language": "Solidity",
        "sources": {SOURCE_NAME: {"content": source.decode("utf-8")}},
        "settings": SETTINGS,
    }
    with _runnable(solc) as executable:
        actual = _version_of(executable)
        if actual != PINNED_SOLC:
            raise CompilerNotFound(
                f"{solc.origin} compiler at {solc.path} is version {actual or 'unknown'}, "
                f"the build is pinned to {PINNED_SOLC}",
                hint=f"install solc {PINNED_SOLC} (./scripts/setup) or set SOLC_BINARY",
            )
        try:
            output = solcx.compile_standard(input_data, solc_binary=executable)
        except SolcError as exc:
            raise CompilationFailed(
                f"solc {PINNED_SOLC} ({solc.origin}) failed on {SOURCE_NAME}: "
                + str(exc).split("\n\n> command")[0].strip(),
                hint="fix the reported error in contracts/FederationLedger.sol",
            ) from exc
        long_version = str(solcx.wrapper.get_solc_version(executable, with_commit_hash=True))
    try:
        compiled = output["contracts"][SOURCE_NAME][CONTRACT_NAME]
        metadata = json.loads(compiled["metadata"])
        return Artifact(
            abi=compiled["abi"],
            bytecode="0x" + compiled["evm"]["bytecode"]["object"],
            deployed_bytecode="0x" + compiled["evm"]["deployedBytecode"]["object"],
            compiler_version=metadata["compiler"]["version"],
            settings={k: v for k, v in SETTINGS.items() if k != "outputSelection"},
            source_sha256=source_sha256(source),
            immutable_ranges=tuple(
                sorted(
                    (int(r["start"]), int(r["length"]))
                    for refs in compiled["evm"]["deployedBytecode"].get("immutableReferences", {}).values()
                    for r in refs
                )
            ),
            method_identifiers=compiled["evm"]["methodIdentifiers"],
            storage_layout=compiled["storageLayout"],
            raw_metadata=compiled["metadata"],
        )
    except (KeyError, ValueError) as exc:
        raise CompilationFailed(
            f"solc {long_version} output has no {CONTRACT_NAME} bytecode/abi: {exc!r}",
            hint="the compiler output format changed; check the solc version",
        ) from exc


def write_artifact(artifact: Artifact, path: Path = ARTIFACT_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(artifact.to_json(), indent=2, sort_keys=True) + "\n")


@lru_cache(maxsize=None)
def load_artifact(path: Path = ARTIFACT_PATH) -> Artifact:
    """The committed artifact; refuses one built from a different source than the one on disk."""
    try:
        data = json.loads(path.read_text())
        artifact = Artifact(
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler_version=data["compilerVersion"],
            settings=data["settings"],
            source_sha256=data["sourceSha256"],
            immutable_ranges=tuple(tuple(r) for r in data.get("immutableRanges", [])),  # type: ignore[misc]
            method_identifiers=data.get("methodIdentifiers"),
            storage_layout=data.get("storageLayout"),
            raw_metadata=data.get("rawMetadata"),
        )
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"build artifact {path} is missing", hint="run `python -m contracts.build` to create it"
        ) from exc
    except (KeyError, ValueError) as exc:
        raise ArtifactError(
            f"build artifact {path} is unreadable: {exc!r}",
            hint="restore it from git or rebuild with `python -m contracts.build`",
        ) from exc
    if SOURCE_PATH.is_file() and artifact.source_sha256 != source_sha256():
        raise ArtifactError(
            f"build artifact {path} was built from a different {SOURCE_NAME} "
            f"(sha256 {artifact.source_sha256[:12]}…, source on disk {source_sha256()[:12]}…)",
            hint="rebuild with `python -m contracts.build` and commit the artifact",
        )
    return artifact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only verify the committed artifact is reproduced")
    opts = parser.parse_args(argv)
    solc = find_solc()
    built = compile_ledger(solc)
    if opts.check:
        committed = json.loads(ARTIFACT_PATH.read_text()) if ARTIFACT_PATH.is_file() else None
        if committed != built.to_json():
            print(f"{ARTIFACT_PATH} is stale: rebuild with `python -m contracts.build`", file=sys.stderr)
            return 1
        print(f"{ARTIFACT_PATH} reproduced with solc {built.compiler_version} ({solc.origin})")
        return 0
    write_artifact(built)
    print(
        f"wrote {ARTIFACT_PATH.relative_to(REPO_ROOT)}: solc {built.compiler_version} ({solc.origin}), "
        f"{(len(built.deployed_bytecode) - 2) // 2} bytes runtime"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
