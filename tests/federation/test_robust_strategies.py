"""Robust aggregation rules: formulas on exact values, outlier flags, clipping, reproducibility, bad parameters."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

import federation.rounds.strategies as strategies
from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model
from federation.rounds.strategies import (
    AggregationError,
    FedAvg,
    Median,
    MultiKrum,
    TrimmedMean,
    WeightedUpdate,
    strategy_from_manifest,
    strategy_from_name,
    update_norm,
)
from federation.rounds.strategies import aggregate as kernels

SPEC = ModelSpec("test/v1", 40, (300, 20), ("normal", "dos", "probe"))  # ~18k parameters: several chunks


def _addr(i: int) -> str:
    return "0x" + hashlib.sha256(f"p{i}".encode()).hexdigest()[:40]


def _sorted(ups: list[WeightedUpdate]) -> list[WeightedUpdate]:
    return sorted(ups, key=lambda u: u.participant.lower())


def _exact(values: list[list[float]], samples: list[int] | None = None) -> list[WeightedUpdate]:
    samples = samples or [1] * len(values)
    return _sorted([WeightedUpdate(_addr(i), n, {"w": np.array(v, np.float32)}) for i, (v, n) in enumerate(zip(values, samples))])


def _honest_and_attacker(seed: int, honest: int = 6, attack: str = "sign-flip") -> tuple[list[WeightedUpdate], str]:
    """Honest deltas share a direction plus noise; the attacker sends the flipped (or x100) mean."""
    rng = np.random.default_rng(seed)
    shapes = SPEC.tensor_shapes()
    direction = {k: rng.standard_normal(s) * 0.01 for k, s in shapes.items()}
    ups = [
        WeightedUpdate(_addr(i), 1000, {k: (direction[k] + rng.standard_normal(s) * 0.004).astype(np.float32) for k, s in shapes.items()})
        for i in range(honest)
    ]  # fmt: skip
    factor = -1.0 if attack == "sign-flip" else 100.0
    bad = _addr(99)
    ups.append(WeightedUpdate(bad, 1000, {k: (factor * direction[k]).astype(np.float32) for k in shapes}))
    return _sorted(ups), bad


def test_median_on_exact_values_odd_and_even() -> None:
    base = {"w": np.array([0.0, 10.0], np.float32)}
    odd = _exact([[1, 5], [100, -3], [2, 4]])
    assert Median().aggregate(base, odd)[0]["w"].tolist() == [2.0, 14.0]
    even = _exact([[1, 5], [100, -3], [2, 4], [3, -100]])
    # middles: (2+3)/2 = 2.5 and (-3+4)/2 = 0.5
    assert Median().aggregate(base, even)[0]["w"].tolist() == [2.5, 10.5]


def test_median_ignores_sample_counts() -> None:
    base = {"w": np.zeros(1, np.float32)}
    ups = _exact([[1], [2], [-1000]], samples=[1, 1, 10**9])
    assert Median().aggregate(base, ups)[0]["w"].tolist() == [1.0]


def test_trimmed_mean_on_exact_values() -> None:
    base = {"w": np.zeros(2, np.float32)}
    ups = _exact([[1, 1], [2, 2], [3, 3], [4, 4], [1000, -1000]])
    # trim 0.2 of 5 = 1 from each end: column 0 keeps 2,3,4 -> 3; column 1 keeps 1,2,3 -> 2
    assert TrimmedMean(trim=0.2).aggregate(base, ups)[0]["w"].tolist() == [3.0, 2.0]
    # trim 0 is the unweighted mean
    assert TrimmedMean(trim=0.0).aggregate(base, ups)[0]["w"].tolist() == [202.0, -198.0]


def test_multi_krum_drops_the_outlier_and_flags_it() -> None:
    base = {"w": np.zeros(2, np.float32)}
    ups = _exact([[1, 1], [1.5, 1], [1, 1.5], [1.2, 1.2], [50, -50]])
    bad = ups[[u.delta["w"][0] for u in ups].index(50)].participant
    result = MultiKrum(f=1).aggregate_with_flags(base, ups)
    assert set(result.flags) == {bad}
    assert result.flags[bad].reason == "krum-excluded"
    honest = [u for u in ups if u.participant != bad]
    assert save_model_bytes_w(result.weights) == save_model_bytes_w(FedAvg().aggregate(base, honest)[0])


def save_model_bytes_w(w: dict[str, np.ndarray]) -> bytes:
    return b"".join(np.asarray(w[k], np.float32).tobytes() for k in sorted(w))


def test_multi_krum_keeping_everyone_is_fedavg() -> None:
    base = init_model(SPEC, 0)
    ups, _ = _honest_and_attacker(1)
    kept_all = MultiKrum(f=0, m=len(ups)).aggregate_with_flags(base, ups)
    assert kept_all.flags == {}
    assert save_model_bytes(SPEC, kept_all.weights) == save_model_bytes(SPEC, FedAvg().aggregate(base, ups)[0])


@pytest.mark.parametrize("attack", ["sign-flip", "scale100"])
@pytest.mark.parametrize("strategy", [Median(), TrimmedMean(trim=0.15), MultiKrum(f=1)])
def test_robust_rules_flag_exactly_the_attacker(strategy, attack: str) -> None:  # type: ignore[no-untyped-def]
    base = init_model(SPEC, 0)
    ups, bad = _honest_and_attacker(2, attack=attack)
    result = strategy.aggregate_with_flags(base, ups)
    assert set(result.flags) == {bad}, {a: f.detail for a, f in result.flags.items()}
    assert strategy.last_flags == result.flags
    # The robust model stays near the honest mean; plain FedAvg is dragged away.
    honest_mean = FedAvg().aggregate(base, [u for u in ups if u.participant != bad])[0]
    naive = FedAvg().aggregate(base, ups)[0]

    def dist(w: dict[str, np.ndarray]) -> float:
        return float(np.sqrt(sum(((w[k] - honest_mean[k]).astype(np.float64) ** 2).sum() for k in w)))

    assert dist(result.weights) < 0.5 * dist(naive)


def test_clipping_scales_large_updates_to_the_bound_and_flags_them() -> None:
    base = {"w": np.zeros(2, np.float32)}
    ups = _exact([[3, 4], [0.3, 0.4]])  # norms 5 and 0.5
    big = ups[[u.delta["w"][0] for u in ups].index(3)].participant
    result = FedAvg(clip_norm=1.0).aggregate_with_flags(base, ups)
    assert set(result.flags) == {big} and result.flags[big].reason == "clipped"
    assert "norm 5 clipped to 1" in result.flags[big].detail
    # (0.6, 0.8) and (0.3, 0.4) averaged with equal weights
    np.testing.assert_allclose(result.weights["w"], [0.45, 0.6], rtol=0, atol=1e-7)
    assert update_norm({"w": np.array([3, 4], np.float32)}) == 5.0


def test_clipping_that_never_triggers_changes_nothing_but_the_params() -> None:
    base = init_model(SPEC, 0)
    ups, _ = _honest_and_attacker(3)
    loose = FedAvg(clip_norm=1e9)
    assert save_model_bytes(SPEC, loose.aggregate(base, ups)[0]) == save_model_bytes(SPEC, FedAvg().aggregate(base, ups)[0])
    assert loose.last_flags == {}
    assert FedAvg().params() == {"sample_cap": 1_000_000}  # existing manifests keep their bytes
    assert loose.params() == {"sample_cap": 1_000_000, "clip_norm": 1e9}


def test_clip_then_robust_rule_keeps_both_reasons() -> None:
    base = init_model(SPEC, 0)
    ups, bad = _honest_and_attacker(4, attack="scale100")
    honest_norm = max(strategies.update_norm(u.delta) for u in ups if u.participant != bad)
    result = MultiKrum(f=1, clip_norm=3 * honest_norm).aggregate_with_flags(base, ups)
    assert set(result.flags) == {bad}
    assert result.flags[bad].reason == "krum-excluded"
    assert "clipped:" in result.flags[bad].detail


def test_by_name_and_from_manifest() -> None:
    for name, cls in [("median", Median), ("trimmed-mean", TrimmedMean), ("multi-krum", MultiKrum)]:
        s = strategy_from_name(name)
        assert isinstance(s, cls)
        again = strategy_from_manifest({"name": s.name, "params": s.params()})
        assert type(again) is cls and again.params() == s.params()
    assert strategy_from_name("trimmed-mean", trim=0.1).params() == {"trim": 0.1}
    assert strategy_from_name("multi-krum", f=2, m=3).params() == {"f": 2, "m": 3, "sample_cap": 1_000_000}
    assert strategy_from_name("fedadam", clip_norm=2).params()["clip_norm"] == 2.0


@pytest.mark.parametrize(
    "name, params, fragment",
    [
        ("trimmed-mean", {"trim": 0.5}, "0 <= trim < 0.5"),
        ("trimmed-mean", {"trim": -0.1}, "0 <= trim < 0.5"),
        ("multi-krum", {"f": -1}, "f >= 0"),
        ("multi-krum", {"m": 0}, "m >= 1"),
        ("fedavg", {"clip_norm": 0}, "clip_norm"),
        ("median", {"clip_norm": float("inf")}, "clip_norm"),
        ("median", {"trim": 0.1}, "unexpected keyword"),
        ("krum", {}, "unknown aggregation strategy"),
    ],
)
def test_bad_parameters_are_refused(name: str, params: dict, fragment: str) -> None:
    with pytest.raises(AggregationError, match=fragment):
        strategy_from_name(name, **params)


@pytest.mark.parametrize("strategy", [Median(), TrimmedMean(), MultiKrum()])
def test_robust_rules_check_order_and_shapes(strategy) -> None:  # type: ignore[no-untyped-def]
    base = init_model(SPEC, 0)
    ups, _ = _honest_and_attacker(5)
    with pytest.raises(AggregationError, match="increasing participant-address order"):
        strategy.aggregate(base, list(reversed(ups)))
    with pytest.raises(AggregationError, match="no updates"):
        strategy.aggregate(base, [])
    with pytest.raises(AggregationError, match="shape"):
        strategy.aggregate(base, [WeightedUpdate(ups[0].participant, 5, {**ups[0].delta, "layers.00.bias": np.zeros(3, np.float32)})])


@pytest.mark.parametrize("strategy", [Median(), TrimmedMean(trim=0.2), MultiKrum(f=2, clip_norm=0.3)])
def test_chunk_size_does_not_change_a_single_bit(strategy, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    base = init_model(SPEC, 0)
    ups, _ = _honest_and_attacker(6)
    ref = strategy.aggregate_with_flags(base, ups)
    monkeypatch.setattr(kernels, "CHUNK", 1000)
    small = strategy.aggregate_with_flags(base, ups)
    assert save_model_bytes(SPEC, ref.weights) == save_model_bytes(SPEC, small.weights)
    assert ref.flags == small.flags


def test_a_fresh_process_rederives_the_same_bytes() -> None:
    code = """
import hashlib, sys
from tests.federation.test_robust_strategies import _honest_and_attacker, SPEC
from federation.rounds.strategies import strategy_from_name
from federation.model import save_model_bytes
from federation.model.network import init_model
ups, _ = _honest_and_attacker(7)
for name, p in [('median', {}), ('trimmed-mean', {'trim': 0.2}), ('multi-krum', {'f': 1})]:
    w, _ = strategy_from_name(name, **p).aggregate(init_model(SPEC, 0), ups)
    print(hashlib.sha256(save_model_bytes(SPEC, w)).hexdigest())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ups, _ = _honest_and_attacker(7)
    here = [
        hashlib.sha256(save_model_bytes(SPEC, strategy_from_name(n, **p).aggregate(init_model(SPEC, 0), ups)[0])).hexdigest()
        for n, p in [("median", {}), ("trimmed-mean", {"trim": 0.2}), ("multi-krum", {"f": 1})]
    ]
    assert out == here
