"""The import rules of docs/architecture.md, read from every module's source.

Layers, bottom up: ``faults`` (errors, deadlines, retries); the leaves ``ipfs`` (the
store) and ``contracts`` (the chain); the core, ``flows`` (flow data) then
``federation`` (what every role and the auditor share); the roles ``participant`` and
``coordinator``; the apps ``fedledger`` and ``scripts``. A module may import its own
package and packages of lower layers only, so the two roles meet only through the chain
and the store, and the leaves know nothing of the domain. Every import counts: at the
top of a module, inside a function, or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {
    "faults": 0,
    "ipfs": 1,
    "contracts": 1,
    "flows": 2,
    "federation": 3,
    "participant": 4,
    "coordinator": 4,
    "fedledger": 5,
    "scripts": 6,  # benchmarks may drive the apps
}
ROLES = ("participant", "coordinator")


def _modules() -> list[Path]:
    return sorted(p for pkg in RANK for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _violations(path: Path, package: str | None = None) -> list[str]:
    package = package or path.relative_to(ROOT).parts[0]
    out = []
    for line, module in _imports(path):
        target = module.split(".")[0]
        if target not in RANK or target == package:
            continue
        if RANK[target] >= RANK[package]:
            out.append(f"{path.name}:{line} ({package}, layer {RANK[package]}) imports {module} (layer {RANK[target]})")
    return out


def test_every_package_of_the_layout_is_there() -> None:
    for package in RANK:
        assert (ROOT / package).is_dir(), package
    assert len(_modules()) > 60


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_lower_layers(path: Path) -> None:
    assert _violations(path) == []


def test_the_rule_catches_a_role_importing_the_other_and_a_leaf_importing_the_domain(tmp_path: Path) -> None:
    # The checker itself, on planted files: it must not pass by finding nothing to check.
    planted = {
        "participant": "from coordinator.service import CoordinatorService\n",
        "ipfs": "def f():\n    from federation.model import ModelSpec\n",
        "contracts": "import ipfs\n",
        "flows": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from federation import descriptor\n",
        "coordinator": "from fedledger.attacks import kinds\nfrom federation.model import ModelSpec\n",
    }
    for package, text in planted.items():
        path = tmp_path / f"{package}_planted.py"
        path.write_text(text, encoding="utf-8")
        assert len(_violations(path, package)) == 1, package


def test_no_planted_attack_or_fault_injection_in_the_services() -> None:
    from fedledger.attacks.kinds import ATTACKS

    for role in ROLES:
        for path in (ROOT / role).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            kinds = [k for k in ATTACKS if "-" in k or k[-1].isdigit()]  # "copy" alone is an ordinary word
            for word in ("os._exit", "--attack", "FEDLEDGER_CRASH", *kinds):
                assert word not in text, f"{path.relative_to(ROOT)} mentions {word!r}"
