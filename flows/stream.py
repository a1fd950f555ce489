"""Reading a flow file in one pass, chunk by chunk, in bounded memory.

The loaders (``flows.loaders``) read a whole file into memory, which is right for
training on a member's own flows and wrong for scoring a day of a busy network.
:func:`iter_chunks` reads the same formats a block of bytes at a time (cut at a line
end) and yields each block's rows as :class:`~flows.schema.RawFlows`, with their line
numbers and, where the format has them, their endpoints.

Each block is parsed twice at most: first by pyarrow's CSV reader (fast, typed), and
if anything in the block is not plainly well formed — a wrong field count, a cell that
is not a number, a non-finite value where the schema forbids one, an unknown or
malformed label, bytes that are not UTF-8 — the block is parsed again by the loaders'
own row parser (:func:`flows.loaders.rows.parse_rows`), which names the line or skips
and counts it exactly as loading the whole file would. So the values and the errors
are the loaders', and only clean blocks take the fast path.

Memory is bounded by the block size: one block and its parsed columns, plus one line
of at most ``max_line_bytes`` carried over to the next block. A longer line is a bad
row (an error, or skipped and counted with ``on_bad_row="skip"``). A quoted field that
spans lines is not supported (no flow format writes one): it is reported as a bad row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from flows.errors import DataError, MalformedRow
from flows.loaders import READERS
from flows.loaders.rows import (
    MAX_REASONS,
    BadRowPolicy,
    ColumnPlan,
    LabelPolicy,
    LoadReport,
    first_row,
    open_rows,
    parse_rows,
)
from flows.schema import CodedColumn, RawFlows
from flows.taxonomy import UNKNOWN, family_of

DEFAULT_BLOCK_BYTES = 2 << 20
MAX_LINE_BYTES = 1 << 20


class SchemaMismatch(DataError):
    """A flow file in another data set's layout than the one asked for."""


@dataclass(frozen=True)
class Chunk:
    """The rows of one block of a flow file, and how many bytes of the file it covered."""

    raw: RawFlows
    file: Path
    bytes_read: int


def sniff_format(path: Path) -> str | None:
    """Which public layout a flow file looks like, from its first non-blank line
    (``nsl-kdd``, ``unsw-nb15`` or ``cicids2017``); None when it looks like none of them."""
    try:
        with open_rows(path) as reader:
            first = first_row(path, reader)
    except (MalformedRow, OSError):
        return None
    if first is None:
        return None
    cells = {c.strip().lower() for c in first}
    if "label" in cells and "destination port" in cells:
        return "cicids2017"
    if "attack_cat" in cells or len(first) == 49:
        return "unsw-nb15"
    if len(first) in (42, 43) and first[1].strip() in ("tcp", "udp", "icmp"):
        return "nsl-kdd"
    return None


def check_format(path: Path, expected: str) -> None:
    """Raise :class:`SchemaMismatch` when ``path`` (or any file of a directory) looks like another layout."""
    for f in _reader(expected).files(Path(path)):
        found = sniff_format(f)
        if found is not None and found != expected:
            raise SchemaMismatch(
                f"{f} looks like a {found} file, but a {expected} file is needed here",
                hint=f"score flows in the federation's own schema ({expected}); a model trained on one schema cannot read another",
            )


def iter_chunks(
    name: str,
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    endpoints: bool = True,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
    report: LoadReport | None = None,
) -> Iterator[Chunk]:
    """The rows of data set ``name``'s file (or directory of files) ``path``, one block at a time.

    ``report``, when given, is updated in place as blocks are read (rows, skipped, blank,
    reasons, unknown labels), so a caller can show it while the pass goes on.
    """
    if on_bad_row not in ("error", "skip"):
        raise DataError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")
    if block_bytes < 1024 or max_line_bytes < 1024:
        raise DataError("block_bytes and max_line_bytes must be at least 1 KiB")
    module = _reader(name)
    report = report if report is not None else LoadReport()
    for f in module.files(Path(path)):
        report.files.append(str(f))
        _check_first_line(f, max_line_bytes)  # the loader's plan reads the first line whole
        fp = module.plan(f, endpoints=endpoints)
        if fp is None:
            continue
        yield from _file_chunks(f, fp.plan, fp.header_lines, on_bad_row, unknown_labels, block_bytes,
                                max_line_bytes, report)


def _check_first_line(path: Path, max_line_bytes: int) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(max_line_bytes + 1)
    except OSError as exc:
        raise DataError(f"cannot open flow file {path}: {exc.strerror or exc}", hint="check the path and its permissions") from None
    if len(head) > max_line_bytes and b"\n" not in head:
        raise MalformedRow(path, 1, f"line longer than {max_line_bytes:,} bytes")


def _reader(name: str) -> ModuleType:
    if name not in READERS:
        raise DataError(f"no file reader for data set {name!r}", hint=f"readers exist for {', '.join(READERS)}")
    return READERS[name]


def _file_chunks(
    path: Path, plan: ColumnPlan, header_lines: int, on_bad_row: BadRowPolicy, unknown_labels: LabelPolicy,
    block_bytes: int, max_line_bytes: int, report: LoadReport,
) -> Iterator[Chunk]:  # fmt: skip
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"cannot open flow file {path}: {exc.strerror or exc}", hint="check the path and its permissions") from None
    with fh:
        consumed = 0
        for _ in range(header_lines):  # the loader has read the header already; its lines are bounded by csv
            consumed += len(fh.readline())
        line = header_lines + 1  # physical line number of the next byte
        pending = b""
        discarding = False  # inside a line over the limit, dropping bytes up to its end
        while True:
            data = fh.read(block_bytes)
            consumed += len(data)
            if discarding:
                end = data.find(b"\n")
                if end < 0 and data:
                    continue
                data, discarding = (data[end + 1 :] if end >= 0 else b""), False
                line += 1
            buf = pending + data if pending else data
            if data:
                cut = buf.rfind(b"\n")
                if cut < 0:
                    if len(buf) > max_line_bytes:
                        _bad(path, line, f"line longer than {max_line_bytes:,} bytes", on_bad_row, report)
                        pending, discarding = b"", True
                    else:
                        pending = buf
                    continue
                block, pending = buf[: cut + 1], buf[cut + 1 :]
            else:
                block, pending = buf, b""
            if block:
                raw = _parse_block(path, block, line, plan, on_bad_row, unknown_labels, report)
                line += block.count(b"\n")
                yield Chunk(raw, path, consumed)
                consumed = 0
            if len(pending) > max_line_bytes:  # the unfinished line after the block is already too long
                _bad(path, line, f"line longer than {max_line_bytes:,} bytes", on_bad_row, report)
                pending, discarding = b"", True
            if not data:
                break


def _bad(path: Path, line: int, reason: str, on_bad_row: BadRowPolicy, report: LoadReport) -> None:
    if on_bad_row == "error":
        raise MalformedRow(path, line, reason)
    report.note_skip(f"{path}:{line}: {reason}")


def _parse_block(
    path: Path, block: bytes, first_line: int, plan: ColumnPlan, on_bad_row: BadRowPolicy,
    unknown_labels: LabelPolicy, report: LoadReport,
) -> RawFlows:  # fmt: skip
    fast = _fast_block(block, first_line, plan, unknown_labels, report)
    if fast is not None:
        return fast
    text = block.decode("utf-8", errors="replace")  # as open_rows decodes: U+FFFD for bytes that are not UTF-8
    reader = _OffsetReader(csv.reader(io.StringIO(text, newline="")), first_line - 1)
    raw, rep = parse_rows(path, reader, plan, on_bad_row=on_bad_row, unknown_labels=unknown_labels)
    report.rows += rep.rows
    report.skipped += rep.skipped
    report.blank += rep.blank
    report.reasons.extend(rep.reasons[: max(0, MAX_REASONS - len(report.reasons))])
    report.unknown_labels.update(rep.unknown_labels)
    return raw


class _OffsetReader:
    """A csv reader over a block whose ``line_num`` counts from the block's first line in the file."""

    def __init__(self, reader: Any, offset: int) -> None:
        self._reader = reader
        self._offset = offset

    def __iter__(self) -> _OffsetReader:
        return self

    def __next__(self) -> list[str]:
        return next(self._reader)

    @property
    def line_num(self) -> int:
        return self._offset + int(self._reader.line_num)


# -- the fast path -----------------------------------------------------------------------


def _fast_block(block: bytes, first_line: int, plan: ColumnPlan, unknown_labels: LabelPolicy,
                report: LoadReport) -> RawFlows | None:
    """The block's rows parsed by pyarrow, or None if anything in it needs the exact row parser."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(plan.n_columns)]
    numeric_idx = [i for i, _ in plan.numeric]
    string_idx = sorted({i for i, _ in plan.categorical} | set(plan.label_columns) | {i for i, _ in plan.extras})
    if not plan.label_columns:
        return None  # the label reader's cells are unknown: only the row parser can run it
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={**{names[i]: pa.float64() for i in numeric_idx},
                              **{names[i]: pa.dictionary(pa.int32(), pa.string()) for i in string_idx}},
                include_columns=[names[i] for i in sorted(set(numeric_idx) | set(string_idx))],
                null_values=["", " "], strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=True,
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    lines, n_physical = _data_lines(block, first_line)
    n = table.num_rows
    if n != len(lines):
        return None  # blank-looking lines the two parsers count differently: let the row parser decide
    numeric: dict[str, np.ndarray] = {}
    for i, feature in plan.numeric:
        col = table.column(names[i])
        if col.null_count:
            if feature.name not in plan.blank_as_zero:
                return None
            col = col.fill_null(0.0)
        x = col.to_numpy()
        if feature.nonfinite == "error" and not np.isfinite(x).all():
            return None
        numeric[feature.name] = x
    strings = {i: _stripped(table.column(names[i])) for i in string_idx}
    labelled = _labels(plan, strings, n, unknown_labels)
    if labelled is None:
        return None
    families, labels, unknown = labelled
    report.rows += n
    report.blank += n_physical - n
    report.unknown_labels.update(unknown)
    return RawFlows(
        numeric=numeric,
        categorical={name: CodedColumn(*strings[i]) for i, name in plan.categorical},
        families=families,
        source_labels=labels,
        lines=lines,
        extras={name: CodedColumn(*strings[i]) for i, name in plan.extras},
    )


def _stripped(col: Any) -> tuple[np.ndarray, np.ndarray]:
    """A string column as (distinct stripped values as an object array, index of each row's value)."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.unify_dictionaries().combine_chunks() if col.num_chunks > 1 else col.chunk(0)
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    values = np.asarray([s.strip() for s in col.dictionary.to_pylist()] or [""], dtype=object)
    return values, col.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _labels(plan: ColumnPlan, strings: dict[int, tuple[np.ndarray, np.ndarray]], n: int,
            unknown_labels: LabelPolicy) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
    """Each row's family and label, checking every distinct combination of label cells once
    with the loader's own label reader; None when a combination is bad or unknown under the policy."""
    key = np.zeros(n, dtype=np.int64)
    for i in plan.label_columns:
        values, idx = strings[i]
        key = key * len(values) + idx
    combos, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    names, fams = [], []
    for row_no in first:
        row = [""] * plan.n_columns
        for i in plan.label_columns:
            values, idx = strings[i]
            row[i] = values[idx[row_no]]
        try:
            name = plan.label(row).strip()
        except ValueError:
            return None
        family = family_of(name, plan.source, unknown_labels="unknown")
        if family == UNKNOWN and unknown_labels != "unknown":
            return None  # the row parser raises naming the line, or skips and counts the row
        names.append(name)
        fams.append(family)
    counts = np.bincount(inverse.reshape(-1), minlength=len(combos))
    unknown: dict[str, int] = {}
    for name, fam, c in zip(names, fams, counts):
        if fam == UNKNOWN:
            unknown[name] = unknown.get(name, 0) + int(c)
    inverse = inverse.reshape(-1)
    return np.asarray(fams, dtype=object)[inverse], np.asarray(names, dtype=object)[inverse], unknown


def _data_lines(block: bytes, first_line: int) -> tuple[np.ndarray, int]:
    """The physical line number of every non-empty line of ``block`` (which ends at a line end,
    or at EOF), and how many lines the block has."""
    arr = np.frombuffer(block, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [arr.size]))
    if block.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    length = ends - starts
    has_cr = np.zeros(length.size, dtype=bool)
    nonzero = length > 0
    has_cr[nonzero] = arr[ends[nonzero] - 1] == 13
    length = length - has_cr
    return (first_line + np.flatnonzero(length > 0)).astype(np.int64), int(length.size)
