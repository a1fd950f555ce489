"""Feature schemas: how raw flow columns become a fixed-length feature vector.

A schema fixes everything about the encoding that parties must agree on without
seeing each other's rows: the column list, each categorical vocabulary (values
outside it go to an ``<other>`` bucket, so a new service name never changes the
vector length), the numeric transforms, and where normalisation comes from —
constants in the schema, or the federation's merged aggregate statistics
(:class:`LocalStats` → :func:`merge` → :meth:`Normaliser.from_stats`), never one
party's rows. The schema id is versioned and goes into the model spec's digest,
so changing anything here means a new id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from flows.dataset import FlowDataset
from flows.errors import SchemaError

OTHER = "<other>"
NONFINITE_SUFFIX = "#nonfinite"

Transform = Literal["identity", "log1p"]
NonFinite = Literal["error", "flag"]


@dataclass(frozen=True)
class NumericFeature:
    """A numeric column.

    ``transform="log1p"`` is the *signed* log1p, ``sign(x)·log(1+|x|)``: equal to
    log1p for the non-negative counts and byte totals it is meant for, and still
    defined for the odd negative value some exports contain (CICIDS2017 writes -1
    for "not seen"). ``fixed=(centre, scale)`` pins normalisation in the schema;
    ``None`` means it comes from federated statistics. ``nonfinite="flag"`` lets
    Inf/NaN through as 0 plus a 0/1 indicator column (so the vector stays honest);
    ``"error"`` rejects such a row.
    """

    name: str
    transform: Transform = "identity"
    fixed: tuple[float, float] | None = None
    nonfinite: NonFinite = "error"


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical column, one-hot over ``vocabulary`` plus an ``<other>`` bucket."""

    name: str
    vocabulary: tuple[str, ...]


@dataclass(frozen=True)
class CodedColumn:
    """A string column held as its values and each row's index into them (what a
    dictionary-encoding CSV reader produces), so encoding need not sort the strings.
    ``np.asarray(column)`` gives the plain object array of every row's value."""

    values: np.ndarray  # object array of strings (need not be distinct)
    codes: np.ndarray  # int64, one per row, indexing values

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, index: Any) -> CodedColumn:
        return CodedColumn(self.values, self.codes[index])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.values[self.codes]
        return out if dtype is None else out.astype(dtype)


@dataclass
class RawFlows:
    """Parsed, not yet encoded flow records: what a loader or generator produces.

    ``numeric`` holds float64 arrays (Inf/NaN only where the schema allows them),
    ``categorical`` holds string arrays, ``families`` the taxonomy family of each
    row and ``source_labels`` the label as the file wrote it. Loaders also fill
    ``lines``, the physical line of each row in its file (so a detection can name
    the row), and, when asked for them, ``extras``: string columns that are not
    features, such as a flow's endpoints (see ``flows.loaders.rows.ENDPOINT_FIELDS``).
    """

    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    families: np.ndarray
    source_labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.families.shape[0])


@dataclass(frozen=True)
class FeatureSchema:
    """The encoding of one flow format; see the module doc."""

    schema_id: str
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.numeric] + [c.name for c in self.categorical]
        if len(set(names)) != len(names):
            raise SchemaError(f"schema {self.schema_id}: duplicate column names")
        if not self.classes or self.classes[0] != "normal":
            raise SchemaError(f"schema {self.schema_id}: classes must start with 'normal'")
        for c in self.categorical:
            if len(set(c.vocabulary)) != len(c.vocabulary) or OTHER in c.vocabulary:
                raise SchemaError(f"schema {self.schema_id}: bad vocabulary for {c.name!r}")

    # -- layout ---------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Encoded column names: numerics, their non-finite flags, then one-hots."""
        out = [f.name for f in self.numeric]
        out += [f.name + NONFINITE_SUFFIX for f in self.numeric if f.nonfinite == "flag"]
        for c in self.categorical:
            out += [f"{c.name}={v}" for v in c.vocabulary] + [f"{c.name}={OTHER}"]
        return tuple(out)

    @property
    def dim(self) -> int:
        return len(self.feature_names)

    @property
    def n_numeric(self) -> int:
        """Leading encoded columns that are (transformed) numerics and get normalised."""
        return len(self.numeric)

    def with_unknown(self) -> FeatureSchema:
        """This schema with an extra last class ``unknown`` (and its own id), for loading
        with ``unknown_labels="unknown"``; the class list stays fixed by the schema."""
        if "unknown" in self.classes:
            return self
        return FeatureSchema(self.schema_id + "+unknown", self.numeric, self.categorical,
                             (*self.classes, "unknown"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_id": self.schema_id,
            "numeric": [
                {"name": f.name, "transform": f.transform,
                 "fixed": list(f.fixed) if f.fixed else None, "nonfinite": f.nonfinite}
                for f in self.numeric
            ],
            "categorical": [{"name": c.name, "vocabulary": list(c.vocabulary)}
                            for c in self.categorical],
            "classes": list(self.classes),
        }

    def digest(self) -> str:
        """sha256 hex of the canonical JSON of the schema (for specs and manifests)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    # -- encoding -------------------------------------------------------------

    def label_indices(self, families: np.ndarray) -> np.ndarray:
        """int64 class index of each family name; a family the schema lacks is an error."""
        index = {c: i for i, c in enumerate(self.classes)}
        uniq, inverse = np.unique(np.asarray(families, dtype=object).astype(str), return_inverse=True)
        missing = [u for u in uniq if u not in index]
        if missing:
            raise SchemaError(
                f"schema {self.schema_id} has no class for {', '.join(repr(str(m)) for m in missing)}",
                hint=f"its classes are {', '.join(self.classes)}",
            )
        return np.array([index[u] for u in uniq], dtype=np.int64)[inverse.reshape(-1)]

    def transform(self, raw: RawFlows) -> np.ndarray:
        """Encode ``raw`` to float64 ``(n, dim)``, before normalisation."""
        out = np.empty((self.dim, len(raw)), dtype=np.float64)
        self._write_columns(raw, out)
        return np.ascontiguousarray(out.T)

    def features(self, raw: RawFlows, normaliser: Normaliser) -> np.ndarray:
        """Encoded and normalised float32 ``(n, dim)`` features of ``raw``: the values of
        ``normaliser.apply(self.transform(raw))`` without its intermediate copies (for scoring
        large files chunk by chunk). The result is column-major (a transposed view)."""
        if normaliser.centre.shape != (self.dim,):
            raise SchemaError(
                f"normaliser for {normaliser.schema_id} expects {normaliser.centre.shape[0]} features, "
                f"schema {self.schema_id} has {self.dim}"
            )
        out = np.empty((self.dim, len(raw)), dtype=np.float32)
        self._write_columns(raw, out, normaliser.centre, normaliser.scale)
        return out.T

    def _write_columns(self, raw: RawFlows, out: np.ndarray, centre: np.ndarray | None = None,
                       scale: np.ndarray | None = None) -> None:
        """Write encoded column ``j`` of every row into ``out[j]``, normalised as
        ``(x - centre[j]) / scale[j]`` in float64 when ``centre`` is given (then cast to
        ``out``'s dtype on assignment, as ``astype`` would)."""
        n = len(raw)
        j = 0

        def put(j: int, x: np.ndarray) -> None:
            if centre is not None and scale is not None and (centre[j] != 0.0 or scale[j] != 1.0):
                x = (np.asarray(x, dtype=np.float64) - centre[j]) / scale[j]
            out[j] = x

        flags: list[np.ndarray] = []
        for f in self.numeric:
            if f.name not in raw.numeric:
                raise SchemaError(f"schema {self.schema_id}: raw flows lack numeric column {f.name!r}")
            x = np.asarray(raw.numeric[f.name], dtype=np.float64)
            if x.shape != (n,):
                raise SchemaError(f"column {f.name!r} has shape {x.shape}, expected ({n},)")
            finite = np.isfinite(x)
            if f.nonfinite == "flag":
                flags.append(~finite)
                x = np.where(finite, x, 0.0)
            elif not finite.all():
                row = int(np.argmin(finite))
                raise SchemaError(
                    f"schema {self.schema_id}: non-finite {f.name!r} in row {row}",
                    hint="loaders reject such rows with the file and line; check the producer",
                )
            if f.transform == "log1p":
                x = np.sign(x) * np.log1p(np.abs(x))
            put(j, x)
            j += 1
        for flag in flags:
            put(j, flag.astype(np.float64))
            j += 1
        for c in self.categorical:
            if c.name not in raw.categorical:
                raise SchemaError(f"schema {self.schema_id}: raw flows lack column {c.name!r}")
            col = raw.categorical[c.name]
            lookup = {v: i for i, v in enumerate(c.vocabulary)}
            if isinstance(col, CodedColumn):
                uniq, inverse = [str(v) for v in col.values], col.codes
            else:
                uniq, inverse = np.unique(np.asarray(col, dtype=object).astype(str), return_inverse=True)
            # Unseen values share the last (<other>) slot, keeping the width fixed.
            pos = np.array([lookup.get(u, len(c.vocabulary)) for u in uniq], dtype=np.int64)
            width = len(c.vocabulary) + 1
            if centre is not None and scale is not None and ((centre[j : j + width] != 0.0) | (scale[j : j + width] != 1.0)).any():
                onehot = np.zeros((width, n), dtype=np.float64)
                onehot[pos[inverse.reshape(-1)], np.arange(n)] = 1.0
                for k in range(width):
                    put(j + k, onehot[k])
            else:
                out[j : j + width] = 0.0
                out[j + pos[inverse.reshape(-1)], np.arange(n)] = 1.0
            j += width

    def encode(self, raw: RawFlows, normaliser: Normaliser) -> FlowDataset:
        """Encode and normalise ``raw`` into a :class:`FlowDataset`."""
        x = normaliser.apply(self.transform(raw))
        return FlowDataset(
            features=x,
            labels=self.label_indices(raw.families),
            classes=self.classes,
            schema_id=self.schema_id,
            feature_names=self.feature_names,
        )


# -- federated normalisation ----------------------------------------------------


@dataclass(frozen=True)
class LocalStats:
    """What one party reveals to fix normalisation: count, per-feature sum and sum of squares.

    Computed over the *transformed, unnormalised* features (see
    :meth:`FeatureSchema.transform`), never over another party's rows.
    """

    schema_id: str
    count: int
    sum: np.ndarray
    sum_sq: np.ndarray

    @classmethod
    def of(cls, schema: FeatureSchema, transformed: np.ndarray) -> LocalStats:
        x = np.asarray(transformed, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != schema.dim:
            raise SchemaError(
                f"stats for schema {schema.schema_id} need (n, {schema.dim}) features, got {x.shape}"
            )
        return cls(schema.schema_id, int(x.shape[0]), x.sum(axis=0), np.square(x).sum(axis=0))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_id": self.schema_id, "count": self.count,
                "sum": self.sum.tolist(), "sum_sq": self.sum_sq.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LocalStats:
        try:
            s = np.asarray(d["sum"], dtype=np.float64)
            q = np.asarray(d["sum_sq"], dtype=np.float64)
            count = int(d["count"])
            schema_id = str(d["schema_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed statistics record: {exc}") from None
        if s.shape != q.shape or s.ndim != 1 or count < 0:
            raise SchemaError("malformed statistics record: sum/sum_sq shapes or count")
        if not (np.isfinite(s).all() and np.isfinite(q).all()) or (q < 0).any():
            raise SchemaError("malformed statistics record: non-finite or negative sums")
        return cls(schema_id, count, s, q)


def merge(stats: Iterable[LocalStats]) -> LocalStats:
    """Sum several parties' statistics, in the order given (callers fix the order,
    e.g. by participant address, so every node gets the same float64 sums)."""
    items = list(stats)
    if not items:
        raise SchemaError("merge needs at least one party's statistics")
    first = items[0]
    total_sum = first.sum.astype(np.float64).copy()
    total_sq = first.sum_sq.astype(np.float64).copy()
    count = first.count
    for s in items[1:]:
        if s.schema_id != first.schema_id or s.sum.shape != first.sum.shape:
            raise SchemaError(
                f"cannot merge statistics of {s.schema_id} {s.sum.shape} "
                f"with {first.schema_id} {first.sum.shape}"
            )
        total_sum += s.sum
        total_sq += s.sum_sq
        count += s.count
    return LocalStats(first.schema_id, count, total_sum, total_sq)


@dataclass(frozen=True)
class Normaliser:
    """Per-column ``(x - centre) / scale`` for the encoded feature vector.

    Only numeric columns are scaled; indicator and one-hot columns keep 0/1.
    """

    schema_id: str
    centre: np.ndarray
    scale: np.ndarray

    MIN_SCALE = 1e-6  # a constant column must not blow up into inf

    @classmethod
    def from_stats(cls, schema: FeatureSchema, stats: LocalStats) -> Normaliser:
        """Centre/scale from merged federated statistics (schema constants where fixed)."""
        if stats.schema_id != schema.schema_id or stats.sum.shape != (schema.dim,):
            raise SchemaError(
                f"statistics for {stats.schema_id} {stats.sum.shape} do not fit schema "
                f"{schema.schema_id} ({schema.dim} features)"
            )
        if stats.count < 2:
            raise SchemaError(
                f"normalisation needs statistics over at least 2 rows, got {stats.count}",
                hint="merge the statistics of all parties before building the normaliser",
            )
        mean = stats.sum / stats.count
        # E[x²]-E[x]² can dip below 0 by rounding; the clamp keeps sqrt real.
        var = np.maximum(stats.sum_sq / stats.count - np.square(mean), 0.0)
        return cls._build(schema, mean, np.sqrt(var))

    @classmethod
    def fixed(cls, schema: FeatureSchema) -> Normaliser:
        """The normaliser a schema fixes by itself; every numeric column must be pinned."""
        loose = [f.name for f in schema.numeric if f.fixed is None]
        if loose:
            raise SchemaError(
                f"schema {schema.schema_id} does not fix normalisation of {', '.join(loose)}",
                hint="build the normaliser from merged federated statistics instead",
            )
        return cls._build(schema, np.zeros(schema.dim), np.ones(schema.dim))

    @classmethod
    def _build(cls, schema: FeatureSchema, mean: np.ndarray, std: np.ndarray) -> Normaliser:
        centre = np.zeros(schema.dim, dtype=np.float64)
        scale = np.ones(schema.dim, dtype=np.float64)
        for i, f in enumerate(schema.numeric):
            if f.fixed is not None:
                centre[i], scale[i] = f.fixed
            else:
                centre[i], scale[i] = mean[i], std[i]
        scale = np.where(scale < cls.MIN_SCALE, 1.0, scale)
        return cls(schema.schema_id, centre, scale)

    def apply(self, transformed: np.ndarray) -> np.ndarray:
        x = np.asarray(transformed, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.centre.shape[0]:
            raise SchemaError(
                f"normaliser for {self.schema_id} expects (n, {self.centre.shape[0]}), got {x.shape}"
            )
        return ((x - self.centre) / self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        # repr of a Python float round-trips exactly, so JSON keeps every bit.
        return {"schema_id": self.schema_id, "centre": self.centre.tolist(),
                "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normaliser:
        try:
            centre = np.asarray(d["centre"], dtype=np.float64)
            scale = np.asarray(d["scale"], dtype=np.float64)
            schema_id = str(d["schema_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed normaliser record: {exc}") from None
        if centre.shape != scale.shape or centre.ndim != 1:
            raise SchemaError("malformed normaliser record: centre/scale shapes differ")
        if not (np.isfinite(centre).all() and np.isfinite(scale).all()) or (scale <= 0).any():
            raise SchemaError("malformed normaliser record: non-finite centre or non-positive scale")
        return cls(schema_id, centre, scale)
