"""CICIDS2017 MachineLearningCVE CSVs (CICFlowMeter features, one file per capture day).

Quirks handled here: header names carry leading spaces (" Destination Port");
"Fwd Header Length" appears twice (the second copy is identical and ignored,
also when a pandas re-save renamed it "Fwd Header Length.1"); "Flow Bytes/s" and
"Flow Packets/s" hold "Infinity"/"NaN" for zero-duration flows (kept as 0 plus a
0/1 indicator feature, see :class:`~flows.schema.NumericFeature`);
some files end with thousands of all-empty rows (counted as blank, not data);
the dash in "Web Attack – XSS" is a byte that differs per release. Extra columns
(the GeneratedLabelledFlows files add Flow ID, addresses and a timestamp) are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.errors import DataError
from flows.loaders.rows import (
    BadRowPolicy,
    ColumnPlan,
    FilePlan,
    LabelPolicy,
    LoadReport,
    concat_raw,
    first_row,
    flow_files,
    open_rows,
    parse_rows,
)
from flows.schema import CategoricalFeature, FeatureSchema, NumericFeature, RawFlows
from flows.taxonomy import class_list

#: The numeric columns of the MachineLearningCVE files, in file order (names stripped).
NUMERIC_COLUMNS: tuple[str, ...] = (
    "Flow Duration", "Total Fwd Packets", "Total Backward Packets",
    "Total Length of Fwd Packets", "Total Length of Bwd Packets", "Fwd Packet Length Max",
    "Fwd Packet Length Min", "Fwd Packet Length Mean", "Fwd Packet Length Std",
    "Bwd Packet Length Max", "Bwd Packet Length Min", "Bwd Packet Length Mean",
    "Bwd Packet Length Std", "Flow Bytes/s", "Flow Packets/s", "Flow IAT Mean", "Flow IAT Std",
    "Flow IAT Max", "Flow IAT Min", "Fwd IAT Total", "Fwd IAT Mean", "Fwd IAT Std",
    "Fwd IAT Max", "Fwd IAT Min", "Bwd IAT Total", "Bwd IAT Mean", "Bwd IAT Std", "Bwd IAT Max",
    "Bwd IAT Min", "Fwd PSH Flags", "Bwd PSH Flags", "Fwd URG Flags", "Bwd URG Flags",
    "Fwd Header Length", "Bwd Header Length", "Fwd Packets/s", "Bwd Packets/s",
    "Min Packet Length", "Max Packet Length", "Packet Length Mean", "Packet Length Std",
    "Packet Length Variance", "FIN Flag Count", "SYN Flag Count", "RST Flag Count",
    "PSH Flag Count", "ACK Flag Count", "URG Flag Count", "CWE Flag Count", "ECE Flag Count",
    "Down/Up Ratio", "Average Packet Size", "Avg Fwd Segment Size", "Avg Bwd Segment Size",
    "Fwd Avg Bytes/Bulk", "Fwd Avg Packets/Bulk", "Fwd Avg Bulk Rate", "Bwd Avg Bytes/Bulk",
    "Bwd Avg Packets/Bulk", "Bwd Avg Bulk Rate", "Subflow Fwd Packets", "Subflow Fwd Bytes",
    "Subflow Bwd Packets", "Subflow Bwd Bytes", "Init_Win_bytes_forward",
    "Init_Win_bytes_backward", "act_data_pkt_fwd", "min_seg_size_forward", "Active Mean",
    "Active Std", "Active Max", "Active Min", "Idle Mean", "Idle Std", "Idle Max", "Idle Min",
)
_RATE_COLUMNS = frozenset({"Flow Bytes/s", "Flow Packets/s"})

# Destination port as a category: the well-known services of the capture, the rest
# share <other> (a port number is a name, not a magnitude).
PORTS = ("80", "443", "53", "22", "21", "8080", "139", "445", "123", "137", "389", "88",
         "3268", "465", "0")

SCHEMA = FeatureSchema(
    schema_id="cicids2017/v1",
    # Every CICFlowMeter quantity is heavy-tailed (µs durations, bytes/s); signed
    # log1p also copes with the -1 "not seen" the files write for window sizes.
    numeric=tuple(
        NumericFeature(c, "log1p", nonfinite="flag" if c in _RATE_COLUMNS else "error")
        for c in NUMERIC_COLUMNS
    ),
    categorical=(CategoricalFeature("Destination Port", PORTS),),
    classes=class_list(("dos", "probe", "bruteforce", "web", "botnet", "infiltration",
                        "exploit")),
)


# The GeneratedLabelledFlows files also name the flow's endpoints.
_ENDPOINT_COLUMNS = {"Source IP": "src_ip", "Source Port": "src_port", "Destination IP": "dst_ip",
                     "Destination Port": "dst_port", "Protocol": "protocol"}


def _plan_for(path: Path, header: list[str], endpoints: bool = False) -> ColumnPlan:
    index: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = cell.strip()
        if name.endswith(".1") and name[:-2] in index:
            continue  # a pandas re-save's name for the duplicated column
        index.setdefault(name, i)  # first occurrence wins; the copy is identical
    need = list(NUMERIC_COLUMNS) + ["Destination Port", "Label"]
    missing = [c for c in need if c not in index]
    if missing:
        raise DataError(
            f"{path}:1: header lacks CICIDS2017 columns {', '.join(map(repr, missing[:5]))}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
            hint="expected a MachineLearningCVE CSV (header row with ' Label' last)",
        )
    label_idx = index["Label"]

    def label(row: list[str]) -> str:
        name = row[label_idx].strip()
        if not name:
            raise ValueError(f"empty Label (field {label_idx + 1})")
        return name

    return ColumnPlan(
        source="cicids2017",
        n_columns=len(header),
        numeric=[(index[f.name], f) for f in SCHEMA.numeric],
        categorical=[(index["Destination Port"], "Destination Port")],
        label=label,
        label_columns=(label_idx,),
        extras=[(index[c], ours) for c, ours in _ENDPOINT_COLUMNS.items() if c in index] if endpoints else (),
    )


def files(path: Path) -> list[Path]:
    """``path``, or the ``*.csv`` files of a directory."""
    return flow_files(path)


def plan(path: Path, *, endpoints: bool = False) -> FilePlan | None:
    """How to read one CICIDS2017 file (its header row names the columns); None for an empty file."""
    with open_rows(path) as reader:
        header = first_row(path, reader)
        if header is None:
            return None
        return FilePlan(_plan_for(path, header, endpoints), header_lines=int(reader.line_num))


def read(
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    max_rows: int | None = None,
) -> tuple[RawFlows, LoadReport]:
    """Read CICIDS2017 rows from a CSV file or every ``*.csv`` of a directory."""
    parts, report = [], LoadReport()
    for f in files(path):
        fp = plan(f)
        if fp is None:
            report = report.merge(LoadReport(files=[str(f)]))
            continue
        with open_rows(f) as reader:
            first_row(f, reader)
            raw, rep = parse_rows(f, reader, fp.plan, on_bad_row=on_bad_row,
                                  unknown_labels=unknown_labels,
                                  max_rows=None if max_rows is None else max_rows - report.rows)
        parts.append(raw)
        report = report.merge(rep)
        if max_rows is not None and report.rows >= max_rows:
            break
    if not parts:
        parts.append(RawFlows({f.name: np.zeros(0) for f in SCHEMA.numeric},
                              {"Destination Port": np.zeros(0, dtype=object)},
                              np.zeros(0, dtype=object), np.zeros(0, dtype=object)))
    return concat_raw(parts), report
