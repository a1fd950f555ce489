"""Reading delimited flow files row by row, with exact blame for every bad row.

Why not numpy.loadtxt or pandas: neither can tell the user *which line* of a
200 MB export is broken, nor skip-and-count bad rows under an explicit option;
the csv module plus a typed array per column keeps memory at 8 bytes a value.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from flows.errors import DataError, MalformedRow
from flows.schema import NumericFeature, RawFlows
from flows.taxonomy import UNKNOWN, family_of

BadRowPolicy = Literal["error", "skip"]
LabelPolicy = Literal["error", "unknown", "skip"]

MAX_REASONS = 10  # how many skipped-row reasons a report keeps verbatim

#: The names a loader gives a flow's endpoint columns in ``RawFlows.extras`` when the
#: file has them (NSL-KDD has none, the CICIDS2017 MachineLearningCVE files only the
#: destination port; the GeneratedLabelledFlows files and UNSW-NB15's partitioned
#: files have addresses and ports).
ENDPOINT_FIELDS: tuple[str, ...] = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol")


@dataclass
class LoadReport:
    """What loading one or more files did: rows kept, rows skipped and why."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    blank: int = 0  # empty lines and all-empty rows (CICIDS2017 has many); not data
    reasons: list[str] = field(default_factory=list)
    unknown_labels: Counter[str] = field(default_factory=Counter)

    def note_skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    def merge(self, other: LoadReport) -> LoadReport:
        reasons = (self.reasons + other.reasons)[:MAX_REASONS]
        return LoadReport(self.files + other.files, self.rows + other.rows,
                          self.skipped + other.skipped, self.blank + other.blank,
                          reasons, self.unknown_labels + other.unknown_labels)

    def summary(self) -> str:
        s = f"{self.rows} rows from {len(self.files)} file(s)"
        if self.skipped:
            s += f", {self.skipped} bad rows skipped (first: {self.reasons[0]})"
        if self.unknown_labels:
            s += ", unknown labels: " + ", ".join(f"{k!r}×{v}" for k, v in
                                                  sorted(self.unknown_labels.items()))
        return s


@dataclass(frozen=True)
class ColumnPlan:
    """Where each schema column sits in a file's rows, and how to read its label.

    ``label`` gets the row's cells and returns the attack name as the file spells
    it, raising ValueError (with a reason) for a row whose label cells are bad.
    ``blank_as_zero`` names numeric columns where the producer writes an empty
    cell for "not applicable" (UNSW-NB15's HTTP/FTP counters on other flows).
    ``label_columns`` are the cells ``label`` reads (so a block reader can check each
    distinct combination once); ``extras`` are string columns kept verbatim (stripped)
    under a name of ours, such as the endpoints in :data:`ENDPOINT_FIELDS`.
    """

    source: str
    n_columns: int
    numeric: Sequence[tuple[int, NumericFeature]]
    categorical: Sequence[tuple[int, str]]
    label: Callable[[list[str]], str]
    blank_as_zero: frozenset[str] = frozenset()
    label_columns: tuple[int, ...] = ()
    extras: Sequence[tuple[int, str]] = ()


@dataclass(frozen=True)
class FilePlan:
    """How to read one flow file: its column plan and how many physical lines its header takes."""

    plan: ColumnPlan
    header_lines: int = 0


@contextmanager
def open_rows(path: Path) -> Iterator[Any]:
    """A csv reader over ``path`` (its ``line_num`` is the physical line number).

    Bytes that are not UTF-8 (CICIDS2017's dash in "Web Attack – ...") decode to
    U+FFFD instead of failing the whole file; label lookup ignores punctuation.
    """
    try:
        fh = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"cannot open flow file {path}: {exc.strerror or exc}",
                        hint="check the path and its permissions") from None
    with fh:
        yield csv.reader(fh)


def first_row(path: Path, reader: Any) -> list[str] | None:
    """The first non-blank row (a header, or the row a layout is sniffed from)."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise MalformedRow(path, int(reader.line_num), f"unreadable CSV row: {exc}") from None
        if row and any(c.strip() for c in row):
            return row


def parse_rows(
    path: Path,
    reader: Any,
    plan: ColumnPlan,
    *,
    on_bad_row: BadRowPolicy,
    unknown_labels: LabelPolicy,
    max_rows: int | None = None,
) -> tuple[RawFlows, LoadReport]:
    """Turn the remaining rows of csv ``reader`` into :class:`RawFlows` following ``plan``."""
    if on_bad_row not in ("error", "skip"):
        raise DataError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")
    if unknown_labels not in ("error", "unknown", "skip"):
        raise DataError(f"unknown_labels must be 'error', 'unknown' or 'skip', not {unknown_labels!r}")
    report = LoadReport(files=[str(path)])
    numeric_cols = [i for i, _ in plan.numeric]
    features = [f for _, f in plan.numeric]
    blank_zero = [f.name in plan.blank_as_zero for f in features]
    finite_required = [f.nonfinite == "error" for f in features]
    strict = [j for j, need in enumerate(finite_required) if need]
    # None when every column must be finite: then the whole row is summed. (The first
    # index is repeated so itemgetter always returns a tuple, even for one column.)
    pick_strict = None if len(strict) == len(features) else itemgetter(*strict, *strict[:1])
    families_of: dict[str, str] = {}  # label → family, so each name is looked up once
    values = array("d")
    cats: list[list[str]] = [[] for _ in plan.categorical]
    extras: list[list[str]] = [[] for _ in plan.extras]
    families: list[str] = []
    labels: list[str] = []
    lines = array("q")

    def line_of() -> int:
        return int(reader.line_num)

    def bad(reason: str) -> None:
        if on_bad_row == "error":
            raise MalformedRow(path, line_of(), reason)
        report.note_skip(f"{path}:{line_of()}: {reason}")

    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv size limit
            bad(f"unreadable CSV row: {exc}")
            continue
        if not row or all(not c.strip() for c in row):
            report.blank += 1
            continue
        if len(row) != plan.n_columns:
            bad(f"expected {plan.n_columns} columns, got {len(row)}")
            continue
        # Fast path: one comprehension per row, one sum to spot a non-finite value
        # (an overflowing sum only sends the row down the exact path below).
        try:
            parsed = [float(row[i]) for i in numeric_cols]
            if strict and not math.isfinite(sum(pick_strict(parsed)) if pick_strict else sum(parsed)):
                parsed = None
        except ValueError:
            parsed = None
        if parsed is None:
            parsed, problem = _parse_exactly(row, numeric_cols, features, blank_zero,
                                             finite_required)
            if problem is not None:
                bad(problem)
                continue
        try:
            name = plan.label(row)
        except ValueError as exc:
            bad(str(exc))
            continue
        family = families_of.get(name)
        if family is None:
            policy = "unknown" if unknown_labels != "error" else "error"
            family = family_of(name, plan.source, unknown_labels=policy,
                               where=f"{path}:{line_of()}")
            families_of[name] = family
        if family == UNKNOWN:
            report.unknown_labels[name.strip()] += 1
            if unknown_labels == "skip":
                report.note_skip(f"{path}:{line_of()}: unknown label {name.strip()!r}")
                continue
        values.extend(parsed)
        for k, (col, _) in enumerate(plan.categorical):
            cats[k].append(row[col].strip())
        for k, (col, _) in enumerate(plan.extras):
            extras[k].append(row[col].strip())
        families.append(family)
        labels.append(name.strip())
        lines.append(line_of())
        report.rows += 1
        if max_rows is not None and report.rows >= max_rows:
            break

    n = report.rows
    matrix = np.frombuffer(values, dtype=np.float64).reshape(n, len(features)) if features else \
        np.zeros((n, 0))
    raw = RawFlows(
        numeric={f.name: matrix[:, j].copy() for j, f in enumerate(features)},
        categorical={name: np.asarray(cats[k], dtype=object)
                     for k, (_, name) in enumerate(plan.categorical)},
        families=np.asarray(families, dtype=object),
        source_labels=np.asarray(labels, dtype=object),
        lines=np.frombuffer(lines, dtype=np.int64).copy() if n else np.empty(0, dtype=np.int64),
        extras={name: np.asarray(extras[k], dtype=object) for k, (_, name) in enumerate(plan.extras)},
    )
    return raw, report


def _parse_exactly(
    row: list[str],
    cols: Sequence[int],
    features: Sequence[NumericFeature],
    blank_zero: Sequence[bool],
    finite_required: Sequence[bool],
) -> tuple[list[float], str | None]:
    """Cell by cell: the values, or the first problem named by column and field."""
    parsed: list[float] = []
    for col, f, zero_ok, need_finite in zip(cols, features, blank_zero, finite_required):
        cell = row[col].strip()
        if zero_ok and cell == "":
            parsed.append(0.0)
            continue
        try:
            v = float(cell)
        except ValueError:
            return parsed, f"column {f.name!r} (field {col + 1}) is not a number: {row[col]!r}"
        if need_finite and not math.isfinite(v):
            return parsed, f"column {f.name!r} (field {col + 1}) is {cell!r}, not finite"
        parsed.append(v)
    return parsed, None


def concat_raw(parts: Sequence[RawFlows]) -> RawFlows:
    """One :class:`RawFlows` from several files' worth (same columns)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return RawFlows(
        numeric={k: np.concatenate([p.numeric[k] for p in parts]) for k in first.numeric},
        categorical={k: np.concatenate([p.categorical[k] for p in parts])
                     for k in first.categorical},
        families=np.concatenate([p.families for p in parts]),
        source_labels=np.concatenate([p.source_labels for p in parts]),
        lines=np.concatenate([p.lines for p in parts]),
        # Line numbers restart in each file; extras are kept only when every part has them.
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras
                if all(k in p.extras for p in parts)},
    )


def subset_raw(raw: RawFlows, idx: np.ndarray) -> RawFlows:
    return RawFlows(
        numeric={k: v[idx] for k, v in raw.numeric.items()},
        categorical={k: v[idx] for k, v in raw.categorical.items()},
        families=raw.families[idx],
        source_labels=raw.source_labels[idx] if raw.source_labels.size else raw.source_labels,
        lines=raw.lines[idx] if raw.lines.size else raw.lines,
        extras={k: v[idx] for k, v in raw.extras.items()},
    )


def flow_files(path: Path, pattern: str = "*.csv") -> list[Path]:
    """``path`` itself, or the matching files of a directory in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.glob(pattern) if f.is_file())
        if not files:
            raise DataError(f"no {pattern} files in directory {p}",
                            hint="point at a flow file or a directory holding them")
        return files
    if not p.exists():
        raise DataError(f"flow file {p} does not exist", hint="check the path")
    return [p]


