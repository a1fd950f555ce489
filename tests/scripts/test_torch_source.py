"""scripts/torch_source.py: set-up takes torch's CPU build wherever it runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("torch_source", ROOT / "scripts" / "torch_source.py")
torch_source = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(torch_source)  # type: ignore[union-attr]


def _report(version: str, url: str, platform: str = "linux") -> dict:
    return {
        "install": [{"metadata": {"name": "torch", "version": version}, "download_info": {"url": url}}],
        "environment": {"sys_platform": platform},
    }


@pytest.mark.parametrize(
    ("report", "source"),
    [
        (_report("2.13.0+cpu", "file:///opt/wheels/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"), "plain"),
        (_report("2.13.0+cpu", "https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-linux_x86_64.whl"), "plain"),
        (_report("2.13.0", "https://files.pythonhosted.org/packages/torch-2.13.0-cp311-manylinux_2_28_x86_64.whl"), "cpu-index"),
        (_report("2.13.0+cu128", "file:///wheels/torch-2.13.0%2Bcu128-cp311-linux_x86_64.whl"), "cpu-index"),
        (_report("2.13.0", "https://files.pythonhosted.org/packages/torch-2.13.0-cp311-macosx_11_0_arm64.whl", "darwin"), "plain"),
        (_report("2.13.0", "https://files.pythonhosted.org/packages/torch-2.13.0-cp311-win_amd64.whl", "win32"), "plain"),
        ({"install": [], "environment": {"sys_platform": "linux"}}, "plain"),  # already installed
    ],
)
def test_the_cpu_index_only_where_a_plain_install_would_take_a_cuda_build(report: dict, source: str) -> None:
    assert torch_source.torch_source(report) == source


def test_an_unreadable_report_falls_back_to_the_cpu_index(tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text("not json")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "torch_source.py"), str(bad)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "cpu-index"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_report("2.13.0+cpu", "file:///w.whl")))
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "torch_source.py"), str(good)], capture_output=True, text=True)
    assert run.stdout.strip() == "plain"


def test_setup_pins_torch_and_pyproject_takes_a_range() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert 'TORCH="torch==2.13.0"' in setup and "--index-url \"$TORCH_CPU_INDEX\"" in setup
    assert '"torch>=2.4,<3"' in (ROOT / "pyproject.toml").read_text()
