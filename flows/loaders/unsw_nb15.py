"""UNSW-NB15, in either of its two published layouts.

* the partitioned files ``UNSW-NB15_1.csv`` … ``_4.csv``: no header, 49 columns
  (addresses, ports and timestamps first, ``attack_cat`` and ``Label`` last);
  ``attack_cat`` is empty for normal rows and padded with spaces; the HTTP/FTP
  counters are empty on flows where they do not apply;
* ``UNSW_NB15_training-set.csv`` / ``_testing-set.csv``: a header
  (``id,dur,proto,…,attack_cat,label``), ``attack_cat`` = ``Normal`` for normal rows.

Each file's layout is detected from its first line. The schema uses the features
both layouts share; addresses, ports, timestamps and the TCP base sequence
numbers (random by design) are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flows.errors import DataError, MalformedRow
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
from flows.taxonomy import NORMAL, class_list, family_of

# The 49 columns of the partitioned files, in order (from UNSW-NB15_features.csv),
# already renamed to the training-set names where the two layouts differ.
PARTITIONED_COLUMNS: tuple[str, ...] = (
    "srcip", "sport", "dstip", "dsport", "proto", "state", "dur", "sbytes", "dbytes", "sttl",
    "dttl", "sloss", "dloss", "service", "sload", "dload", "spkts", "dpkts", "swin", "dwin",
    "stcpb", "dtcpb", "smean", "dmean", "trans_depth", "response_body_len", "sjit", "djit",
    "stime", "ltime", "sinpkt", "dinpkt", "tcprtt", "synack", "ackdat", "is_sm_ips_ports",
    "ct_state_ttl", "ct_flw_http_mthd", "is_ftp_login", "ct_ftp_cmd", "ct_srv_src",
    "ct_srv_dst", "ct_dst_ltm", "ct_src_ltm", "ct_src_dport_ltm", "ct_dst_sport_ltm",
    "ct_dst_src_ltm", "attack_cat", "label",
)

_LOG1P = (
    "dur", "sbytes", "dbytes", "sloss", "dloss", "sload", "dload", "spkts", "dpkts", "smean",
    "dmean", "trans_depth", "response_body_len", "sjit", "djit", "sinpkt", "dinpkt", "tcprtt",
    "synack", "ackdat", "ct_state_ttl", "ct_flw_http_mthd", "ct_ftp_cmd", "ct_srv_src",
    "ct_srv_dst", "ct_dst_ltm", "ct_src_ltm", "ct_src_dport_ltm", "ct_dst_sport_ltm",
    "ct_dst_src_ltm",
)
_PLAIN = ("sttl", "dttl", "swin", "dwin", "is_sm_ips_ports", "is_ftp_login")
# Empty in the partitioned files on flows that are not HTTP / FTP: zero is the true value.
_BLANK_AS_ZERO = frozenset({"ct_flw_http_mthd", "is_ftp_login", "ct_ftp_cmd"})

PROTOCOLS = ("tcp", "udp", "unas", "arp", "ospf", "sctp", "icmp", "any", "gre", "igmp")
SERVICES = ("-", "dns", "http", "smtp", "ftp-data", "ftp", "ssh", "pop3", "dhcp", "snmp",
            "ssl", "irc", "radius")
STATES = ("FIN", "INT", "CON", "REQ", "RST", "ECO", "ACC", "CLO", "PAR", "URN", "no")

SCHEMA = FeatureSchema(
    schema_id="unsw-nb15/v1",
    numeric=tuple(NumericFeature(c, "log1p") for c in _LOG1P)
    + tuple(NumericFeature(c, "identity") for c in _PLAIN),
    categorical=(
        CategoricalFeature("proto", PROTOCOLS),
        CategoricalFeature("service", SERVICES),
        CategoricalFeature("state", STATES),
    ),
    classes=class_list(("dos", "probe", "exploit", "backdoor", "fuzzers", "generic", "worm")),
)


def _label_reader(cat_idx: int, bin_idx: int):  # noqa: ANN202 - small closure
    def label(row: list[str]) -> str:
        cat = row[cat_idx].strip()
        flag = row[bin_idx].strip()
        if flag not in ("0", "1"):
            raise ValueError(f"label (field {bin_idx + 1}) must be 0 or 1, got {row[bin_idx]!r}")
        # A row whose two labels disagree would train the model on a lie.
        fam = family_of(cat, "unsw-nb15", unknown_labels="unknown")
        if (fam == NORMAL) != (flag == "0"):
            raise ValueError(f"attack_cat {cat!r} contradicts label {flag}")
        return cat if cat else "Normal"

    return label


# Endpoint columns (named as in the training-set header); the training/testing-set files lack
# the addresses and ports.
_ENDPOINT_COLUMNS = {"srcip": "src_ip", "sport": "src_port", "dstip": "dst_ip", "dsport": "dst_port", "proto": "protocol"}


def _plan_for(path: Path, first: list[str], endpoints: bool = False) -> tuple[ColumnPlan, bool]:
    """The column plan of one file and whether its first line is a header."""
    cells = [c.strip().lower() for c in first]
    if "attack_cat" in cells:
        index = {c: i for i, c in enumerate(cells)}
        need = [f.name for f in SCHEMA.numeric] + [c.name for c in SCHEMA.categorical] + \
            ["attack_cat", "label"]
        missing = [c for c in need if c not in index]
        if missing:
            raise DataError(f"{path}: header lacks UNSW-NB15 columns {', '.join(missing)}",
                            hint="expected the UNSW_NB15_training-set.csv header")
        has_header = True
    else:
        # No header: the partitioned layout. A first row of the wrong width is
        # reported like any other bad row, with its line number.
        index = {c: i for i, c in enumerate(PARTITIONED_COLUMNS)}
        has_header = False
    plan = ColumnPlan(
        source="unsw-nb15",
        n_columns=len(first) if has_header else len(PARTITIONED_COLUMNS),
        numeric=[(index[f.name], f) for f in SCHEMA.numeric],
        categorical=[(index[c.name], c.name) for c in SCHEMA.categorical],
        label=_label_reader(index["attack_cat"], index["label"]),
        blank_as_zero=_BLANK_AS_ZERO,
        label_columns=(index["attack_cat"], index["label"]),
        extras=[(index[c], ours) for c, ours in _ENDPOINT_COLUMNS.items() if c in index] if endpoints else (),
    )
    return plan, has_header


def files(path: Path) -> list[Path]:
    """``path``, or the ``*.csv`` files of a directory."""
    return flow_files(path)


def plan(path: Path, *, endpoints: bool = False) -> FilePlan | None:
    """How to read one UNSW-NB15 file (layout sniffed from its first line); None for an empty file."""
    with open_rows(path) as reader:
        try:
            first = first_row(path, reader)
        except MalformedRow:
            first = [""] * len(PARTITIONED_COLUMNS)  # no header: parse_rows blames the line
        if first is None:
            return None
        column_plan, has_header = _plan_for(path, first, endpoints)
        return FilePlan(column_plan, header_lines=int(reader.line_num) if has_header else 0)


def read(
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    max_rows: int | None = None,
) -> tuple[RawFlows, LoadReport]:
    """Read UNSW-NB15 rows from a CSV file or every ``*.csv`` of a directory."""
    parts, report = [], LoadReport()
    for f in files(path):
        fp = plan(f)
        if fp is None:
            parts.append(_empty())
            report = report.merge(LoadReport(files=[str(f)]))
            continue
        with open_rows(f) as reader:
            if fp.header_lines:
                first_row(f, reader)
            raw, rep = parse_rows(f, reader, fp.plan, on_bad_row=on_bad_row,
                                  unknown_labels=unknown_labels,
                                  max_rows=None if max_rows is None else max_rows - report.rows)
        parts.append(raw)
        report = report.merge(rep)
        if max_rows is not None and report.rows >= max_rows:
            break
    return concat_raw(parts), report


def _empty() -> RawFlows:
    return RawFlows({f.name: np.zeros(0) for f in SCHEMA.numeric},
                    {c.name: np.zeros(0, dtype=object) for c in SCHEMA.categorical},
                    np.zeros(0, dtype=object), np.zeros(0, dtype=object))
