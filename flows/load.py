"""One call from a data-set name and files to encoded train and test sets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from flows import synthetic
from flows.dataset import FlowDataset
from flows.errors import DataError
from flows.loaders import READERS
from flows.loaders.rows import BadRowPolicy, LabelPolicy, LoadReport, subset_raw
from flows.partition import novel_attack_holdout, stratified_holdout
from flows.schema import FeatureSchema, LocalStats, Normaliser, RawFlows
from flows.taxonomy import is_novel, label_key, novel_names

log = logging.getLogger(__name__)

DATASETS = ("synthetic", "nsl-kdd", "unsw-nb15", "cicids2017")
DEFAULT_SYNTHETIC_RECORDS = 20_000

Normalisation = Literal["federated", "none"]
#: How a test set is cut from a training file: a stratified share of every class, or the
#: novel-attack hold-out (``flows.taxonomy.NOVEL_HOLDOUT``: whole attack names kept out of training).
Holdout = Literal["stratified", "novel"]
HOLDOUTS: tuple[str, ...] = ("stratified", "novel")


@dataclass(frozen=True)
class LoadedSplit:
    """Train and test sets with everything needed to reproduce their encoding."""

    train: FlowDataset
    test: FlowDataset
    schema: FeatureSchema
    normaliser: Normaliser
    train_report: LoadReport
    test_report: LoadReport
    # With the novel-attack hold-out: True for the test rows whose attack name was kept out of training.
    test_novel: np.ndarray | None = None


def schema_for(name: str, *, unknown_labels: LabelPolicy = "error") -> FeatureSchema:
    """The feature schema of data set ``name``."""
    if name == "synthetic":
        return synthetic.SCHEMA
    if name not in READERS:
        raise DataError(f"unknown data set {name!r}", hint=f"known: {', '.join(DATASETS)}")
    schema = READERS[name].SCHEMA
    return schema.with_unknown() if unknown_labels == "unknown" else schema


def read_raw(
    name: str,
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    max_rows: int | None = None,
) -> tuple[RawFlows, LoadReport]:
    """Raw flows of one file (or directory) of data set ``name``, for a party's own use."""
    if name not in READERS:
        raise DataError(f"no file reader for data set {name!r}",
                        hint=f"readers exist for {', '.join(READERS)}")
    return READERS[name].read(Path(path), on_bad_row=on_bad_row,
                              unknown_labels=unknown_labels, max_rows=max_rows)


def load_split(
    name: str,
    train: Path | None,
    test: Path | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    synthetic_records: int = DEFAULT_SYNTHETIC_RECORDS,
    max_rows: int | None = None,
    normaliser: Normaliser | None = None,
    holdout: Holdout = "stratified",
) -> LoadedSplit:
    """Like :func:`load_dataset`, also returning schema, normaliser and load reports.

    Normalisation comes from the schema where it fixes it, otherwise from the
    aggregate statistics (count, sum, sum of squares) of the *training* rows —
    in a simulation these are exactly the merged :class:`LocalStats` of the
    parties the training set is split among; test rows never influence it.
    A party loading only its own rows must pass the federation's ``normaliser``
    (built from everyone's merged statistics) instead.

    ``holdout="novel"`` cuts the test set from ``train`` by
    :func:`flows.partition.novel_attack_holdout`: every row of the attack names
    ``flows.taxonomy.NOVEL_HOLDOUT`` lists for the data set, plus a stratified
    ``test_fraction`` of every other name; ``test_novel`` then marks the novel rows.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}", hint=f"known: {', '.join(DATASETS)}")
    if holdout not in HOLDOUTS:
        raise DataError(f"unknown hold-out {holdout!r}", hint=f"use one of {', '.join(HOLDOUTS)}")
    if holdout == "novel":
        novel_names(name)  # a data set without one fails here, before any file is read
        if test is not None:
            raise DataError("the novel-attack hold-out is cut from the training file; it takes no test file",
                            hint="drop --test, or use the stratified hold-out with a test file")
        if test_fraction <= 0.0:
            raise DataError("the novel-attack hold-out needs test_fraction > 0")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction!r}",
                        hint="0 keeps every row for training (no hold-out)")
    schema = schema_for(name, unknown_labels=unknown_labels)
    if name == "synthetic":
        if train is not None or test is not None:
            raise DataError("the synthetic data set is generated, it takes no files",
                            hint="drop --train/--test, or pick a file-based data set")
        raw_all = synthetic.generate_raw(synthetic_records, seed)
        tr_rep = LoadReport(files=["<synthetic>"], rows=len(raw_all))
        te_rep = LoadReport(files=["<synthetic>"])
        raw_tr, raw_te = _holdout(raw_all, schema, test_fraction, seed)
    else:
        if train is None:
            raise DataError(f"data set {name!r} needs a training file (--train)",
                            hint="pass the path of the flow file or of a directory of them")
        raw_tr, tr_rep = read_raw(name, train, on_bad_row=on_bad_row,
                                  unknown_labels=unknown_labels, max_rows=max_rows)
        if test is None:
            if holdout == "novel":
                raw_tr, raw_te = _novel_holdout(raw_tr, name, test_fraction, seed)
                what = f"novel-attack hold-out of train (+{test_fraction:g} of the known names)"
            else:
                raw_tr, raw_te = _holdout(raw_tr, schema, test_fraction, seed)
                what = f"{test_fraction:g} stratified hold-out of train"
            te_rep = LoadReport(files=[f"<{what}>"], rows=len(raw_te))
            tr_rep = LoadReport(tr_rep.files, len(raw_tr), tr_rep.skipped, tr_rep.blank,
                                tr_rep.reasons, tr_rep.unknown_labels)
        else:
            raw_te, te_rep = read_raw(name, test, on_bad_row=on_bad_row,
                                      unknown_labels=unknown_labels, max_rows=max_rows)
    x_tr = schema.transform(raw_tr)
    if normaliser is None:
        if len(raw_tr) < 2:
            raise DataError(f"{name}: only {len(raw_tr)} usable training rows",
                            hint="check the file; with on_bad_row='skip' see the load report")
        normaliser = Normaliser.from_stats(schema, LocalStats.of(schema, x_tr))
    elif normaliser.schema_id != schema.schema_id or normaliser.centre.shape != (schema.dim,):
        raise DataError(
            f"normaliser for {normaliser.schema_id} ({normaliser.centre.shape[0]} features) "
            f"does not fit {schema.schema_id} ({schema.dim} features)",
            hint="use the normaliser the federation published for this data format",
        )
    train_ds = _dataset(schema, raw_tr, normaliser.apply(x_tr))
    test_ds = _dataset(schema, raw_te, normaliser.apply(schema.transform(raw_te)))
    for what, rep in (("train", tr_rep), ("test", te_rep)):
        if rep.skipped or rep.unknown_labels:
            log.warning("%s %s: %s", name, what, rep.summary())
    novel = is_novel(raw_te.source_labels, name) if holdout == "novel" else None
    return LoadedSplit(train_ds, test_ds, schema, normaliser, tr_rep, te_rep, novel)


def load_dataset(
    name: str,
    train: Path | None,
    test: Path | None = None,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    synthetic_records: int = DEFAULT_SYNTHETIC_RECORDS,
    max_rows: int | None = None,
    normaliser: Normaliser | None = None,
    holdout: Holdout = "stratified",
) -> tuple[FlowDataset, FlowDataset]:
    """Encoded ``(train, test)`` of data set ``name`` (synthetic, nsl-kdd, unsw-nb15,
    cicids2017). Without ``test``, a stratified ``test_fraction`` of ``train`` is held
    out (seeded; ``test_fraction=0`` gives an empty test set). Both use the same
    schema and the same normalisation (``normaliser``, or one from the training
    rows' statistics). Skipped rows are logged; :func:`load_split` returns the reports."""
    s = load_split(name, train, test, seed=seed, test_fraction=test_fraction,
                   on_bad_row=on_bad_row, unknown_labels=unknown_labels,
                   synthetic_records=synthetic_records, max_rows=max_rows,
                   normaliser=normaliser, holdout=holdout)
    return s.train, s.test


def local_stats(
    name: str,
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
) -> tuple[LocalStats, LoadReport]:
    """What one party shares so the federation can fix normalisation: the count, sums
    and sums of squares of its own encoded rows (never the rows)."""
    raw, report = read_raw(name, path, on_bad_row=on_bad_row, unknown_labels=unknown_labels)
    schema = schema_for(name, unknown_labels=unknown_labels)
    return LocalStats.of(schema, schema.transform(raw)), report


def _holdout(raw: RawFlows, schema: FeatureSchema, fraction: float,
             seed: int) -> tuple[RawFlows, RawFlows]:
    if fraction == 0.0:
        return raw, subset_raw(raw, np.empty(0, dtype=np.int64))
    labels = schema.label_indices(raw.families)
    tr, te = stratified_holdout(labels, fraction, seed)
    return subset_raw(raw, tr), subset_raw(raw, te)


def _novel_holdout(raw: RawFlows, source: str, fraction: float, seed: int) -> tuple[RawFlows, RawFlows]:
    keys = [label_key(str(n)) for n in raw.source_labels]
    codes = {k: i for i, k in enumerate(sorted(set(keys)))}  # one stratum per attack name
    strata = np.fromiter((codes[k] for k in keys), dtype=np.int64, count=len(keys))
    tr, te = novel_attack_holdout(strata, is_novel(raw.source_labels, source), fraction, seed)
    return subset_raw(raw, tr), subset_raw(raw, te)


def _dataset(schema: FeatureSchema, raw: RawFlows, x: np.ndarray) -> FlowDataset:
    return FlowDataset(features=x, labels=schema.label_indices(raw.families),
                       classes=schema.classes, schema_id=schema.schema_id,
                       feature_names=schema.feature_names)
