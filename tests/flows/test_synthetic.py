"""The synthetic generator: reproducible, imbalanced, learnable only from feature combinations."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from flows import DataError, FlowDataset
from flows.synthetic import FAMILIES, SCHEMA, generate, generate_raw


def test_same_seed_same_arrays_other_seed_differs() -> None:
    a = generate(3000, seed=7)
    b = generate(3000, seed=7)
    c = generate(3000, seed=8)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.features, c.features)


def test_shape_dtypes_classes_and_schema() -> None:
    d = generate(2000, seed=0)
    assert isinstance(d, FlowDataset)
    assert d.features.dtype == np.float32 and d.labels.dtype == np.int64
    assert d.features.shape == (2000, SCHEMA.dim) and len(d) == 2000
    assert d.classes == ("normal", *FAMILIES)
    assert d.schema_id == "synthetic/v1"
    assert d.feature_names == SCHEMA.feature_names
    assert np.isfinite(d.features).all()
    # one-hot blocks: exactly one slot set per categorical per row
    for name in ("protocol", "service", "flag"):
        cols = [i for i, f in enumerate(d.feature_names) if f.startswith(name + "=")]
        assert np.array_equal(d.features[:, cols].sum(axis=1), np.ones(2000, dtype=np.float32))


def test_imbalance_like_real_traffic() -> None:
    counts = generate(20000, seed=1).class_counts()
    share = counts / counts.sum()
    assert 0.75 < share[0] < 0.85  # mostly normal
    assert (counts[1:] > 0).all()
    assert share[1:].max() < 0.12 and share[1:].min() < 0.03  # rare families exist


def test_unknown_services_use_other_bucket() -> None:
    d = generate(20000, seed=2)
    other = d.feature_names.index("service=<other>")
    assert d.features[:, other].sum() > 0


def test_families_restricts_generation_but_keeps_class_list() -> None:
    d = generate(5000, seed=3, families=["dos", "web"])
    present = {d.classes[i] for i in np.unique(d.labels)}
    assert present == {"normal", "dos", "web"}
    assert d.classes == ("normal", *FAMILIES)


@pytest.mark.parametrize(
    "kwargs",
    [dict(families=["ransomware"]), dict(label_noise=1.5), dict(weights={"aliens": 1.0}),
     dict(weights={"normal": -1.0})],
)
def test_bad_arguments_raise_typed_errors(kwargs: dict) -> None:
    with pytest.raises(DataError):
        generate(100, seed=0, **kwargs)


def test_negative_count_rejected() -> None:
    with pytest.raises(DataError, match="n_records"):
        generate(-1, seed=0)


def test_fast_enough() -> None:
    generate(1000, seed=0)  # warm-up
    t = time.perf_counter()
    generate(50_000, seed=0)
    # the target is well under a second; the margin covers a busy 2-core CI box
    assert time.perf_counter() - t < 2.0


def _best_stump_balanced_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Best balanced accuracy of any threshold on any single column."""
    best = 0.5
    for j in range(x.shape[1]):
        t = y[np.argsort(x[:, j], kind="stable")]
        tpr = np.cumsum(t) / t.sum()
        fpr = np.cumsum(~t) / (~t).sum()
        best = max(best, float(np.max(np.maximum(0.5 * (1 - tpr + fpr), 0.5 * (tpr + 1 - fpr)))))
    return best


def test_no_single_feature_separates_but_a_model_learns_every_family() -> None:
    train, test = generate(20000, seed=10), generate(10000, seed=11)
    stumps = {}
    for k, fam in enumerate(train.classes[1:], start=1):
        m = (train.labels == 0) | (train.labels == k)
        stumps[fam] = _best_stump_balanced_accuracy(train.features[m], train.labels[m] == k)
    assert max(stumps.values()) < 0.95, stumps

    # One thread: on a busy CI box torch's thread pool contends and is far slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(train.n_features, 64), torch.nn.ReLU(),
                                  torch.nn.Linear(64, len(train.classes)))
        opt = torch.optim.Adam(net.parameters(), lr=5e-3)
        x, y = torch.from_numpy(train.features), torch.from_numpy(train.labels)
        for _ in range(6):
            perm = torch.randperm(len(y))
            for i in range(0, len(y), 256):
                b = perm[i:i + 256]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(x[b]), y[b]).backward()
                opt.step()
        with torch.no_grad():
            pred = net(torch.from_numpy(test.features)).argmax(1).numpy()
    finally:
        torch.set_num_threads(threads)
    recall = {c: float((pred[test.labels == k] == k).mean()) for k, c in enumerate(test.classes)}
    # the multi-feature model learns every family and beats the best single features
    assert min(recall[f] for f in FAMILIES) > 0.85, (recall, stumps)
    assert np.mean([recall[f] for f in FAMILIES]) > np.mean(list(stumps.values())) + 0.02


def test_raw_flows_look_like_flow_records() -> None:
    raw = generate_raw(3000, seed=4)
    assert (raw.numeric["src_bytes"] >= 0).all()
    assert np.array_equal(raw.numeric["packets"], np.round(raw.numeric["packets"]))
    rates = raw.numeric["serror_rate"]
    assert ((rates >= 0) & (rates <= 1)).all()
    assert set(raw.categorical["protocol"]) <= {"tcp", "udp", "icmp"}
