"""DP from the command line: simulate's per-round and composed spend, and bad settings refused up front."""

from __future__ import annotations

import json

import pytest

from faults import FedLedgerError
from federation.privacy import InvalidPrivacySettings, Mechanism, composed_epsilon
from fedledger.cli import main
from fedledger.simulate import SimulationConfig, run_simulation
from participant.dp_training import DPConfig, dp_from_options, record_mechanism

ARGS = ["simulate", "--dataset", "synthetic", "--records", "2000", "--participants", "2", "--hidden", "8"]


def test_simulate_reports_spend_per_round_and_composed_and_members_stop_at_their_budget(tmp_path) -> None:
    # Each member holds ~1000 records: batch 256 -> 4 batches, sample rate 1/4, 4 steps per round.
    n = 1000
    mech = record_mechanism(DPConfig(epsilon=1.0, delta=1e-5), n, 256, 1)
    two, three = composed_epsilon([mech] * 2, 1e-5), composed_epsilon([mech] * 3, 1e-5)
    budget = (two + three) / 2
    out = tmp_path / "sim.json"
    code = main([*ARGS, "--rounds", "3", "--dp-epsilon", "1", "--dp-budget", repr(budget), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    members = [p["address"] for p in result["participants"]]
    assert all(p["samples"] == n for p in result["participants"])
    for rnd in result["rounds"][:2]:
        assert set(rnd["privacy"]) == set(members) and rnd["refused"] == {}
        assert all(0.95 <= p["epsilon"] <= 1.0 for p in rnd["privacy"].values())
    last = result["rounds"][2]
    assert last["privacy"] == {} and set(last["refused"]) == set(members)
    assert all("privacy budget exhausted" in msg for msg in last["refused"].values())
    assert last["model_digest"] == result["rounds"][1]["model_digest"]  # nobody trained: the model did not move
    spent = result["privacy"]["participants"]
    for a in members:
        assert spent[a]["rounds_trained"] == 2
        assert spent[a]["composed_epsilon"] == pytest.approx(two)
        assert spent[a]["composed_epsilon"] < spent[a]["naive_sum_epsilon"]
    assert result["privacy"]["settings"]["budget"] == budget


def test_simulate_refuses_bad_dp_settings_before_training(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sim.json"
    assert main([*ARGS, "--dp-epsilon", "0", "--json", str(out)]) == 1
    assert "epsilon must be a finite number > 0" in capsys.readouterr().err
    assert main([*ARGS, "--dp-epsilon", "1", "--dp-delta", "0.002", "--json", str(out)]) == 1
    assert "not below 1/n" in capsys.readouterr().err
    assert main([*ARGS, "--dp-budget", "3", "--json", str(out)]) == 1
    assert "without --dp-epsilon" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(FedLedgerError, match="not below 1/n"):
        run_simulation(SimulationConfig(synthetic_records=2000, participants=2, hidden=(8,), rounds=1, dp_epsilon=1.0,
                                        dp_delta=0.5))  # fmt: skip


def test_dp_options() -> None:
    assert dp_from_options(None) is None
    cfg = dp_from_options(2.0, None, 8.0, clip=0.5, level="client", accountant="prv")
    assert cfg == DPConfig(epsilon=2.0, delta=1e-5, budget=8.0, clip_norm=0.5, level="client", accountant="prv")
    with pytest.raises(InvalidPrivacySettings, match="--dp-delta"):
        dp_from_options(None, 1e-5)
    with pytest.raises(InvalidPrivacySettings, match="level"):
        dp_from_options(1.0, level="global")
    assert Mechanism(1.0, 1.0, 1, 1.0, 1e-5, "client").as_tuple() == (1.0, 1.0, 1)


def test_participant_run_and_demo_refuse_bad_dp_settings_before_starting(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    flows = tmp_path / "none.flowset"  # never read: the settings are refused first
    assert main(["participant", "run", "--data", str(flows), "--dp-epsilon", "0"]) == 1
    assert "epsilon must be a finite number > 0" in capsys.readouterr().err
    assert main(["participant", "run", "--data", str(flows), "--dp-budget", "3"]) == 1
    assert "without --dp-epsilon" in capsys.readouterr().err
    assert main(["participant", "run", "--data", str(flows), "--dp-epsilon", "1", "--dp-level", "global"]) == 1
    assert "level" in capsys.readouterr().err
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--dp-epsilon", "-1"]) == 1
    assert "epsilon" in capsys.readouterr().err and not out.exists()
    assert main(["demo", "--out", str(out), "--dp-epsilon", "1", "--dp-delta", "1.5"]) == 1
    assert "delta" in capsys.readouterr().err and not out.exists()
