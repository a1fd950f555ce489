"""An organisation's flow files: flow sets read with an error that says what they are not,
and raw exports (NSL-KDD, UNSW-NB15, CICIDS2017) encoded with the federation's normaliser.

A flow set (docs/data.md) is the encoded form every member can train on directly: one
canonical tensor file holding ``features`` and ``labels`` with the schema in its metadata.
Raw files are encoded with the normaliser fixed for the whole federation (in its
descriptor, or merged from every member's statistics), never with one fitted on this
member's own rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from federation.descriptor import Descriptor, InvalidDescriptor
from federation.flowset import FLOWSET_FORMAT, check_fits, flowset_bytes, load_flowset
from flows import (
    DataError,
    FlowDataset,
    LoadReport,
    LocalStats,
    Normaliser,
    load_split,
    merge,
    schema_for,
)

RAW_FORMATS = ("nsl-kdd", "unsw-nb15", "cicids2017")
DATA_FORMATS = ("flowset", "synthetic", *RAW_FORMATS)
_CONVERT_HINT = (
    "for a raw export pass --data-format nsl-kdd, unsw-nb15 or cicids2017, "
    "or turn it into a flow set once with `fedledger flows convert`"
)


class NotAFlowSet(DataError):
    """A file given as a flow set that is not one."""


class NoNormaliser(DataError):
    """A raw flow file with no federation normaliser to encode it."""


def read_flowset_file(path: Path, descriptor: Descriptor | None = None) -> FlowDataset:
    """The flow set in ``path`` (checked against the federation's model when ``descriptor`` is given)."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read flow file {path}: {exc.strerror}") from None
    try:
        data = load_flowset(blob)
    except InvalidDescriptor as exc:
        raise NotAFlowSet(
            f"{path} is not a flow set (expected a {FLOWSET_FORMAT} tensor file; {_reason(exc)})", hint=_CONVERT_HINT
        ) from None
    if descriptor is not None:
        try:
            check_fits(data, descriptor.spec)
        except InvalidDescriptor as exc:
            raise DataError(f"{path}: {exc}", hint="convert the raw flows with this federation's descriptor") from None
    return data


def _reason(exc: InvalidDescriptor) -> str:
    text = str(exc).removeprefix("flow set: ")
    return "its metadata names no flow set" if text == "the file is not a fedledger flow set" else text


def normaliser_from_descriptor(descriptor: Descriptor, data_format: str) -> Normaliser:
    """The normaliser the federation fixed for raw files."""
    if descriptor.normaliser is None:
        raise NoNormaliser(
            f"this federation fixed no normalisation for raw {data_format} files",
            hint="its admin deploys with --stats from every member (`fedledger participant stats`), or members use flow sets",
        )
    return Normaliser.from_dict(descriptor.normaliser)


def normaliser_from_stats(files: list[Path], data_format: str) -> Normaliser:
    """The normaliser merged from every member's statistics file, in the order given."""
    try:
        stats = [LocalStats.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in files]
    except OSError as exc:
        raise DataError(f"cannot read statistics file {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise DataError(f"a statistics file is not valid JSON: {exc}", hint="pass files `fedledger participant stats` wrote") from None
    return Normaliser.from_stats(schema_for(data_format), merge(stats))


def encode_raw(path: Path, data_format: str, normaliser: Normaliser, *, skip_bad_rows: bool = False) -> tuple[FlowDataset, LoadReport]:
    """Every row of a raw export, encoded with ``normaliser``; the report counts skipped rows."""
    if data_format not in RAW_FORMATS:
        raise DataError(f"unknown raw data format {data_format!r}", hint=f"use one of {', '.join(RAW_FORMATS)}")
    split = load_split(
        data_format, path, None, test_fraction=0.0, normaliser=normaliser, on_bad_row="skip" if skip_bad_rows else "error"
    )
    return split.train, split.train_report


def write_flowset(data: FlowDataset, out: Path) -> None:
    """Write ``data`` as a flow set, atomically (a failed write leaves no half file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent if str(out.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(flowset_bytes(data))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_local_flows(path: Path, data_format: str, descriptor: Descriptor) -> FlowDataset:
    """An organisation's flows in the federation's encoding: a flow set, or a raw export encoded with its normaliser."""
    if data_format == "flowset" or path.suffix == ".flowset":
        return read_flowset_file(path, descriptor)
    if data_format not in DATA_FORMATS:
        raise DataError(f"unknown data format {data_format!r}", hint=f"use one of {', '.join(DATA_FORMATS)}")
    if data_format == "synthetic":
        raise DataError("synthetic flows have no file format of their own", hint="write them as a flow set")
    data, _ = encode_raw(path, data_format, normaliser_from_descriptor(descriptor, data_format))
    return data
