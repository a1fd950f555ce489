"""How the command line reads when something is wrong: one line as written, plus a hint."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fedledger.cli import main
from fedledger.demo.outdir import MARKER, OutFolderRefused, prepare_out


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], err
    assert "Traceback" not in err
    return lines[0]


def test_brackets_in_a_path_and_in_a_message_are_shown_as_written(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "fed[prod]"
    folder.mkdir()
    (folder / "fed.toml").write_text("[chian]\n")
    code, _, err = run(["audit", "--config", str(folder / "fed.toml")], capsys)
    line = _one_error(err)
    assert code == 1 and f"{folder}/fed.toml" in line and "[chian]" in line and "[chain]" in err
    code, _, err = run(["audit", "--config", str(folder / "[missing].toml")], capsys)
    assert code == 1 and "[missing].toml" in _one_error(err)


def test_version(capsys) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == "fedledger 0.1.0"


@pytest.mark.parametrize("name", ["model.onnx", "model"])
def test_model_export_refuses_a_suffix_it_does_not_write(tmp_path: Path, name: str, capsys) -> None:
    code, _, err = run(["model", "export", str(tmp_path / name), "--rpc-url", "http://127.0.0.1:9", "--ledger", "0x" + "33" * 20], capsys)
    line = _one_error(err)
    assert code == 1 and ".safetensors or .pt" in line and not (tmp_path / name).exists()


def test_an_unreachable_rpc_says_refused_without_urllib3s_repr(capsys) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(["audit", "--rpc-url", f"http://127.0.0.1:{port}", "--ledger", "0x" + "33" * 20], capsys)
    line = _one_error(err)
    assert code == 1 and line.endswith(f"127.0.0.1:{port}: connection refused"), line
    assert "HTTPConnection" not in err and "Errno" not in err


@pytest.mark.parametrize("entry", ["garbage", "31337", "x=http://127.0.0.1:8545", "31337="])
def test_a_malformed_parent_rpc_is_refused_before_any_connection(entry: str, capsys) -> None:
    # port 9: were the entry read after connecting, the error would be the refused connection
    for argv in (["audit", "--parent-rpc", entry], ["audit", "lineage", "--parent-rpc", entry]):
        code, _, err = run([*argv, "--rpc-url", "http://127.0.0.1:9", "--ledger", "0x" + "33" * 20], capsys)
        line = _one_error(err)
        assert code == 1 and f"--parent-rpc entry {entry!r} is not CHAIN_ID=URL" in line, line


def test_participant_run_refuses_unknown_class_weights(tmp_path: Path, capsys) -> None:
    code, _, err = run(["participant", "run", "--data", str(tmp_path / "flows.flowset"), "--class-weights", "inverse"], capsys)
    line = _one_error(err)
    assert code == 1 and "class weights 'inverse' are not balanced, sqrt or none" in line


def test_the_demo_deletes_only_a_folder_it_wrote(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    monkeypatch.chdir(mine)
    code, _, err = run(["demo", "--out", ".", "--participants", "1", "--rounds", "1"], capsys)
    assert code == 1 and MARKER in _one_error(err) and (mine / "precious.txt").read_text() == "keep me"
    with pytest.raises(OutFolderRefused):
        prepare_out(mine / "precious.txt")

    out = prepare_out(tmp_path / "demo-out")  # new: made and marked
    (out / "report.json").write_text("{}")
    again = prepare_out(tmp_path / "demo-out")  # the demo's own: replaced
    assert again == out and sorted(p.name for p in out.iterdir()) == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (prepare_out(empty) / MARKER).is_file()
