"""One taxonomy for every flow data set: ``normal`` plus attack families.

Each source data set names its attacks its own way. The tables below map every
name we know (including names that only occur in a data set's *test* files, so a
model trained without them still gets their family right) to one family. Lookup
is forgiving about case, spacing and punctuation, because real exports differ:
UNSW-NB15 pads ``attack_cat`` with spaces, and CICIDS2017 writes the dash in
``Web Attack – Brute Force`` as a byte that decodes differently per release.

A name nobody knows is never silently dropped or guessed: it raises
:class:`~flows.errors.UnknownLabel`, or, if the caller explicitly asks
for it, maps to the family ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import numpy as np

from flows.errors import DataError, UnknownLabel

NORMAL = "normal"
UNKNOWN = "unknown"

#: Every attack family, in the order class lists use. A data set's classes are
#: ``normal`` followed by the subset of these its schema declares, in this order.
FAMILIES: tuple[str, ...] = (
    "dos",  # denial of service, flooding, resource exhaustion
    "probe",  # scanning, reconnaissance, traffic analysis
    "r2l",  # remote-to-local: unauthorised access from outside (KDD's family)
    "u2r",  # user-to-root: privilege escalation (KDD's family)
    "bruteforce",  # password guessing against a network service
    "web",  # attacks on web applications (SQL injection, XSS, login brute force)
    "botnet",  # command-and-control traffic of compromised hosts
    "infiltration",  # a foothold inside the network, followed by internal scanning
    "exploit",  # exploitation of a service vulnerability (incl. shellcode)
    "backdoor",  # covert access bypassing authentication
    "fuzzers",  # malformed input sent to crash or probe a service
    "generic",  # attacks on block ciphers regardless of their structure (UNSW)
    "worm",  # self-propagating malware
)

UnknownPolicy = Literal["error", "unknown"]


def label_key(name: str) -> str:
    """The comparison key of a label: lower case, any run of other characters → one space."""
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def _table(families: dict[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for family, names in families.items():
        assert family == NORMAL or family in FAMILIES, family
        for name in names:
            key = label_key(name)
            assert key not in table, f"{name!r} listed twice"
            table[key] = family
    return table


# NSL-KDD / KDD'99 — the four families of the original KDD Cup task. The names
# after the first block of each family occur only in KDDTest+ (they are the
# data set's "novel attacks").
NSL_KDD_NAMES: dict[str, tuple[str, ...]] = {
    NORMAL: ("normal",),
    "dos": (
        "back", "land", "neptune", "pod", "smurf", "teardrop",
        "apache2", "mailbomb", "processtable", "udpstorm", "worm",
    ),
    "probe": ("ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"),
    "r2l": (
        "ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy",
        "warezclient", "warezmaster",
        "named", "sendmail", "snmpgetattack", "snmpguess", "xlock", "xsnoop", "httptunnel",
    ),
    "u2r": (
        "buffer_overflow", "loadmodule", "perl", "rootkit",
        "ps", "sqlattack", "xterm",
    ),
}

# UNSW-NB15 ``attack_cat``. The partitioned CSVs say "Backdoors" and leave the
# category empty for normal rows; the training/testing-set CSVs say "Backdoor"
# and "Normal". "Analysis" (port scans, spam, HTML penetration) is reconnaissance
# in our terms; "Shellcode" is the payload of an exploit.
UNSW_NB15_NAMES: dict[str, tuple[str, ...]] = {
    NORMAL: ("Normal", ""),
    "dos": ("DoS",),
    "probe": ("Reconnaissance", "Analysis"),
    "exploit": ("Exploits", "Shellcode"),
    "backdoor": ("Backdoor", "Backdoors"),
    "fuzzers": ("Fuzzers",),
    "generic": ("Generic",),
    "worm": ("Worms",),
}

# CICIDS2017 MachineLearningCVE ``Label``. A login brute force against a web
# application is classed as ``web`` (its traffic is HTTP requests, like the
# other web attacks), the Patator runs against FTP/SSH as ``bruteforce``.
CICIDS2017_NAMES: dict[str, tuple[str, ...]] = {
    NORMAL: ("BENIGN",),
    "dos": ("DoS Hulk", "DoS GoldenEye", "DoS slowloris", "DoS Slowhttptest", "DDoS"),
    "probe": ("PortScan",),
    "bruteforce": ("FTP-Patator", "SSH-Patator"),
    "web": ("Web Attack – Brute Force", "Web Attack – XSS", "Web Attack – Sql Injection"),
    "botnet": ("Bot",),
    "infiltration": ("Infiltration",),
    "exploit": ("Heartbleed",),
}

# The synthetic generator labels rows with the family names themselves.
SYNTHETIC_NAMES: dict[str, tuple[str, ...]] = {
    NORMAL: (NORMAL,),
    **{f: (f,) for f in ("dos", "probe", "bruteforce", "web", "botnet")},
}

# The novel-attack hold-out (``flows.partition.novel_attack_holdout``): attack names kept out
# of training altogether, so a model is tested on attacks of a known family it has never seen
# (what an official test file with new attack names measures). Within each family, the names
# ranked 2nd, 4th, ... by their row count in the data set's published training data; the most
# common name of every family is always trained on, and a family with one name keeps it.
# Spelling variants of one category (UNSW-NB15's "Backdoor"/"Backdoors") are one name.
NOVEL_HOLDOUT: dict[str, dict[str, tuple[str, ...]]] = {
    # KDDTrain+: neptune > smurf > back > teardrop > pod > land; satan > ipsweep > portsweep > nmap;
    # warezclient > guess_passwd > warezmaster > imap > ftp_write > multihop > phf > spy;
    # buffer_overflow > rootkit > loadmodule > perl.
    "nsl-kdd": {
        "dos": ("smurf", "teardrop", "land"),
        "probe": ("ipsweep", "nmap"),
        "r2l": ("guess_passwd", "imap", "multihop", "spy"),
        "u2r": ("rootkit", "perl"),
    },
    # training + testing sets: Reconnaissance > Analysis; Exploits > Shellcode.
    "unsw-nb15": {"probe": ("Analysis",), "exploit": ("Shellcode",)},
    # MachineLearningCVE: Hulk > DDoS > GoldenEye > slowloris > Slowhttptest;
    # web Brute Force > XSS > Sql Injection; FTP-Patator > SSH-Patator.
    "cicids2017": {
        "dos": ("DDoS", "DoS slowloris"),
        "web": ("Web Attack – XSS",),
        "bruteforce": ("SSH-Patator",),
    },
}


def novel_names(source: str) -> dict[str, tuple[str, ...]]:
    """The attack names the novel-attack hold-out keeps out of training, per family, for ``source``."""
    try:
        return NOVEL_HOLDOUT[source]
    except KeyError:
        raise DataError(
            f"no novel-attack hold-out for data set {source!r}: its families have one attack name each",
            hint=f"use the stratified hold-out, or one of {', '.join(sorted(NOVEL_HOLDOUT))}",
        ) from None


def is_novel(names: Iterable[str], source: str) -> np.ndarray:
    """Boolean mask over source labels (as the file wrote them): True for the hold-out's novel names."""
    held = {label_key(n) for family in novel_names(source).values() for n in family}
    return np.fromiter((label_key(str(n)) in held for n in names), dtype=bool)


#: source name → {label key → family}
TABLES: dict[str, dict[str, str]] = {
    "nsl-kdd": _table(NSL_KDD_NAMES),
    "unsw-nb15": _table(UNSW_NB15_NAMES),
    "cicids2017": _table(CICIDS2017_NAMES),
    "synthetic": _table(SYNTHETIC_NAMES),
}


def family_of(
    name: str,
    source: str,
    *,
    unknown_labels: UnknownPolicy = "error",
    where: str | None = None,
) -> str:
    """The family of attack ``name`` as the ``source`` data set spells it.

    ``where`` (e.g. ``"file.csv:12"``) is put into the error so the user can find
    the row. With ``unknown_labels="unknown"`` an unknown name gives ``"unknown"``.
    """
    try:
        table = TABLES[source]
    except KeyError:
        raise DataError(
            f"no taxonomy table for data set {source!r}",
            hint=f"known data sets: {', '.join(sorted(TABLES))}",
        ) from None
    family = table.get(label_key(name))
    if family is not None:
        return family
    if unknown_labels == "unknown":
        return UNKNOWN
    if unknown_labels != "error":
        raise DataError(
            f"unknown_labels must be 'error' or 'unknown', not {unknown_labels!r}",
            hint="pass unknown_labels='error' (default) or 'unknown'",
        )
    raise UnknownLabel(name, source, where)


def class_list(families: tuple[str, ...], *, with_unknown: bool = False) -> tuple[str, ...]:
    """``normal`` + the given families in taxonomy order (+ ``unknown`` last if asked)."""
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise DataError(
            f"not attack families of the taxonomy: {', '.join(bad)}",
            hint=f"families: {', '.join(FAMILIES)}",
        )
    ordered = tuple(f for f in FAMILIES if f in families)
    return (NORMAL, *ordered, *((UNKNOWN,) if with_unknown else ()))
