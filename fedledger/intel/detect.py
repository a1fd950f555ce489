"""Scoring flows with a verified global model in one streaming pass, writing alerts.

A pass reads its input in chunks (:func:`file_batches` for raw flow files, cut into
blocks of bytes; :func:`dataset_batches` for encoded flows already in memory or in a
flow set), encodes each chunk with the federation's schema and normaliser, scores it
(:class:`~fedledger.intel.scoring.Scorer`) and appends its alerts to the output. Reading
and encoding the next chunk runs in a helper thread while the current one is scored and
written, so memory holds at most a few chunks whatever the file's size.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from federation.descriptor import Descriptor
from fedledger.config import ConfigError
from fedledger.intel.alerts import format_lines, utc_stamp
from fedledger.intel.provenance import VerifiedModel
from fedledger.intel.scoring import Scorer
from flows import (
    FeatureSchema,
    FlowDataset,
    LoadReport,
    Normaliser,
    SchemaError,
    schema_for,
)
from flows.loaders.rows import BadRowPolicy
from flows.stream import DEFAULT_BLOCK_BYTES, check_format, iter_chunks

FILE_FORMATS = ("nsl-kdd", "unsw-nb15", "cicids2017")
DEFAULT_BATCH_ROWS = 32768


@dataclass(frozen=True)
class FlowBatch:
    """Encoded flows ready to score, and what names each of them in an alert."""

    features: np.ndarray  # float32 (n, d), encoded and normalised
    rows: np.ndarray  # int64: line in its file, or 1-based row
    file: str | None = None
    endpoints: Mapping[str, np.ndarray] = field(default_factory=dict)
    bytes_read: int = 0  # of the input, for progress


@dataclass
class DetectSummary:
    flows: int = 0
    alerts: int = 0
    by_family: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    report: LoadReport | None = None

    def to_dict(self) -> dict:
        out = {"flows": self.flows, "alerts": self.alerts, "by_family": dict(sorted(self.by_family.items())),
               "seconds": round(self.seconds, 3)}  # fmt: skip
        if self.report is not None:
            out.update(skipped_rows=self.report.skipped, blank_rows=self.report.blank,
                       unknown_labels=dict(self.report.unknown_labels))  # fmt: skip
        return out


def federation_format(desc: Descriptor) -> str | None:
    """The raw file format of the federation's schema (None when it has none, e.g. synthetic flows)."""
    base = desc.spec.schema_id.split("+", 1)[0].split("/", 1)[0]
    return base if base in FILE_FORMATS else None


def federation_encoding(desc: Descriptor, data_format: str) -> tuple[FeatureSchema, Normaliser]:
    """The schema and normaliser that turn ``data_format`` rows into the federation model's input."""
    expected = federation_format(desc)
    if data_format != expected:
        raise ConfigError(
            f"this federation's model reads {desc.spec.schema_id} flows, not {data_format}"
            if expected else f"this federation's model reads {desc.spec.schema_id} flows, which have no raw file format",
            hint=f"score {expected} files" if expected else "score a flow set in the federation's schema (--data-format flowset)",
        )
    schema = schema_for(data_format, unknown_labels="unknown" if desc.spec.schema_id.endswith("+unknown") else "error")
    if schema.schema_id != desc.spec.schema_id or schema.dim != desc.spec.input_dim:
        raise ConfigError(f"the model spec ({desc.spec.schema_id}, {desc.spec.input_dim} features) does not fit "
                          f"this build's {schema.schema_id} schema ({schema.dim} features)")  # fmt: skip
    if desc.normaliser is not None:
        normaliser = Normaliser.from_dict(desc.normaliser)
    else:
        try:
            normaliser = Normaliser.fixed(schema)
        except SchemaError:
            raise ConfigError(
                f"this federation fixed no normalisation for raw {data_format} files",
                hint="its admin deploys with --stats from every member, or members score flow sets",
            ) from None
    if normaliser.schema_id != schema.schema_id or normaliser.centre.shape != (schema.dim,):
        raise ConfigError(f"the federation's normaliser is for {normaliser.schema_id}, not {schema.schema_id}")
    return schema, normaliser


def file_batches(
    paths: Iterable[Path],
    data_format: str,
    schema: FeatureSchema,
    normaliser: Normaliser,
    *,
    on_bad_row: BadRowPolicy = "error",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    report: LoadReport | None = None,
) -> Iterator[FlowBatch]:
    """Raw flow files (or directories of them) as encoded batches, one block of bytes at a time.

    Labels in the files are not needed and not checked against the taxonomy (a live
    CICFlowMeter export writes a placeholder); malformed rows are errors, or skipped and
    counted in ``report`` with ``on_bad_row="skip"``, as the loaders treat them.
    """
    paths = list(paths)
    for p in paths:
        check_format(p, data_format)
    for p in paths:
        for chunk in iter_chunks(data_format, p, on_bad_row=on_bad_row, unknown_labels="unknown", endpoints=True,
                                 block_bytes=block_bytes, report=report):  # fmt: skip
            yield FlowBatch(schema.features(chunk.raw, normaliser), chunk.raw.lines, chunk.file.name,
                            chunk.raw.extras, chunk.bytes_read)  # fmt: skip


def dataset_batches(
    data: FlowDataset,
    *,
    endpoints: Mapping[str, np.ndarray] | None = None,
    file: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[FlowBatch]:
    """Encoded flows (a flow set, or the demo's test set) as batches; rows are numbered from 1."""
    for start in range(0, len(data), batch_rows):
        stop = min(start + batch_rows, len(data))
        sl = slice(start, stop)
        yield FlowBatch(
            data.features[sl], np.arange(start + 1, stop + 1, dtype=np.int64), file,
            {k: np.asarray(v)[sl] for k, v in (endpoints or {}).items()}, (stop - start) * data.features.shape[1] * 4,
        )  # fmt: skip


def detect(
    batches: Iterable[FlowBatch],
    model: VerifiedModel,
    out: TextIO,
    *,
    include_normal: bool = False,
    on_batch: Callable[[DetectSummary, FlowBatch], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    prefetch: int = 2,
) -> DetectSummary:
    """Score every batch and write one alert line per flow not predicted normal (every flow with ``include_normal``)."""
    scorer = Scorer(model.spec, model.weights)
    summary = DetectSummary()
    t0 = time.perf_counter()
    # One BLAS thread: the reader thread keeps the other core busy, and a multi-threaded BLAS
    # spinning for a core the reader (or another process) holds runs several times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        _score_all(_prefetched(batches, prefetch), scorer, model, out, summary, include_normal, on_batch, clock)
    summary.seconds = time.perf_counter() - t0
    return summary


def _score_all(batches: Iterable[FlowBatch], scorer: Scorer, model: VerifiedModel, out: TextIO, summary: DetectSummary,
               include_normal: bool, on_batch: Callable[[DetectSummary, FlowBatch], None] | None,
               clock: Callable[[], datetime]) -> None:  # fmt: skip
    classes = model.spec.classes
    prov = model.provenance
    for batch in batches:
        if batch.features.shape[1] != model.spec.input_dim:
            raise ConfigError(f"flows have {batch.features.shape[1]} features, the model reads {model.spec.input_dim}")
        pred, conf = scorer(batch.features)
        keep = np.ones(len(pred), dtype=bool) if include_normal else pred != 0
        idx = np.flatnonzero(keep)
        out.write(format_lines(
            batch.rows[idx], pred[idx], conf[idx], classes, model=prov.model, round_id=prov.round,
            time=utc_stamp(clock()), file=batch.file, endpoints={k: v[idx] for k, v in batch.endpoints.items()},
        ))  # fmt: skip
        summary.flows += len(pred)
        summary.alerts += int(np.count_nonzero(pred != 0))
        counts = np.bincount(pred, minlength=len(classes))
        summary.by_family.update({classes[i]: int(c) for i, c in enumerate(counts) if c and i != 0})
        if on_batch is not None:
            on_batch(summary, batch)


_T = TypeVar("_T")
_DONE = object()


def _prefetched(items: Iterable[_T], depth: int) -> Iterator[_T]:
    """``items`` produced by a helper thread at most ``depth`` ahead (its exceptions re-raised here)."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)

    worker = threading.Thread(target=produce, name="detect-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)
