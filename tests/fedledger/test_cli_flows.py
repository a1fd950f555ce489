"""Flow sets as a member makes and uses them: `fedledger flows convert`, and what `participant run` says about other files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from federation.descriptor import Descriptor
from federation.flowset import FLOWSET_FORMAT, load_flowset
from federation.model import ModelSpec
from fedledger.cli import main
from fedledger.flowfiles import NotAFlowSet, read_flowset_file
from flows import load_dataset, local_stats, merge, schema_for
from flows.schema import Normaliser
from ipfs import EmbeddedStore

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
RAW = [DATA / "nsl_kdd_train.txt", DATA / "nsl_kdd_test.txt"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _stats_files(tmp_path: Path, capsys) -> list[Path]:
    files = []
    for i, raw in enumerate(RAW):
        out = tmp_path / f"stats{i}.json"
        assert run(["participant", "stats", "--data", str(raw), "--data-format", "nsl-kdd", "--out", str(out)], capsys)[0] == 0
        files.append(out)
    return files


def test_convert_with_the_members_statistics_encodes_with_the_merged_normaliser(tmp_path: Path, capsys) -> None:
    stats = _stats_files(tmp_path, capsys)
    out = tmp_path / "org.flowset"
    code, _, err = run(["flows", "convert", "--data-format", "nsl-kdd", "--data", str(RAW[0]), "--out", str(out),
                        *sum((["--stats", str(s)] for s in stats), [])], capsys)  # fmt: skip
    assert code == 0, err
    flows = load_flowset(out.read_bytes())
    merged = Normaliser.from_stats(schema_for("nsl-kdd"), merge(local_stats("nsl-kdd", f)[0] for f in RAW))
    expected, _ = load_dataset("nsl-kdd", RAW[0], None, test_fraction=0.0, normaliser=merged)
    assert flows.schema_id == "nsl-kdd/v1" and f"{len(flows):,} flows" in err
    np.testing.assert_array_equal(flows.features, expected.features)
    np.testing.assert_array_equal(flows.labels, expected.labels)


def test_convert_with_the_federation_descriptor_and_a_flow_set_participant_run_reads(tmp_path: Path, capsys) -> None:
    stats = _stats_files(tmp_path, capsys)
    from fedledger.flowfiles import normaliser_from_stats

    store = EmbeddedStore(tmp_path / "store")
    normaliser = normaliser_from_stats(stats, "nsl-kdd")
    validation, _ = load_dataset("nsl-kdd", RAW[1], None, test_fraction=0.0, normaliser=normaliser)
    desc = Descriptor("t", ModelSpec.for_dataset(validation, hidden=(8,)), "Qm", normaliser=normaliser.to_dict())
    cid = store.put(desc.to_bytes())
    out = tmp_path / "org.flowset"
    code, _, err = run(["flows", "convert", "--data-format", "nsl-kdd", "--data", str(RAW[0]), "--out", str(out),
                        "--store", str(tmp_path / "store"), "--descriptor", cid], capsys)  # fmt: skip
    assert code == 0, err and cid in err
    assert len(read_flowset_file(out, desc)) > 0  # fits the federation's model

    # A federation without a normaliser, a wrong format, no normaliser source at all: one line and a hint each.
    bare = store.put(Descriptor("t", desc.spec, "Qm").to_bytes())
    for argv, message in (
        (["--store", str(tmp_path / "store"), "--descriptor", bare], "fixed no normalisation"),
        (["--stats", str(stats[0]), "--data-format", "unsw-nb15"], "do not fit schema"),
        ([], "no federation descriptor"),
    ):
        fmt = [] if "--data-format" in argv else ["--data-format", "nsl-kdd"]
        code, _, err = run(["flows", "convert", *fmt, "--data", str(RAW[0]), "--out", str(tmp_path / "x.flowset"), *argv], capsys)
        assert code == 1 and message in err and "Traceback" not in err, err


def test_a_file_that_is_not_a_flow_set_is_named_with_the_format_expected(env, tmp_path: Path, capsys, monkeypatch) -> None:
    raw = tmp_path / "h.txt"
    raw.write_text("hello\n")
    with pytest.raises(NotAFlowSet):
        read_flowset_file(raw)
    monkeypatch.setenv("FEDLEDGER_PRIVATE_KEY", env.orgs[0].key.hex())
    code, _, err = run(["participant", "run", "--data", str(raw), "--one-shot", "--state-dir", str(tmp_path / "st"),
                        *env.common_args()], capsys)  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2, err
    assert lines[0].startswith(f"error: {raw} is not a flow set") and FLOWSET_FORMAT in lines[0]
    assert "--data-format" in lines[1] and "fedledger flows convert" in lines[1]
    assert os.environ["FEDLEDGER_PRIVATE_KEY"] not in err
    # A real flow set of this federation is taken.
    assert len(read_flowset_file(env.flows_file(0), env.fed.descriptor)) == len(env.data[0])
