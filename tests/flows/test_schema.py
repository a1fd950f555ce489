"""Feature schemas: fixed-width encoding and normalisation from federated statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flows import FlowDataset, SchemaError
from flows.loaders import nsl_kdd
from flows.partition import partition
from flows.schema import (
    CategoricalFeature,
    FeatureSchema,
    LocalStats,
    Normaliser,
    NumericFeature,
    RawFlows,
    merge,
)
from flows.synthetic import SCHEMA as SYN
from flows.synthetic import generate_raw

TOY = FeatureSchema(
    schema_id="toy/v1",
    numeric=(NumericFeature("bytes", "log1p"), NumericFeature("rate", "identity", (0.5, 0.5)),
             NumericFeature("pps", "identity", nonfinite="flag")),
    categorical=(CategoricalFeature("proto", ("tcp", "udp")),),
    classes=("normal", "dos"),
)


def _toy_raw() -> RawFlows:
    return RawFlows(
        numeric={"bytes": np.array([0.0, np.e - 1, -3.0]), "rate": np.array([0.0, 1.0, 0.5]),
                 "pps": np.array([2.0, np.inf, np.nan])},
        categorical={"proto": np.array(["tcp", "icmp", "udp"], dtype=object)},
        families=np.array(["normal", "dos", "normal"], dtype=object),
    )


def test_transform_layout_and_values() -> None:
    assert TOY.feature_names == ("bytes", "rate", "pps", "pps#nonfinite", "proto=tcp",
                                 "proto=udp", "proto=<other>")
    x = TOY.transform(_toy_raw())
    np.testing.assert_allclose(x[:, 0], [0.0, 1.0, -np.log(4.0)])  # signed log1p
    np.testing.assert_array_equal(x[:, 2:4], [[2, 0], [0, 1], [0, 1]])
    np.testing.assert_array_equal(x[:, 4:], [[1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_encode_gives_flow_dataset_with_schema_classes() -> None:
    n = Normaliser.from_stats(TOY, LocalStats.of(TOY, TOY.transform(_toy_raw())))
    d = TOY.encode(_toy_raw(), n)
    assert isinstance(d, FlowDataset) and d.classes == ("normal", "dos")
    assert d.labels.tolist() == [0, 1, 0] and d.schema_id == "toy/v1"
    np.testing.assert_allclose(d.features[:, 1], [-1.0, 1.0, 0.0])  # fixed by the schema
    np.testing.assert_array_equal(d.features[:, 4:], TOY.transform(_toy_raw())[:, 4:])


def test_nonfinite_in_strict_column_is_an_error() -> None:
    raw = _toy_raw()
    raw.numeric["rate"][1] = np.nan
    with pytest.raises(SchemaError, match="non-finite 'rate' in row 1"):
        TOY.transform(raw)


def test_label_outside_schema_is_an_error() -> None:
    raw = _toy_raw()
    raw.families[0] = "botnet"
    with pytest.raises(SchemaError, match="no class for 'botnet'"):
        TOY.label_indices(raw.families)


def test_missing_column_is_an_error() -> None:
    raw = _toy_raw()
    del raw.numeric["pps"]
    with pytest.raises(SchemaError, match="lack numeric column 'pps'"):
        TOY.transform(raw)


def test_federated_stats_equal_pooled_stats_without_pooling_rows() -> None:
    raw = generate_raw(6000, seed=3)
    schema = nsl_like = FeatureSchema("syn-free/v1", tuple(NumericFeature(f.name, f.transform)
                                                            for f in SYN.numeric),
                                      SYN.categorical, SYN.classes)
    x = schema.transform(raw)
    labels = schema.label_indices(raw.families)
    parts = partition(labels, 4, "dirichlet:0.3", seed=0)
    party_stats = [LocalStats.of(nsl_like, x[p]) for p in parts]  # each on its own rows
    merged = merge(party_stats)
    pooled = LocalStats.of(schema, x)
    assert merged.count == pooled.count == 6000
    np.testing.assert_allclose(merged.sum, pooled.sum, rtol=1e-12)
    np.testing.assert_allclose(merged.sum_sq, pooled.sum_sq, rtol=1e-12)
    norm = Normaliser.from_stats(schema, merged)
    z = norm.apply(x)
    k = schema.n_numeric
    np.testing.assert_allclose(z[:, :k].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, :k].std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(z[:, k:], x[:, k:])  # one-hots untouched
    # one party's rows alone would give a different normaliser
    alone = Normaliser.from_stats(schema, party_stats[0])
    assert not np.allclose(alone.centre, norm.centre)


def test_merge_order_is_the_callers_and_reproducible() -> None:
    x = np.random.default_rng(0).normal(size=(100, SYN.dim)) * 1e3
    a, b, c = (LocalStats.of(SYN, x[i::3]) for i in range(3))
    m1, m2 = merge([a, b, c]), merge([a, b, c])
    assert m1.sum.tobytes() == m2.sum.tobytes()


def test_stats_and_normaliser_round_trip_through_json_exactly() -> None:
    x = SYN.transform(generate_raw(500, seed=1))
    s = LocalStats.of(SYN, x)
    s2 = LocalStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert s2.sum.tobytes() == s.sum.tobytes() and s2.count == s.count
    n = Normaliser.from_stats(SYN, s)
    n2 = Normaliser.from_dict(json.loads(json.dumps(n.to_dict())))
    assert n2.centre.tobytes() == n.centre.tobytes() and n2.scale.tobytes() == n.scale.tobytes()


@pytest.mark.parametrize(
    "record, match",
    [
        ({"schema_id": "x", "count": 2, "sum": [1.0]}, "malformed statistics"),
        ({"schema_id": "x", "count": 2, "sum": [1.0], "sum_sq": [1.0, 2.0]}, "shapes"),
        ({"schema_id": "x", "count": -1, "sum": [1.0], "sum_sq": [1.0]}, "shapes or count"),
        ({"schema_id": "x", "count": 2, "sum": [float("nan")], "sum_sq": [1.0]}, "non-finite"),
        ({"schema_id": "x", "count": 2, "sum": [1.0], "sum_sq": [-1.0]}, "negative"),
        ({"schema_id": "x", "count": 2, "sum": ["a"], "sum_sq": [1.0]}, "malformed statistics"),
    ],
)
def test_hostile_stats_records_are_rejected(record: dict, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        LocalStats.from_dict(record)


@pytest.mark.parametrize(
    "record, match",
    [
        ({"schema_id": "x", "centre": [0.0]}, "malformed normaliser"),
        ({"schema_id": "x", "centre": [0.0], "scale": [0.0]}, "non-positive"),
        ({"schema_id": "x", "centre": [0.0, 1.0], "scale": [1.0]}, "shapes"),
        ({"schema_id": "x", "centre": [float("inf")], "scale": [1.0]}, "non-finite"),
    ],
)
def test_hostile_normaliser_records_are_rejected(record: dict, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        Normaliser.from_dict(record)


def test_normaliser_guards() -> None:
    x = TOY.transform(_toy_raw())
    with pytest.raises(SchemaError, match="at least 2 rows"):
        Normaliser.from_stats(TOY, LocalStats.of(TOY, x[:1]))
    with pytest.raises(SchemaError, match="do not fit schema"):
        Normaliser.from_stats(SYN, LocalStats.of(TOY, x))
    with pytest.raises(SchemaError, match="cannot merge"):
        merge([LocalStats.of(TOY, x), LocalStats.of(SYN, SYN.transform(generate_raw(5, 0)))])
    with pytest.raises(SchemaError, match="at least one"):
        merge([])
    with pytest.raises(SchemaError, match="does not fix normalisation of bytes, pps"):
        Normaliser.fixed(TOY)
    with pytest.raises(SchemaError, match="expects"):
        Normaliser.fixed(SYN).apply(x)
    # a constant column gets scale 1, not a division by zero
    const = np.ones((5, TOY.dim))
    n = Normaliser.from_stats(TOY, LocalStats.of(TOY, const))
    assert np.isfinite(n.apply(const)).all()


def test_schema_validation_and_identity() -> None:
    with pytest.raises(SchemaError, match="duplicate"):
        FeatureSchema("d/v1", (NumericFeature("a"), NumericFeature("a")), (), ("normal",))
    with pytest.raises(SchemaError, match="start with 'normal'"):
        FeatureSchema("d/v1", (NumericFeature("a"),), (), ("dos",))
    with pytest.raises(SchemaError, match="vocabulary"):
        FeatureSchema("d/v1", (), (CategoricalFeature("c", ("x", "x")),), ("normal",))
    assert nsl_kdd.SCHEMA.digest() == nsl_kdd.SCHEMA.digest()
    assert nsl_kdd.SCHEMA.digest() != nsl_kdd.SCHEMA.with_unknown().digest()
    assert nsl_kdd.SCHEMA.with_unknown().classes[-1] == "unknown"
    assert nsl_kdd.SCHEMA.with_unknown().schema_id == "nsl-kdd/v1+unknown"
    assert len(nsl_kdd.SCHEMA.feature_names) == nsl_kdd.SCHEMA.dim == 38 + (3 + 1) + (70 + 1) + (11 + 1)
