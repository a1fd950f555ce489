"""NSL-KDD (KDDTrain+/KDDTest+ layout): 41 features, label, difficulty; no header.

Also reads the original KDD'99 layout (42 columns, labels ending in a dot).
"""

from __future__ import annotations

from pathlib import Path

from flows.errors import MalformedRow
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

COLUMNS: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)
CATEGORICAL = ("protocol_type", "service", "flag")
# Heavy-tailed counts and byte totals: log1p keeps a 1 GB transfer from
# dominating every normalised feature.
_LOG1P = {
    "duration", "src_bytes", "dst_bytes", "wrong_fragment", "urgent", "hot",
    "num_failed_logins", "num_compromised", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "count", "srv_count", "dst_host_count",
    "dst_host_srv_count",
}
# Rates and 0/1 flags already live in [0, 1]; the schema maps them to [-1, 1]
# itself, no statistics needed.
_FIXED_UNIT = (0.5, 0.5)

PROTOCOLS = ("tcp", "udp", "icmp")
SERVICES = (
    "IRC", "X11", "Z39_50", "aol", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime",
    "discard", "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger", "ftp",
    "ftp_data", "gopher", "harvest", "hostnames", "http", "http_2784", "http_443", "http_8001",
    "imap4", "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp", "name",
    "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u", "other",
    "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job", "rje", "shell",
    "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet", "tftp_u", "tim_i", "time",
    "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
)
FLAGS = ("SF", "S0", "REJ", "RSTR", "RSTO", "SH", "S1", "S2", "RSTOS0", "S3", "OTH")

SCHEMA = FeatureSchema(
    schema_id="nsl-kdd/v1",
    numeric=tuple(
        NumericFeature(c, "log1p") if c in _LOG1P else NumericFeature(c, "identity", _FIXED_UNIT)
        for c in COLUMNS if c not in CATEGORICAL
    ),
    categorical=(
        CategoricalFeature("protocol_type", PROTOCOLS),
        CategoricalFeature("service", SERVICES),
        CategoricalFeature("flag", FLAGS),
    ),
    classes=class_list(("dos", "probe", "r2l", "u2r")),
)


def _label(row: list[str]) -> str:
    name = row[41].strip()
    if not name:
        raise ValueError("empty label (field 42)")
    if len(row) == 43 and not row[42].strip().isdigit():
        # not a feature, but a non-number here means the row is shifted or corrupt
        raise ValueError(f"difficulty (field 43) is not a whole number: {row[42]!r}")
    return name.rstrip(".")  # KDD'99 writes "smurf."


def files(path: Path) -> list[Path]:
    """``path``, or the ``*.txt`` files of a directory."""
    return flow_files(path, "*.txt") if Path(path).is_dir() else flow_files(path)


def plan(path: Path, *, endpoints: bool = False) -> FilePlan:
    """How to read one NSL-KDD file (no header). The format has no addresses or ports;
    ``endpoints`` keeps the protocol only."""
    index = {c: i for i, c in enumerate(COLUMNS)}
    # 43 columns in NSL-KDD (label, difficulty); the KDD'99 files have 42.
    n_cols = _sniff_width(path)
    return FilePlan(ColumnPlan(
        source="nsl-kdd",
        n_columns=n_cols,
        numeric=[(index[nf.name], nf) for nf in SCHEMA.numeric],
        categorical=[(index[c], c) for c in CATEGORICAL],
        label=_label,
        label_columns=(41, 42) if n_cols == 43 else (41,),
        extras=[(index["protocol_type"], "protocol")] if endpoints else (),
    ))


def read(
    path: Path,
    *,
    on_bad_row: BadRowPolicy = "error",
    unknown_labels: LabelPolicy = "error",
    max_rows: int | None = None,
) -> tuple[RawFlows, LoadReport]:
    """Read NSL-KDD rows from a file (or every ``*.txt``/``*.csv`` file of a directory)."""
    parts, report = [], LoadReport()
    for f in files(path):
        with open_rows(f) as reader:
            raw, rep = parse_rows(f, reader, plan(f).plan, on_bad_row=on_bad_row,
                                  unknown_labels=unknown_labels,
                                  max_rows=None if max_rows is None else max_rows - report.rows)
        parts.append(raw)
        report = report.merge(rep)
        if max_rows is not None and report.rows >= max_rows:
            break
    return concat_raw(parts), report


def _sniff_width(path: Path) -> int:
    """43 unless the first data line has 42 fields (the KDD'99 layout)."""
    with open_rows(path) as reader:
        try:
            row = first_row(path, reader)
        except MalformedRow:
            return 43  # parse_rows reports the unreadable row with its line
    return 42 if row is not None and len(row) == 42 else 43
