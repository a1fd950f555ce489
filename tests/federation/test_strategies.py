"""Aggregation strategies: the formulas, the cap, the order rules, state, and bit-reproducibility."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model
from federation.rounds.strategies import (
    AggregationError,
    FedAdam,
    FedAvg,
    FedAvgM,
    Strategy,
    WeightedUpdate,
    strategy_from_manifest,
    strategy_from_name,
)
from federation.rounds.strategies import aggregate as kernels

SPEC = ModelSpec("test/v1", 40, (300, 20), ("normal", "dos", "probe"))  # ~18k parameters: several chunks


def _addr(i: int) -> str:
    return "0x" + hashlib.sha256(f"p{i}".encode()).hexdigest()[:40]


def _updates(seed: int, count: int = 4, spec: ModelSpec = SPEC) -> list[WeightedUpdate]:
    rng = np.random.default_rng(seed)
    ups = [
        WeightedUpdate(
            _addr(i), int(rng.integers(1, 5000)),
            {k: (rng.standard_normal(s) * 0.01).astype(np.float32) for k, s in spec.tensor_shapes().items()},
        )
        for i in range(count)
    ]  # fmt: skip
    return sorted(ups, key=lambda u: u.participant.lower())


def _reference_mean(ups: list[WeightedUpdate], cap: int | None = None) -> dict[str, np.ndarray]:
    w = np.array([u.num_samples if cap is None else min(u.num_samples, cap) for u in ups], dtype=np.float64)
    return {k: np.average(np.stack([u.delta[k].astype(np.float64) for u in ups]), axis=0, weights=w) for k in ups[0].delta}


def test_fedavg_is_the_sample_weighted_mean() -> None:
    base = init_model(SPEC, 0)
    ups = _updates(1)
    new, state = FedAvg().aggregate(base, ups, None)
    ref = _reference_mean(ups)
    assert state == {}
    for k in base:
        assert new[k].dtype == np.float32
        np.testing.assert_allclose(new[k], (base[k] + ref[k]).astype(np.float32), rtol=0, atol=1e-6)


def test_fedavg_on_exact_values() -> None:
    base = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    ups = [
        WeightedUpdate(_addr(0), 1, {"w": np.array([3.0, 0.0], dtype=np.float32)}),
        WeightedUpdate(_addr(1), 3, {"w": np.array([-1.0, 4.0], dtype=np.float32)}),
    ]
    ups.sort(key=lambda u: u.participant.lower())
    new, _ = FedAvg().aggregate(base, ups)
    assert new["w"].tolist() == [1.0, 5.0]  # (3*1 - 1*3)/4 = 0; (0 + 12)/4 = 3


def test_sample_cap_stops_one_party_dominating() -> None:
    base = {"w": np.zeros(3, dtype=np.float32)}
    honest = [WeightedUpdate(_addr(i), 1000, {"w": np.full(3, 1.0, np.float32)}) for i in range(3)]
    greedy = WeightedUpdate(_addr(9), 10**12, {"w": np.full(3, -100.0, np.float32)})
    ups = sorted([*honest, greedy], key=lambda u: u.participant.lower())
    uncapped, _ = FedAvg(sample_cap=None).aggregate(base, ups)
    capped, _ = FedAvg(sample_cap=1000).aggregate(base, ups)
    assert uncapped["w"][0] < -99.0
    assert capped["w"][0] == pytest.approx((3 * 1.0 - 100.0) / 4)
    assert FedAvg(sample_cap=1000).effective_weight(10**12) == 1000.0


def test_updates_may_stream_from_a_generator() -> None:
    base = init_model(SPEC, 0)
    ups = _updates(2)
    produced: list[int] = []

    def stream() -> Iterator[WeightedUpdate]:
        for i, u in enumerate(ups):
            produced.append(i)
            yield u

    streamed, _ = FedAvg().aggregate(base, stream())
    listed, _ = FedAvg().aggregate(base, ups)
    assert produced == [0, 1, 2, 3]
    assert save_model_bytes(SPEC, streamed) == save_model_bytes(SPEC, listed)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda ups: list(reversed(ups)), "increasing participant-address order"),
        (lambda ups: [ups[0], ups[0]], "out of order or repeated"),
        (lambda ups: [], "no updates"),
        (lambda ups: [WeightedUpdate(ups[0].participant, 0, ups[0].delta)], "samples"),
        (lambda ups: [WeightedUpdate("0x1234", 5, ups[0].delta)], "20-byte"),
        (lambda ups: [WeightedUpdate(ups[0].participant, 5, {"x": np.zeros(1)})], "tensors"),
        (
            lambda ups: [WeightedUpdate(ups[0].participant, 5, {**ups[0].delta, "layers.00.bias": np.zeros(3, np.float32)})],
            "shape",
        ),
    ],
)
def test_bad_inputs_are_rejected(mutate, fragment: str) -> None:  # type: ignore[no-untyped-def]
    base = init_model(SPEC, 0)
    with pytest.raises(AggregationError, match=fragment):
        FedAvg().aggregate(base, mutate(_updates(3)))


def test_fedavgm_without_momentum_is_fedavg_and_with_it_follows_the_formula() -> None:
    base = init_model(SPEC, 0)
    ups1, ups2 = _updates(4), _updates(5)
    plain, _ = FedAvg().aggregate(base, ups1)
    same, _ = FedAvgM(server_lr=1.0, momentum=0.0).aggregate(base, ups1)
    assert save_model_bytes(SPEC, plain) == save_model_bytes(SPEC, same)

    s = FedAvgM(server_lr=0.5, momentum=0.9)
    w1, st1 = s.aggregate(base, ups1, None)
    w2, st2 = s.aggregate(w1, ups2, st1)
    m1, m2 = _reference_mean(ups1), _reference_mean(ups2)
    for k in base:
        v1 = m1[k]
        v2 = 0.9 * st1[f"momentum/{k}"].astype(np.float64) + m2[k]
        np.testing.assert_allclose(st1[f"momentum/{k}"], v1, atol=1e-6)
        np.testing.assert_allclose(st2[f"momentum/{k}"], v2, atol=1e-6)
        np.testing.assert_allclose(w2[k], w1[k] + 0.5 * st2[f"momentum/{k}"], atol=1e-6)


def test_fedadam_follows_the_formula() -> None:
    base = init_model(SPEC, 0)
    s = FedAdam(eta=0.05, beta1=0.9, beta2=0.99, tau=1e-3)
    w1, st1 = s.aggregate(base, _updates(6), None)
    w2, st2 = s.aggregate(w1, _updates(7), st1)
    d = _reference_mean(_updates(7))
    for k in base:
        m = 0.9 * st1[f"m/{k}"].astype(np.float64) + 0.1 * d[k]
        v = 0.99 * st1[f"v/{k}"].astype(np.float64) + 0.01 * d[k] ** 2
        np.testing.assert_allclose(st2[f"m/{k}"], m, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(st2[f"v/{k}"], v, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(w2[k], w1[k] + 0.05 * m / (np.sqrt(v) + 1e-3), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("strategy", [FedAvg(), FedAvgM(), FedAdam()])
def test_state_round_trips_through_canonical_bytes(strategy: Strategy) -> None:
    base = init_model(SPEC, 0)
    _, state = strategy.aggregate(base, _updates(8), None)
    data = strategy.state_to_bytes(state)
    back = strategy.state_from_bytes(data)
    assert set(back) == set(state) and all(np.array_equal(back[k], state[k]) for k in state)
    assert strategy.state_to_bytes(back) == data
    # State written by another strategy (or other parameters) is refused.
    other = FedAvgM(momentum=0.5) if strategy.name != "fedavgm" else FedAvgM(momentum=0.1)
    with pytest.raises(AggregationError, match="written by"):
        other.state_from_bytes(data)
    with pytest.raises(AggregationError, match="corrupt"):
        strategy.state_from_bytes(data[:-1])


def test_state_that_does_not_fit_the_model_is_refused() -> None:
    base = init_model(SPEC, 0)
    with pytest.raises(AggregationError, match="state does not match"):
        FedAdam().aggregate(base, _updates(9), {"m/x": np.zeros(1, np.float32)})


def test_by_name_and_from_manifest() -> None:
    s = strategy_from_name("FedAdam", eta=0.1)
    assert isinstance(s, FedAdam) and s.params()["eta"] == 0.1
    again = strategy_from_manifest({"name": s.name, "params": s.params()})
    assert again.params() == s.params()
    with pytest.raises(AggregationError, match="unknown aggregation strategy"):
        strategy_from_name("krum")
    with pytest.raises(AggregationError, match="unexpected keyword"):
        strategy_from_name("fedavg", momentum=0.9)
    with pytest.raises(AggregationError):
        FedAvgM(momentum=1.5)
    with pytest.raises(AggregationError):
        FedAvg(sample_cap=0)


def test_chunk_size_does_not_change_a_single_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    base = init_model(SPEC, 0)
    results = []
    for chunk in (7, 1 << 15, 1 << 22):
        monkeypatch.setattr(kernels, "CHUNK", chunk)
        for s in (FedAvg(), FedAvgM(), FedAdam()):
            w, st = s.aggregate(base, _updates(10), None)
            w, st = s.aggregate(w, _updates(11), st)
            results.append(save_model_bytes(SPEC, w) + s.state_to_bytes(st))
    assert results[0:3] == results[3:6] == results[6:9]


_FRESH = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from tests.federation.test_strategies import SPEC, _updates
from federation.rounds.strategies import strategy_from_name
from federation.model import save_model_bytes
from federation.model.network import init_model
for name in ("fedavg", "fedavgm", "fedadam"):
    s = strategy_from_name(name)
    w, st = s.aggregate(init_model(SPEC, 0), iter(_updates(12)), None)
    w, st = s.aggregate(w, iter(_updates(13)), st)
    print(name, hashlib.sha256(save_model_bytes(SPEC, w)).hexdigest(), hashlib.sha256(s.state_to_bytes(st)).hexdigest())
"""


def test_fresh_process_rederives_the_same_model_bytes() -> None:
    here = []
    for name in ("fedavg", "fedavgm", "fedadam"):
        s = strategy_from_name(name)
        w, st = s.aggregate(init_model(SPEC, 0), _updates(12), None)
        w, st = s.aggregate(w, _updates(13), st)
        here.append(f"{name} {hashlib.sha256(save_model_bytes(SPEC, w)).hexdigest()} {hashlib.sha256(s.state_to_bytes(st)).hexdigest()}")
    repo = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", _FRESH, repo], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == here
