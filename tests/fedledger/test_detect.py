"""`fedledger detect` against real federations on a real anvil: the model verified on chain,
flows scored in one streaming pass, alerts as JSON lines, and every bad input refused clearly."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch

from federation.model import ModelSpec
from federation.model.network import init_model, model_from_weights
from fedledger.cli import main
from fedledger.intel.alerts import read_alerts
from fedledger.intel.detect import FlowBatch, detect, file_batches
from fedledger.intel.errors import ModelNotOnChain
from fedledger.intel.provenance import Provenance, VerifiedModel, resolve_model
from fedledger.intel.scoring import Scorer
from flows import LocalStats, MalformedRow, Normaliser
from flows.loaders import cicids2017
from ipfs import content_cid, digest_to_cid
from tests.helpers.intel import DATA, make_nsl_env
from tests.helpers.runtime import make_env, run_round


@pytest.fixture(scope="module")
def nsl(tmp_path_factory, anvil):  # noqa: ANN001, ANN201
    """An NSL-KDD federation with one finalised round."""
    env, split = make_nsl_env(tmp_path_factory.mktemp("nsl"), anvil)
    assert run_round(env, [0, 1]).finalized
    return env, split


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, anvil):  # noqa: ANN001, ANN201
    """The runtime tests' synthetic federation, with one finalised round."""
    env = make_env(tmp_path_factory.mktemp("synthetic"), anvil)
    assert run_round(env, [0, 1]).finalized
    return env


def _err(capsys: pytest.CaptureFixture) -> str:
    """What the command printed on stderr, as one line (the console wraps long lines)."""
    return " ".join(capsys.readouterr().err.split())


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_detect_scores_a_raw_file_with_the_rounds_model_and_writes_one_line_per_attack(nsl, tmp_path: Path) -> None:  # noqa: ANN001
    env, split = nsl
    out = tmp_path / "alerts.jsonl"
    assert main(["detect", str(DATA / "nsl_kdd_test.txt"), "--out", str(out), *env.common_args()]) == 0
    info = env.ledger.get_round(1)
    model = resolve_model(env.ledger, env.store, env.fed.descriptor_cid)
    torch_model = model_from_weights(model.spec, model.weights).eval()
    with torch.no_grad():
        prob = torch.softmax(torch_model(torch.from_numpy(split.test.features)), dim=1).numpy()
    pred = prob.argmax(axis=1)
    alerts = _lines(out)
    assert [a["row"] for a in alerts] == [i + 1 for i in np.flatnonzero(pred != 0)]  # the file's line numbers
    assert [a["family"] for a in alerts] == [model.spec.classes[p] for p in pred[pred != 0]]
    np.testing.assert_allclose([a["confidence"] for a in alerts], prob.max(axis=1)[pred != 0], atol=2e-6)
    assert {a["model"] for a in alerts} == {digest_to_cid(info.global_model)} and {a["round"] for a in alerts} == {1}
    assert all(a["protocol"] in ("tcp", "udp", "icmp") and a["file"] == "nsl_kdd_test.txt" for a in alerts)
    assert "src_ip" not in alerts[0] if alerts else True  # NSL-KDD has no addresses: the row names the flow
    assert main(["detect", str(DATA / "nsl_kdd_test.txt"), "--out", str(out), "--all", *env.common_args()]) == 0
    assert len(_lines(out)) == len(split.test) == 16
    assert [a.row for a in read_alerts(out)] == list(range(1, 17))


def test_detect_json_summary_and_require_audit(nsl, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    env, _ = nsl
    out = tmp_path / "alerts.jsonl"
    capsys.readouterr()
    rc = main(["detect", str(DATA / "nsl_kdd_train.txt"), "--out", str(out), "--require-audit", "--json", "--round", "1",
               *env.common_args()])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    err = " ".join(captured.err.split())
    assert summary["flows"] == 31 and summary["provenance"]["audited"] is True
    assert summary["provenance"]["ledger"] == env.ledger.address and summary["provenance"]["round"] == 1
    assert summary["alerts"] == len(_lines(out)) == sum(summary["by_family"].values())
    assert "audit of round 1: passed" in err


def test_bad_models_rounds_and_descriptors_are_refused_in_one_line(nsl, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    env, _ = nsl
    out = tmp_path / "alerts.jsonl"
    flows = str(DATA / "nsl_kdd_test.txt")
    other = dataclasses.replace(env.fed.descriptor, seed=99)
    cases = {
        ("--round", "7"): "round 7 does not exist",
        ("--model", content_cid(b"not a model of this federation")): "is not a global model of ledger",
        ("--round", "1", "--model", digest_to_cid(env.ledger.genesis_model())): "is not the global model of round 1",
        ("--descriptor", env.store.put(other.to_bytes())): "does not belong to ledger",
    }
    for extra, message in cases.items():
        capsys.readouterr()
        assert main(["detect", flows, "--out", str(out), *env.common_args(), *extra]) == 1
        err = _err(capsys)
        assert message in err and "hint:" in err and "Traceback" not in err, err
        assert not out.exists() and not list(tmp_path.glob("*.part"))
    assert resolve_model(env.ledger, env.store, env.fed.descriptor_cid, round_id=0).provenance.round == 0  # the genesis model
    with pytest.raises(ModelNotOnChain, match="round 5 does not exist"):
        resolve_model(env.ledger, env.store, env.fed.descriptor_cid, round_id=5)


def test_a_file_of_another_schema_and_malformed_rows(nsl, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    env, _ = nsl
    out = tmp_path / "alerts.jsonl"
    capsys.readouterr()
    assert main(["detect", str(DATA / "cicids2017_thursday.csv"), "--out", str(out), *env.common_args()]) == 1
    err = _err(capsys)
    assert "looks like a cicids2017 file" in err and "nsl-kdd" in err and not out.exists()
    assert main(["detect", str(DATA / "nsl_kdd_test.txt"), "--data-format", "unsw-nb15", "--out", str(out), *env.common_args()]) == 1
    assert "reads nsl-kdd/v1 flows, not unsw-nb15" in _err(capsys)
    assert main(["detect", str(DATA / "nsl_kdd_bad.txt"), "--out", str(out), *env.common_args()]) == 1
    err = _err(capsys)
    assert "nsl_kdd_bad.txt:" in err and "malformed row" in err and "--skip-bad-rows" in err
    assert main(["detect", str(DATA / "nsl_kdd_bad.txt"), "--out", str(out), "--skip-bad-rows", "--json", *env.common_args()]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped_rows"] == 4 and summary["flows"] == 6


def test_a_synthetic_federation_scores_flow_sets_and_refuses_raw_files(synthetic, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    env = synthetic
    out = tmp_path / "alerts.jsonl"
    assert main(["detect", str(env.flows_file(0)), "--out", str(out), "--all", *env.common_args()]) == 0
    assert len(_lines(out)) == len(env.data[0])
    assert {a["round"] for a in _lines(out)} == {1}
    capsys.readouterr()
    assert main(["detect", str(DATA / "nsl_kdd_test.txt"), "--out", str(out), *env.common_args()]) == 1
    assert "no raw file format" in _err(capsys)


def test_the_numpy_scorer_is_the_torch_model() -> None:
    for activation in ("relu", "tanh"):
        spec = ModelSpec("x/v1", 23, (17, 9), ("normal", "dos", "probe", "r2l"), activation)
        weights = init_model(spec, 4)
        x = np.random.default_rng(1).normal(size=(500, 23)).astype(np.float32)
        with torch.no_grad():
            p = torch.softmax(model_from_weights(spec, weights)(torch.from_numpy(x)), 1).numpy()
        pred, conf = Scorer(spec, weights)(np.asfortranarray(x))
        assert (pred == p.argmax(1)).all()
        np.testing.assert_allclose(conf, p.max(1), rtol=1e-5)


def _cicids_model() -> VerifiedModel:
    schema = cicids2017.SCHEMA
    spec = ModelSpec(schema.schema_id, schema.dim, (8,), schema.classes)
    prov = Provenance(1, "0x" + "00" * 20, 2, "QmModel", "QmDescriptor", "unit", schema.schema_id)
    return VerifiedModel(spec, init_model(spec, 0), None, prov)  # type: ignore[arg-type]


def _generated_flows(tmp_path: Path) -> Path:
    """A CICIDS2017 GeneratedLabelledFlows-style file: the MachineLearningCVE columns plus endpoints."""
    header, *rows = (DATA / "cicids2017_thursday.csv").read_text(encoding="latin-1").splitlines()
    lines = ["Flow ID, Source IP, Source Port, Destination IP," + header + ", Protocol"]
    lines += [f"f{i}, 203.0.113.{i}, {40000 + i}, 10.0.0.{i}," + r + ", 6" for i, r in enumerate(rows) if r.strip(",")]
    f = tmp_path / "generated.csv"
    f.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return f


def test_alerts_carry_the_endpoints_where_the_format_has_them(tmp_path: Path) -> None:
    f = _generated_flows(tmp_path)
    schema = cicids2017.SCHEMA
    raw, _ = cicids2017.read(DATA / "cicids2017_thursday.csv")
    norm = Normaliser.from_stats(schema, LocalStats.of(schema, schema.transform(raw)))
    sink = StringIO()
    when = datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    summary = detect(file_batches([f], "cicids2017", schema, norm, block_bytes=4096), _cicids_model(), sink,
                     include_normal=True, clock=lambda: when)  # fmt: skip
    alerts = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert summary.flows == len(alerts) == 22
    a = alerts[0]
    assert (a["row"], a["src_ip"], a["src_port"], a["dst_ip"], a["dst_port"], a["protocol"]) == (2, "203.0.113.0", 40000, "10.0.0.0", 53, "tcp")
    assert a["file"] == "generated.csv" and a["time"] == "2026-01-05T10:00:00.000Z" and a["round"] == 2
    assert list(a) == ["row", "file", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "family", "confidence",
                       "model", "round", "time"]  # fmt: skip


def test_an_error_while_reading_stops_the_pass_and_leaves_no_thread(tmp_path: Path) -> None:
    model = _cicids_model()
    before = threading.active_count()

    def batches():  # noqa: ANN202
        yield FlowBatch(np.zeros((3, model.spec.input_dim), dtype=np.float32), np.arange(1, 4))
        raise MalformedRow(tmp_path / "x.csv", 9, "expected 79 columns, got 3")

    sink = StringIO()
    with pytest.raises(MalformedRow, match="x.csv:9"):
        detect(batches(), model, sink, include_normal=True)
    assert len(sink.getvalue().splitlines()) == 3
    assert threading.active_count() == before
