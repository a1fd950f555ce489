"""The unified taxonomy: explicit tables, forgiving spelling, no silent guesses."""

from __future__ import annotations

import pytest

from flows import DataError, UnknownLabel
from flows.taxonomy import (
    CICIDS2017_NAMES,
    FAMILIES,
    NSL_KDD_NAMES,
    TABLES,
    UNSW_NB15_NAMES,
    class_list,
    family_of,
    label_key,
)


def test_every_nsl_kdd_name_from_the_readme_maps_to_its_family() -> None:
    # the four families as the NSL-KDD README lists them, including test-only names
    readme = {
        "dos": "back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm worm",
        "probe": "ipsweep nmap portsweep satan mscan saint",
        "r2l": "ftp_write guess_passwd imap multihop phf spy warezclient warezmaster named "
               "sendmail snmpgetattack snmpguess xlock xsnoop httptunnel",
        "u2r": "buffer_overflow loadmodule perl rootkit ps sqlattack xterm",
    }
    for family, names in readme.items():
        for name in names.split():
            assert family_of(name, "nsl-kdd") == family, name
    assert family_of("normal", "nsl-kdd") == "normal"


@pytest.mark.parametrize(
    "name, family",
    [
        ("BENIGN", "normal"), ("DoS Hulk", "dos"), ("DDoS", "dos"), ("PortScan", "probe"),
        ("Bot", "botnet"), ("FTP-Patator", "bruteforce"), ("SSH-Patator", "bruteforce"),
        ("Web Attack \ufffd Brute Force", "web"), ("Web Attack – XSS", "web"),
        ("Web Attack - Sql Injection", "web"), ("Infiltration", "infiltration"),
        ("Heartbleed", "exploit"), ("  DoS slowloris ", "dos"),
    ],
)
def test_cicids_names_including_odd_bytes(name: str, family: str) -> None:
    assert family_of(name, "cicids2017") == family


@pytest.mark.parametrize(
    "name, family",
    [("", "normal"), ("Normal", "normal"), (" Fuzzers ", "fuzzers"), ("Backdoors", "backdoor"),
     ("Backdoor", "backdoor"), ("Reconnaissance ", "probe"), ("Analysis", "probe"),
     ("Shellcode", "exploit"), ("Exploits", "exploit"), ("Worms", "worm"), ("Generic", "generic"),
     ("DoS", "dos")],
)
def test_unsw_names_both_layouts(name: str, family: str) -> None:
    assert family_of(name, "unsw-nb15") == family


def test_label_key_is_spelling_insensitive() -> None:
    assert label_key("Web Attack \x96 Brute Force") == "web attack brute force"
    assert label_key(" guess_passwd ") == "guess passwd"
    assert label_key("SSH-Patator") == "ssh patator"


def test_unknown_name_is_a_typed_error_or_unknown_on_request() -> None:
    with pytest.raises(UnknownLabel) as exc:
        family_of("quantum_hack", "nsl-kdd", where="f.txt:9")
    assert "f.txt:9" in str(exc.value) and "quantum_hack" in str(exc.value)
    assert family_of("quantum_hack", "nsl-kdd", unknown_labels="unknown") == "unknown"
    # a name known to another data set is not silently borrowed
    with pytest.raises(UnknownLabel):
        family_of("PortScan", "nsl-kdd")


def test_bad_source_or_policy() -> None:
    with pytest.raises(DataError, match="no taxonomy table"):
        family_of("normal", "kdd2025")
    with pytest.raises(DataError, match="unknown_labels"):
        family_of("x", "nsl-kdd", unknown_labels="guess")  # type: ignore[arg-type]


def test_tables_only_use_taxonomy_families() -> None:
    for table in TABLES.values():
        assert set(table.values()) <= {"normal", *FAMILIES}
    for names in (NSL_KDD_NAMES, UNSW_NB15_NAMES, CICIDS2017_NAMES):
        assert "normal" in names


def test_class_list_is_ordered_by_taxonomy_not_by_argument() -> None:
    assert class_list(("u2r", "dos")) == ("normal", "dos", "u2r")
    assert class_list(("dos",), with_unknown=True) == ("normal", "dos", "unknown")
    with pytest.raises(DataError, match="not attack families"):
        class_list(("dos", "phishing"))
