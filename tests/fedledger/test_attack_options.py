"""`fedledger simulate` with planted attackers, robust strategies, clipping and GTG-Shapley scores."""

from __future__ import annotations

import json

from fedledger.cli import main


def test_simulate_plants_attackers_and_reports_scores_and_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sim.json"
    code = main([
        "simulate", "--records", "3000", "--participants", "6", "--rounds", "2", "--hidden", "16",
        "--strategy", "trimmed-mean", "--strategy-param", "trim=0.25", "--clip-norm", "5",
        "--attack", "copy:1", "--attack", "free-ride:1", "--attack", "scale100:1", "--scoring", "gtg-shapley",
        "--json", str(out),
    ])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["strategy"] == {"name": "trimmed-mean", "params": {"trim": 0.25, "clip_norm": 5.0}}
    assert result["scoring"]["rule"] == "gtg-shapley"
    planted = {p["address"]: p["attack"] for p in result["participants"]}
    assert sorted(k for k in planted.values() if k) == ["copy", "free-ride", "scale100"]
    for rnd in result["rounds"]:
        entries = {p["address"]: p for p in rnd["participants"]}
        assert set(entries) == set(planted)
        assert rnd["scoring"]["evaluations"] >= 1 and len(rnd["scoring"]["seed"]) == 64
        for addr, kind in planted.items():
            e = entries[addr]
            assert e["attack"] == kind
            reasons = [f["reason"] for f in e["flags"]]
            if kind == "copy":
                assert reasons == ["copy-payload"] and not e["accepted"] and e["score"] <= 0
            elif kind == "free-ride":
                assert reasons == ["free-ride-unchanged"] and not e["accepted"] and e["score"] <= 0
            elif kind == "scale100":
                # bounded to 10x the round's median norm first, then clipped or trimmed by the strategy
                assert e["accepted"] and reasons[0] == "norm-bounded" and {"clipped", "trimmed-outlier"} & set(reasons)
            else:
                assert e["accepted"] and not {"copy-payload", "free-ride-unchanged", "copy-similar"} & set(reasons)


def test_simulate_refuses_bad_attack_and_scoring_options(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sim.json"
    assert main(["simulate", "--attack", "poison:1", "--json", str(out)]) == 1
    assert "unknown attack" in capsys.readouterr().err
    assert main(["simulate", "--attack", "copy:two", "--json", str(out)]) == 1
    assert "not an integer" in capsys.readouterr().err
    assert main(["simulate", "--scoring", "shapley", "--json", str(out)]) == 1
    assert "gtg-shapley" in capsys.readouterr().err
    assert main(["simulate", "--strategy", "krum", "--records", "500", "--json", str(out)]) == 1
    assert "unknown aggregation strategy" in capsys.readouterr().err
    assert main(["simulate", "--participants", "2", "--attack", "sign-flip:2", "--records", "500", "--json", str(out)]) == 1
    assert "no honest member" in capsys.readouterr().err
    assert not out.exists()
