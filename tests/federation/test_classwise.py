"""Class-wise FedAvg: each output row divided by the weight of the members that move it, the body plain FedAvg."""

from __future__ import annotations

import numpy as np
import pytest

from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model
from federation.rounds.strategies import (
    AggregationError,
    ClasswiseFedAvg,
    FedAvg,
    WeightedUpdate,
    strategy_from_manifest,
)
from federation.rounds.strategies.classwise import moved_rows, output_layer

SPEC = ModelSpec("test/v1", 12, (16, 8), ("normal", "dos", "probe", "u2r"))
W, B = "layers.02.weight", "layers.02.bias"


def _update(address: str, n: int, seed: int, rows: list[int]) -> WeightedUpdate:
    """An update moving every hidden tensor and only the output rows ``rows`` (as FedRS with scale 0 leaves it)."""
    rng = np.random.default_rng(seed)
    delta = {k: (rng.standard_normal(s) * 0.01).astype(np.float32) for k, s in SPEC.tensor_shapes().items()}
    keep = np.zeros(len(SPEC.classes), dtype=bool)
    keep[rows] = True
    delta[W][~keep] = 0.0
    delta[B][~keep] = 0.0
    return WeightedUpdate(address, n, delta)


def _ups() -> list[WeightedUpdate]:
    return [
        _update("0x" + "1" * 40, 300, 1, [0, 1]),  # normal + dos
        _update("0x" + "2" * 40, 100, 2, [0, 1, 2]),  # normal + dos + probe
        _update("0x" + "3" * 40, 50, 3, [0, 3]),  # normal + u2r: the only holder of u2r
    ]


def test_output_rows_are_averaged_over_their_holders_only() -> None:
    base = init_model(SPEC, 0)
    ups = _ups()
    new, state = ClasswiseFedAvg(sample_cap=None).aggregate(base, ups, None)
    plain, _ = FedAvg(sample_cap=None).aggregate(base, ups, None)
    assert state == {}
    d = [u.delta for u in ups]
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    # the hidden layers are FedAvg's, bit for bit
    for k in base:
        if k not in (W, B):
            assert np.array_equal(new[k], plain[k])
    expected = {
        0: (300 * f64(d[0][W][0]) + 100 * f64(d[1][W][0]) + 50 * f64(d[2][W][0])) / 450,  # everyone: FedAvg
        1: (300 * f64(d[0][W][1]) + 100 * f64(d[1][W][1])) / 400,
        2: f64(d[1][W][2]),  # one holder: its own step, undiluted
        3: f64(d[2][W][3]),
    }
    for c, row in expected.items():
        np.testing.assert_allclose(new[W][c], (f64(base[W][c]) + row).astype(np.float32), rtol=0, atol=1e-7)
    np.testing.assert_allclose(new[B][3], np.float32(f64(base[B][3]) + f64(d[2][B][3])), rtol=0, atol=1e-7)
    # FedAvg moves the lone holder's row at 50/450 of its step
    np.testing.assert_allclose(plain[W][3], (f64(base[W][3]) + 50 * f64(d[2][W][3]) / 450).astype(np.float32), atol=1e-7)


def test_a_row_nobody_moves_stays_and_ordinary_softmax_updates_fall_back_to_fedavg() -> None:
    base = init_model(SPEC, 0)
    ups = [_update("0x" + "1" * 40, 300, 1, [0, 1]), _update("0x" + "2" * 40, 100, 2, [0, 1])]
    new, _ = ClasswiseFedAvg().aggregate(base, ups, None)
    assert np.array_equal(new[W][2:], base[W][2:]) and np.array_equal(new[B][2:], base[B][2:])
    dense = [_update("0x" + "1" * 40, 300, 1, [0, 1, 2, 3]), _update("0x" + "2" * 40, 100, 2, [0, 1, 2, 3])]
    a, _ = ClasswiseFedAvg().aggregate(base, dense, None)
    b, _ = FedAvg().aggregate(base, dense, None)
    assert save_model_bytes(SPEC, a) == save_model_bytes(SPEC, b)


def test_bit_reproducible_streamed_capped_and_rebuilt_from_the_manifest() -> None:
    base = init_model(SPEC, 0)
    rule = ClasswiseFedAvg(sample_cap=120, clip_norm=0.5)
    a, _ = rule.aggregate(base, _ups(), None)
    b, _ = rule.aggregate(base, iter(_ups()), None)
    rebuilt = strategy_from_manifest({"name": rule.name, "params": rule.params()})
    c, _ = rebuilt.aggregate(base, _ups(), None)
    assert isinstance(rebuilt, ClasswiseFedAvg) and rebuilt.params() == {"sample_cap": 120, "clip_norm": 0.5}
    assert save_model_bytes(SPEC, a) == save_model_bytes(SPEC, b) == save_model_bytes(SPEC, c)
    # the cap is the weight of every row's divisor: 120 + 100 for the dos row, not 300 + 100
    d = _ups()
    clipped = ClasswiseFedAvg(sample_cap=120).aggregate(base, d, None)[0]
    row = (120 * d[0].delta[W][1].astype(np.float64) + 100 * d[1].delta[W][1].astype(np.float64)) / 220
    np.testing.assert_allclose(clipped[W][1], (base[W][1] + row).astype(np.float32), atol=1e-7)


def test_output_layer_and_moved_rows() -> None:
    assert output_layer(["layers.00.weight", "layers.00.bias", "layers.10.weight", "layers.10.bias", "layers.02.bias"]) == (
        "layers.10.weight", "layers.10.bias")  # fmt: skip
    with pytest.raises(AggregationError, match="layers.NN"):
        output_layer(["conv.weight"])
    w = np.zeros((3, 2), dtype=np.float32)
    b = np.zeros(3, dtype=np.float32)
    w[0, 1], b[2] = 1e-30, -1.0
    assert moved_rows({"w": w, "b": b}, "w", "b").tolist() == [True, False, True]


def test_a_family_only_one_member_holds_is_learnt() -> None:
    """Real torch: four members share every family but web, the fifth holds normal and web alone."""
    from federation.metrics import evaluate
    from federation.training import train_local
    from flows.synthetic import generate

    train, test = generate(5000, 0), generate(3000, 1)
    spec = ModelSpec.for_dataset(train, hidden=(32, 16))
    web = train.classes.index("web")
    rng = np.random.default_rng(0)
    others = np.flatnonzero(train.labels != web)
    rng.shuffle(others)
    chunks = np.array_split(others, 5)
    lone = np.concatenate([chunks[4][train.labels[chunks[4]] == 0], np.flatnonzero(train.labels == web)])
    members = [train.subset(np.sort(c)) for c in chunks[:4]] + [train.subset(np.sort(lone))]
    assert [int(m.class_counts()[web] > 0) for m in members] == [0, 0, 0, 0, 1]

    def federate(rule: FedAvg) -> dict[str, float]:
        w = init_model(spec, 0)
        for rnd in range(10):
            ups = [
                WeightedUpdate(f"0x{i + 1:040x}", len(m), train_local(
                    spec, w, m, epochs=4, seed=rnd * 10 + i, class_weights="sqrt", absent_class_scale=0.0, logit_calibration=0.5,
                ).delta)
                for i, m in enumerate(members)
            ]  # fmt: skip
            w, _ = rule.aggregate(w, ups)
        return evaluate(w, spec, test)["recall"]

    plain, classwise = federate(FedAvg()), federate(ClasswiseFedAvg())
    assert plain["web"] < 0.1  # FedAvg dilutes the lone holder's row five-fold every round: web is never predicted
    assert classwise["web"] >= 0.4
    for family in ("dos", "probe", "bruteforce", "botnet"):  # and the shared families are not lost for it
        assert classwise[family] >= 0.8, (family, classwise)


def test_it_needs_every_update_so_secure_aggregation_refuses_it() -> None:
    from federation.descriptor import SUM_STRATEGIES
    from federation.rounds.strategies import STRATEGIES

    base = init_model(SPEC, 0)
    total = {k: np.zeros(v.shape, dtype=np.float64) for k, v in base.items()}
    with pytest.raises(AggregationError, match="secure aggregation reveals only their sum"):
        ClasswiseFedAvg().aggregate_sum(base, total, 1.0)
    # the descriptor's list of rules allowed under secure aggregation is exactly the rules that work on sums
    assert set(SUM_STRATEGIES) == {name for name, cls in STRATEGIES.items() if cls.works_on_sums}
