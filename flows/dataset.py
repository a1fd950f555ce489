"""The encoded flow data set every learning component consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flows.errors import DataError


@dataclass(frozen=True)
class FlowDataset:
    """Flow records encoded by a feature schema, with their unified-taxonomy labels.

    ``features`` is float32 ``(n, d)``, already encoded (one-hot categoricals,
    log1p, normalised); ``labels`` is int64 ``(n,)`` indexing ``classes``, whose
    first entry is always ``"normal"``. ``classes`` comes from the schema, not
    from the rows present, so every party of a federation has the same list.
    """

    features: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    schema_id: str
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        raw_labels = np.asarray(self.labels)
        # Casting 0.7 to class 0 would silently relabel a row; only integers are labels.
        if raw_labels.size and not (np.issubdtype(raw_labels.dtype, np.integer)
                                    or raw_labels.dtype == np.bool_):
            raise DataError(f"labels must be integer class indices, got dtype {raw_labels.dtype}")
        # Coerce once here so consumers can rely on dtype and contiguity.
        feats = np.ascontiguousarray(self.features, dtype=np.float32)
        labels = np.ascontiguousarray(raw_labels, dtype=np.int64)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        if feats.ndim != 2:
            raise DataError(f"features must be 2-D (n, d), got shape {feats.shape}")
        if labels.shape != (feats.shape[0],):
            raise DataError(
                f"labels shape {labels.shape} does not match {feats.shape[0]} feature rows"
            )
        if len(self.feature_names) != feats.shape[1]:
            raise DataError(
                f"{len(self.feature_names)} feature names for {feats.shape[1]} feature columns"
            )
        if not self.classes or self.classes[0] != "normal":
            raise DataError(f"classes must start with 'normal', got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise DataError(f"duplicate class names in {self.classes!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(
                f"labels must lie in [0, {len(self.classes)}), got [{labels.min()}, {labels.max()}]"
            )
        if not np.isfinite(feats).all():
            bad = int(np.argwhere(~np.isfinite(feats))[0][0])
            raise DataError(f"non-finite feature value in row {bad}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def binary(self) -> np.ndarray:
        """1 for any attack, 0 for normal traffic (int64)."""
        return (self.labels != 0).astype(np.int64)

    def subset(self, indices: np.ndarray | list[int]) -> FlowDataset:
        """The rows at ``indices`` (in that order), same classes and schema."""
        idx = np.asarray(indices, dtype=np.int64)
        return FlowDataset(
            features=self.features[idx],
            labels=self.labels[idx],
            classes=self.classes,
            schema_id=self.schema_id,
            feature_names=self.feature_names,
        )

    def class_counts(self) -> np.ndarray:
        """Rows per class, int64 of length ``len(classes)`` (zeros for absent classes)."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def family_names(self) -> np.ndarray:
        """The class name of every row (object array), for reports."""
        return np.asarray(self.classes, dtype=object)[self.labels]
