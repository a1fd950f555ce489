"""Local training and evaluation on real (synthetic) flow data with real torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from federation.metrics import EvaluationError, evaluate, scores
from federation.model import ModelSpec
from federation.model.network import init_model, model_from_weights
from federation.training import TrainingError, class_weight_vector, train_local
from flows.synthetic import generate


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return generate(3000, 0), generate(1500, 1)


def _spec(ds) -> ModelSpec:  # type: ignore[no-untyped-def]
    return ModelSpec.for_dataset(ds, hidden=(32, 16))


def test_same_seed_same_delta_and_another_seed_differs(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    spec = _spec(train)
    base = init_model(spec, 0)
    a = train_local(spec, base, train, epochs=1, seed=5)
    b = train_local(spec, base, train, epochs=1, seed=5)
    c = train_local(spec, base, train, epochs=1, seed=6)
    assert all(np.array_equal(a.delta[k], b.delta[k]) for k in a.delta)
    assert any(not np.array_equal(a.delta[k], c.delta[k]) for k in a.delta)
    assert all(np.array_equal(a.weights[k] - base[k], a.delta[k]) for k in a.delta)
    assert a.num_samples == len(train) and a.metrics["steps"] == -(-len(train) // 256)
    assert torch.get_num_threads() >= 1  # restored after training


def test_training_learns_the_attack_families(data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    spec = _spec(train)
    base = init_model(spec, 0)
    before = evaluate(base, spec, test)
    result = train_local(spec, base, train, epochs=8, seed=1)
    after = evaluate(result.weights, spec, test)
    assert after["macro_f1"] > before["macro_f1"] + 0.3
    assert after["macro_f1"] > 0.6
    assert min(after["recall"].values()) > 0.5


def test_fedprox_keeps_the_update_closer_to_the_base(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    spec = _spec(train)
    base = init_model(spec, 0)

    def norm(mu: float) -> float:
        delta = train_local(spec, base, train, epochs=2, seed=3, mu=mu).delta
        return float(np.sqrt(sum(float((d.astype(np.float64) ** 2).sum()) for d in delta.values())))

    assert norm(10.0) < 0.7 * norm(0.0)


def test_balanced_class_weights() -> None:
    labels = np.array([0] * 8 + [1] * 2 + [3] * 2)
    w = class_weight_vector(labels, 4, "balanced").numpy()
    assert w.tolist() == pytest.approx([12 / (3 * 8), 12 / (3 * 2), 0.0, 12 / (3 * 2)])
    assert class_weight_vector(labels, 4, None) is None
    with pytest.raises(TrainingError):
        class_weight_vector(labels, 4, "inverse")


def test_bad_training_inputs(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    spec = _spec(train)
    base = init_model(spec, 0)
    narrow = ModelSpec(spec.schema_id, spec.input_dim + 1, spec.hidden, spec.classes)
    with pytest.raises(TrainingError, match="does not fit"):
        train_local(narrow, init_model(narrow, 0), train)
    with pytest.raises(TrainingError, match="empty"):
        train_local(spec, base, train.subset(np.array([], dtype=np.int64)))
    with pytest.raises(TrainingError, match="epochs"):
        train_local(spec, base, train, epochs=0)
    with pytest.raises(TrainingError, match="optimizer"):
        train_local(spec, base, train, optimizer="lbfgs")  # type: ignore[arg-type]


def test_scores_on_a_hand_computed_example() -> None:
    classes = ("normal", "dos", "probe", "r2l")
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    s = scores(y_true, y_pred, classes)
    # normal: P=1, R=3/4 -> F1=6/7; dos: P=1/2, R=1/2 -> 1/2; probe: P=1/2, R=1/2 -> 1/2; r2l: only predicted -> 0
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["macro_f1"] == pytest.approx((6 / 7 + 0.5 + 0.5 + 0.0) / 4)
    assert s["binary_accuracy"] == pytest.approx(7 / 8)
    assert s["fpr"] == pytest.approx(1 / 4)
    assert s["recall"] == {"dos": 0.5, "probe": 0.5}
    assert s["confusion"][0] == [3, 1, 0, 0]
    with pytest.raises(EvaluationError):
        scores(y_true, y_pred[:-1], classes)


def test_evaluate_model_and_weights_agree(data) -> None:  # type: ignore[no-untyped-def]
    train, test = data
    spec = _spec(train)
    weights = init_model(spec, 4)
    assert evaluate(weights, spec, test) == evaluate(model_from_weights(spec, weights), spec, test)
    other = ModelSpec(spec.schema_id, spec.input_dim, spec.hidden, tuple(reversed(spec.classes)))
    with pytest.raises(EvaluationError, match="classes"):
        evaluate(init_model(other, 0), other, test)


def test_restricted_softmax_leaves_absent_classes_untouched(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    spec = _spec(train)
    base = init_model(spec, 0)
    only_dos = train.subset(np.flatnonzero(train.labels <= 1))
    last = f"layers.{len(spec.hidden):02d}"
    restricted = train_local(spec, base, only_dos, epochs=1, seed=2, absent_class_scale=0.0).delta
    ordinary = train_local(spec, base, only_dos, epochs=1, seed=2).delta
    for name in (f"{last}.weight", f"{last}.bias"):
        assert np.all(restricted[name][2:] == 0.0)  # classes 2.. never occur locally: no gradient reaches them
        assert np.any(restricted[name][:2] != 0.0)
        assert np.any(ordinary[name][2:] != 0.0)
    with pytest.raises(TrainingError, match="absent_class_scale"):
        train_local(spec, base, only_dos, absent_class_scale=1.5)


def test_logit_calibration_trains_rare_classes_with_a_margin(data) -> None:  # type: ignore[no-untyped-def]
    train, _ = data
    spec = _spec(train)
    base = init_model(spec, 0)
    # a local set where class 1 is common and class 2 rare
    idx = np.concatenate([np.flatnonzero(train.labels == 0), np.flatnonzero(train.labels == 1), np.flatnonzero(train.labels == 2)[:15]])
    skewed = train.subset(np.sort(idx))
    plain = train_local(spec, base, skewed, epochs=2, seed=3, absent_class_scale=0.0)
    fedlc = train_local(spec, base, skewed, epochs=2, seed=3, absent_class_scale=0.0, logit_calibration=1.0)
    last = f"layers.{len(spec.hidden):02d}"
    # the calibrated model must score the rare class higher to fit it: its bias moves further up
    assert fedlc.delta[f"{last}.bias"][2] > plain.delta[f"{last}.bias"][2]
    # absent classes still get no gradient, and the model itself carries no calibration term
    assert np.all(fedlc.delta[f"{last}.weight"][3:] == 0.0)
    assert set(fedlc.delta) == set(plain.delta)
    assert any(not np.array_equal(fedlc.delta[k], plain.delta[k]) for k in plain.delta)
    with pytest.raises(TrainingError, match="logit_calibration"):
        train_local(spec, base, skewed, logit_calibration=-1.0)
