"""FlowDataset: the container's guarantees and helpers."""

from __future__ import annotations

import numpy as np
import pytest

from flows import DataError, FlowDataset


def _ds(n: int = 6) -> FlowDataset:
    return FlowDataset(
        features=np.arange(n * 2, dtype=np.float64).reshape(n, 2),
        labels=np.array([0, 1, 2, 0, 1, 0][:n]),
        classes=("normal", "dos", "probe", "web"),
        schema_id="test/v1",
        feature_names=("a", "b"),
    )


def test_coerces_dtypes_and_helpers() -> None:
    d = _ds()
    assert d.features.dtype == np.float32 and d.labels.dtype == np.int64
    assert len(d) == 6 and d.n_features == 2
    assert d.binary.tolist() == [0, 1, 1, 0, 1, 0] and d.binary.dtype == np.int64
    assert d.class_counts().tolist() == [3, 2, 1, 0]  # absent class still counted
    s = d.subset([4, 1])
    assert s.labels.tolist() == [1, 1] and s.features[0].tolist() == [8.0, 9.0]
    assert s.classes == d.classes and s.schema_id == d.schema_id
    assert d.family_names().tolist() == ["normal", "dos", "probe", "normal", "dos", "normal"]


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(features=np.zeros(6)), "2-D"),
        (dict(labels=np.zeros(5, dtype=np.int64)), "labels shape"),
        (dict(feature_names=("a",)), "feature names"),
        (dict(classes=("dos", "normal", "probe", "web")), "start with 'normal'"),
        (dict(classes=("normal", "dos", "dos", "web")), "duplicate"),
        (dict(labels=np.array([0, 1, 2, 0, 1, 4])), "labels must lie"),
        (dict(labels=np.array([0, 1, 2, 0, 1, -1])), "labels must lie"),
        (dict(labels=np.array([0.0, 1.0, 2.0, 0.0, 1.0, 0.7])), "integer class indices"),
        (dict(features=np.array([[0, 1]] * 5 + [[np.nan, 0]])), "non-finite feature value in row 5"),
    ],
)
def test_rejects_inconsistent_data(change: dict, match: str) -> None:
    d = _ds()
    args = dict(features=d.features, labels=d.labels, classes=d.classes,
                schema_id=d.schema_id, feature_names=d.feature_names)
    args.update(change)
    with pytest.raises(DataError, match=match):
        FlowDataset(**args)


def test_empty_dataset_is_allowed() -> None:
    d = FlowDataset(np.zeros((0, 3)), [], ("normal",), "e/v1", ("a", "b", "c"))
    assert len(d) == 0 and d.class_counts().tolist() == [0] and d.n_features == 3
