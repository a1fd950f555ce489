"""The learning-only simulation, through its function and its command."""

from __future__ import annotations

import json

import pytest

from faults import FedLedgerError
from fedledger.cli import main
from fedledger.simulate import SimulationConfig, run_simulation


def _small(**kw: object) -> SimulationConfig:
    fields = dict(dataset="synthetic", synthetic_records=3000, participants=3, rounds=3, hidden=(32, 16), seed=1)
    fields.update(kw)
    return SimulationConfig(**fields)  # type: ignore[arg-type]


def test_federation_learns_and_records_every_round() -> None:
    result = run_simulation(_small(rounds=4, local_epochs=3, synthetic_records=6000))
    rounds = result["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]
    first, last = rounds[0]["metrics"], rounds[-1]["metrics"]
    assert last["macro_f1"] > 0.6 and last["macro_f1"] >= first["macro_f1"]
    for r in rounds:
        assert set(r["metrics"]) >= {"accuracy", "macro_f1", "binary_accuracy", "recall", "fpr"}
        assert len(r["update_bytes"]) == 3 and r["update_bytes_total"] == sum(r["update_bytes"].values())
    assert len({r["model_digest"] for r in rounds}) == 4
    addresses = [p["address"] for p in result["participants"]]
    assert addresses == sorted(addresses, key=str.lower)
    json.dumps(result)  # serialisable as is


def test_same_config_same_models() -> None:
    a = run_simulation(_small(rounds=2))
    b = run_simulation(_small(rounds=2))
    assert [r["model_digest"] for r in a["rounds"]] == [r["model_digest"] for r in b["rounds"]]


def test_compressed_codec_shrinks_the_uplink() -> None:
    dense = run_simulation(_small(rounds=2))
    sparse = run_simulation(_small(rounds=2, codec="topk:0.05+int8"))
    assert sparse["rounds"][-1]["update_bytes_total"] * 8 < dense["rounds"][-1]["update_bytes_total"]
    assert sparse["codec"]["quant"] == "int8"


def test_families_split_with_baselines_and_another_strategy() -> None:
    result = run_simulation(_small(split="families", baselines=True, strategy="fedavgm", strategy_params={"momentum": 0.5}))
    seen = [set(p["families_seen"]) for p in result["participants"]]
    classes = set(result["data"]["classes"][1:])
    assert set().union(*seen) == classes and all(s != classes for s in seen)
    base = result["baselines"]
    assert base["epochs"] == 3 and len(base["local_only"]) == 3
    assert 0.0 <= base["centralised"]["macro_f1"] <= 1.0
    # without a cap of its own the rule gets the mean party size; a cap given is kept
    cap = -(-result["data"]["train"] // 3)
    assert result["strategy"] == {"name": "fedavgm", "params": {"server_lr": 1.0, "momentum": 0.5, "sample_cap": cap}}
    assert cap < 1_000_000 and result["config"]["strategy_params"] == {"momentum": 0.5}
    kept = run_simulation(_small(rounds=1, strategy="fedavg", strategy_params={"sample_cap": 7}))
    assert kept["strategy"]["params"]["sample_cap"] == 7
    median = run_simulation(_small(rounds=1, strategy="median"))
    assert "sample_cap" not in median["strategy"]["params"]


def test_a_pretrained_genesis_takes_the_public_share_from_the_members_and_starts_ahead() -> None:
    seeded = run_simulation(_small(rounds=1))
    pre = run_simulation(_small(rounds=1, pretrain_fraction=0.2, pretrain_epochs=4))
    assert seeded["genesis"]["kind"] == "seeded" and seeded["genesis"]["public_records"] == 0
    g = pre["genesis"]
    assert g["kind"] == "pretrained" and g["public_records"] == 3000 - pre["data"]["train"] > 500
    assert sum(p["samples"] for p in pre["participants"]) == pre["data"]["train"]  # the public share is no member's
    assert g["metrics"]["macro_f1"] > seeded["genesis"]["metrics"]["macro_f1"] + 0.2
    assert g["model_digest"] != seeded["genesis"]["model_digest"]


@pytest.mark.parametrize(
    "cfg, fragment",
    [
        (_small(participants=0), "participants"),
        (_small(codec="int9"), "codec"),
        (_small(strategy="krum"), "strategy"),
        (_small(split="halves"), "split"),
        (_small(pretrain_fraction=1.0), "pretrain_fraction"),
    ],
)
def test_bad_configurations_are_typed_errors(cfg: SimulationConfig, fragment: str) -> None:
    with pytest.raises(FedLedgerError, match=fragment):
        run_simulation(cfg)


def test_cli_writes_the_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sim.json"
    code = main([
        "simulate", "--dataset", "synthetic", "--records", "2000", "--participants", "2", "--split", "dirichlet:0.5",
        "--rounds", "2", "--codec", "int8:256", "--strategy", "fedadam", "--strategy-param", "eta=0.01",
        "--hidden", "16", "--class-weights", "sqrt", "--absent-class-scale", "0", "--json", str(out),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["rounds"]) == 2 and result["config"]["split"] == "dirichlet:0.5"
    assert result["strategy"]["name"] == "fedadam" and result["codec"]["block"] == 256
    assert result["config"]["class_weights"] == "sqrt" and result["config"]["absent_class_scale"] == 0.0


def test_cli_reports_bad_options(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sim.json"
    assert main(["simulate", "--dataset", "mnist", "--json", str(out)]) == 1
    assert "unknown data set" in capsys.readouterr().err
    assert main(["simulate", "--dataset", "nsl-kdd", "--json", str(out)]) == 1
    assert "--train" in capsys.readouterr().err
    assert main(["simulate", "--hidden", "a,b", "--json", str(out)]) == 1
    assert main(["simulate", "--class-weights", "inverse", "--json", str(out)]) == 1
    assert main(["simulate", "--strategy-param", "eta", "--json", str(out)]) == 1
    assert not out.exists()


def test_novel_attack_holdout_is_reported_beside_the_metrics(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    train = Path(__file__).resolve().parents[1] / "data" / "nsl_kdd_train.txt"
    out = tmp_path / "sim.json"
    code = main(["simulate", "--dataset", "nsl-kdd", "--train", str(train), "--holdout", "novel", "--participants", "2",
                 "--rounds", "2", "--hidden", "16", "--json", str(out)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["data"]["holdout"] == "novel" and result["data"]["novel_test_rows"] == 7
    assert result["data"]["novel_names"]["u2r"] == ["rootkit", "perl"]
    last = result["rounds"][-1]
    assert set(last["metrics"]) >= {"macro_f1", "binary_accuracy", "f1"}  # the public keys keep their place
    assert last["metrics"]["n"] == 11 and last["novel"]["known"]["n"] == 4 and last["novel"]["rows"] == 7
    assert 0.0 <= last["novel"]["detection_rate"] <= 1.0 and set(last["novel"]["family_recall"]) == {"dos", "probe", "r2l", "u2r"}
    assert "novel-attack hold-out" in capsys.readouterr().err
    assert main(["simulate", "--holdout", "novel", "--json", str(out)]) == 1  # synthetic: one name per family
    assert "several attack names" in capsys.readouterr().err
    assert main(["simulate", "--dataset", "nsl-kdd", "--train", str(train), "--test", str(train), "--holdout", "novel",
                 "--json", str(tmp_path / "x.json")]) == 1  # fmt: skip
    assert main(["simulate", "--holdout", "sideways", "--json", str(tmp_path / "x.json")]) == 1
