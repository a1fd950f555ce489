"""Loaders of the three public layouts, on small fixture files in their real formats.

The fixtures are written by tests/data/make_fixtures.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows import DataError, MalformedRow, UnknownLabel
from flows.loaders import cicids2017, nsl_kdd, unsw_nb15

DATA = Path(__file__).resolve().parents[1] / "data"


def _families(raw) -> list[str]:  # noqa: ANN001
    return raw.families.tolist()


# -- NSL-KDD -------------------------------------------------------------------------


def test_nsl_kdd_reads_all_rows_and_maps_families() -> None:
    raw, rep = nsl_kdd.read(DATA / "nsl_kdd_train.txt")
    assert rep.rows == len(raw) == 31 and rep.skipped == 0
    fam = _families(raw)
    assert fam.count("normal") == 14
    assert fam.count("dos") == 9 and fam.count("probe") == 4
    assert fam.count("r2l") == 2 and fam.count("u2r") == 2
    assert raw.source_labels[14] == "neptune"
    assert set(raw.categorical["protocol_type"]) == {"tcp", "icmp"}
    assert len(raw.numeric) == 38
    x = nsl_kdd.SCHEMA.transform(raw)
    assert x.shape == (31, nsl_kdd.SCHEMA.dim) and np.isfinite(x).all()


def test_nsl_kdd_test_only_attack_names_map_to_their_family() -> None:
    raw, _ = nsl_kdd.read(DATA / "nsl_kdd_test.txt")
    got = dict(zip(raw.source_labels.tolist(), _families(raw)))
    assert got == {
        "normal": "normal", "apache2": "dos", "mailbomb": "dos", "processtable": "dos",
        "mscan": "probe", "saint": "probe", "snmpguess": "r2l", "httptunnel": "r2l",
        "xterm": "u2r", "sqlattack": "u2r", "neptune": "dos",
    }


def test_nsl_kdd_unseen_service_goes_to_other_bucket() -> None:
    raw, _ = nsl_kdd.read(DATA / "nsl_kdd_test.txt")
    x = nsl_kdd.SCHEMA.transform(raw)
    col = nsl_kdd.SCHEMA.feature_names.index("service=<other>")
    assert x[0, col] == 1.0 and x[1:, col].sum() == 0.0
    names = nsl_kdd.SCHEMA.feature_names
    block = [i for i, n in enumerate(names) if n.startswith("service=")]
    assert (x[:, block].sum(axis=1) == 1.0).all()


def test_nsl_kdd_unknown_label_is_a_typed_error_naming_the_line() -> None:
    with pytest.raises(UnknownLabel) as exc:
        nsl_kdd.read(DATA / "nsl_kdd_unknown.txt")
    assert "nsl_kdd_unknown.txt:2" in str(exc.value) and "zeroday_worm" in str(exc.value)
    assert exc.value.hint and "unknown_labels" in exc.value.hint


def test_nsl_kdd_unknown_label_as_unknown_family_or_skipped() -> None:
    raw, rep = nsl_kdd.read(DATA / "nsl_kdd_unknown.txt", unknown_labels="unknown")
    assert _families(raw) == ["normal", "unknown", "dos"]
    assert rep.unknown_labels == {"zeroday_worm": 1} and rep.skipped == 0
    raw, rep = nsl_kdd.read(DATA / "nsl_kdd_unknown.txt", unknown_labels="skip")
    assert _families(raw) == ["normal", "dos"] and rep.skipped == 1
    assert "unknown label 'zeroday_worm'" in rep.reasons[0]


def test_nsl_kdd_first_bad_row_is_an_error_with_file_and_line() -> None:
    with pytest.raises(MalformedRow) as exc:
        nsl_kdd.read(DATA / "nsl_kdd_bad.txt")
    e = exc.value
    assert e.line == 3 and e.path.endswith("nsl_kdd_bad.txt")
    assert "expected 43 columns, got 40" in str(e)
    assert "on_bad_row='skip'" in (e.hint or "")


def test_nsl_kdd_skip_counts_every_bad_row_with_its_reason() -> None:
    raw, rep = nsl_kdd.read(DATA / "nsl_kdd_bad.txt", on_bad_row="skip")
    assert rep.rows == len(raw) == 6 and rep.skipped == 4 and rep.blank == 1
    lines = [r.split(": ")[0].rsplit(":", 1)[1] for r in rep.reasons]
    assert lines == ["3", "5", "8", "10"]
    assert "'src_bytes' (field 5) is not a number: '12kB'" in rep.reasons[1]
    assert "'serror_rate' (field 25) is 'inf', not finite" in rep.reasons[2]
    assert "empty label" in rep.reasons[3]
    assert _families(raw) == ["normal", "dos", "normal", "probe", "normal", "dos"]
    assert "4 bad rows skipped" in rep.summary()


def test_nsl_kdd_directory_and_max_rows(tmp_path: Path) -> None:
    for name in ("nsl_kdd_train.txt", "nsl_kdd_test.txt"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    raw, rep = nsl_kdd.read(tmp_path)
    assert len(raw) == 31 + 16 and len(rep.files) == 2
    raw, rep = nsl_kdd.read(tmp_path, max_rows=20)
    assert len(raw) == 20


def test_nsl_kdd_shifted_row_caught_by_difficulty(tmp_path: Path) -> None:
    cells = (DATA / "nsl_kdd_train.txt").read_text().splitlines()[0].split(",")
    shifted = cells[:1] + cells[2:] + ["normal"]  # a dropped field shifts everything left
    (tmp_path / "s.txt").write_text(",".join(shifted) + "\n")
    with pytest.raises(MalformedRow, match="s.txt:1"):
        nsl_kdd.read(tmp_path / "s.txt")
    cells[42] = "hard"
    (tmp_path / "d.txt").write_text(",".join(cells) + "\n")
    with pytest.raises(MalformedRow, match="difficulty \\(field 43\\) is not a whole number"):
        nsl_kdd.read(tmp_path / "d.txt")


def test_kdd99_layout_without_difficulty_and_with_dotted_labels(tmp_path: Path) -> None:
    lines = (DATA / "nsl_kdd_train.txt").read_text().splitlines()[:3]
    kdd99 = [",".join(line.split(",")[:41] + [line.split(",")[41] + "."]) for line in lines]
    (tmp_path / "kddcup.data").write_text("\n".join(kdd99) + "\n")
    raw, _ = nsl_kdd.read(tmp_path / "kddcup.data")
    assert _families(raw) == ["normal", "normal", "normal"]


def test_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        nsl_kdd.read(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="no \\*.txt files"):
        nsl_kdd.read(tmp_path)


def test_empty_file_gives_no_rows(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    raw, rep = nsl_kdd.read(tmp_path / "empty.txt")
    assert len(raw) == 0 and rep.rows == 0


def test_binary_garbage_is_a_malformed_row_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "garbage.txt").write_bytes(b"\x00\xff\xfe" * 50 + b"\n" + b"\x89PNG\r\n\x1a\n")
    with pytest.raises(MalformedRow, match="garbage.txt:1"):
        nsl_kdd.read(tmp_path / "garbage.txt")
    raw, rep = nsl_kdd.read(tmp_path / "garbage.txt", on_bad_row="skip")
    assert len(raw) == 0 and rep.skipped >= 1


def test_oversized_field_is_a_malformed_row(tmp_path: Path) -> None:
    good = (DATA / "nsl_kdd_train.txt").read_text().splitlines()[0]
    (tmp_path / "huge.txt").write_text('"' + "9" * 200_000 + '"\n' + good + "\n")
    with pytest.raises(MalformedRow, match="huge.txt:1: malformed row: unreadable CSV row"):
        nsl_kdd.read(tmp_path / "huge.txt")
    raw, rep = nsl_kdd.read(tmp_path / "huge.txt", on_bad_row="skip")
    assert len(raw) == 1 and rep.skipped == 1


@pytest.mark.parametrize("kwargs", [dict(on_bad_row="ignore"), dict(unknown_labels="drop")])
def test_bad_policy_names_are_rejected(kwargs: dict) -> None:
    with pytest.raises(DataError, match="must be"):
        nsl_kdd.read(DATA / "nsl_kdd_train.txt", **kwargs)


# -- UNSW-NB15 -----------------------------------------------------------------------


def test_unsw_partitioned_layout() -> None:
    raw, rep = unsw_nb15.read(DATA / "unsw_nb15_1.csv")
    assert rep.rows == 19 and rep.skipped == 0
    assert _families(raw) == ["normal"] * 10 + [
        "fuzzers", "exploit", "probe", "dos", "generic", "backdoor", "probe", "exploit", "worm"]
    # blank HTTP/FTP counters on non-HTTP flows are 0, not an error
    assert raw.numeric["ct_flw_http_mthd"][0] == 0.0 and raw.numeric["is_ftp_login"][0] == 0.0
    x = unsw_nb15.SCHEMA.transform(raw)
    assert x[2, unsw_nb15.SCHEMA.feature_names.index("proto=<other>")] == 1.0
    assert np.isfinite(x).all()


def test_unsw_training_set_layout_with_header() -> None:
    raw, rep = unsw_nb15.read(DATA / "unsw_nb15_testing-set.csv")
    assert rep.rows == 13
    assert _families(raw)[7:] == ["normal", "backdoor", "exploit", "dos", "generic", "probe"]


def test_unsw_both_layouts_in_one_directory_share_one_schema(tmp_path: Path) -> None:
    for name in ("unsw_nb15_1.csv", "unsw_nb15_testing-set.csv"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    raw, rep = unsw_nb15.read(tmp_path)
    assert len(raw) == 32 and len(rep.files) == 2
    assert unsw_nb15.SCHEMA.transform(raw).shape == (32, unsw_nb15.SCHEMA.dim)


def test_unsw_bad_rows() -> None:
    with pytest.raises(MalformedRow) as exc:
        unsw_nb15.read(DATA / "unsw_nb15_bad.csv")
    assert exc.value.line == 2 and "attack_cat '' contradicts label 1" in str(exc.value)
    raw, rep = unsw_nb15.read(DATA / "unsw_nb15_bad.csv", on_bad_row="skip")
    assert rep.rows == 3 and rep.skipped == 3
    assert "unsw_nb15_bad.csv:3: expected 49 columns, got 46" in rep.reasons[1]
    assert "'sbytes' (field 8) is not a number: 'n/a'" in rep.reasons[2]
    assert _families(raw) == ["normal", "exploit", "normal"]


def test_unsw_header_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("id,dur,proto,attack_cat,label\n1,0.1,tcp,Normal,0\n")
    with pytest.raises(DataError, match="header lacks UNSW-NB15 columns"):
        unsw_nb15.read(tmp_path / "x.csv")


# -- CICIDS2017 ----------------------------------------------------------------------


def test_cicids_quirks() -> None:
    raw, rep = cicids2017.read(DATA / "cicids2017_thursday.csv")
    assert rep.rows == 22 and rep.skipped == 0 and rep.blank == 3
    fam = _families(raw)
    assert fam[:10] == ["normal"] * 10
    assert fam[10:19] == ["dos", "dos", "probe", "botnet", "bruteforce", "bruteforce",
                          "infiltration", "exploit", "dos"]
    assert fam[19:] == ["web", "web", "web"]  # odd dash byte or real en dash alike
    assert "\ufffd" in raw.source_labels[19]
    x = cicids2017.SCHEMA.transform(raw)
    names = cicids2017.SCHEMA.feature_names
    flag = names.index("Flow Bytes/s#nonfinite")
    assert x[:, flag].tolist()[:4] == [0.0, 1.0, 1.0, 0.0]
    assert x[1, names.index("Flow Bytes/s")] == 0.0  # Infinity → 0 plus the flag
    assert np.isfinite(x).all()
    assert (raw.numeric["Init_Win_bytes_forward"] == -1).all()  # signed log1p copes
    assert x[0, names.index("Init_Win_bytes_forward")] == pytest.approx(-np.log(2))


def test_cicids_bad_rows() -> None:
    with pytest.raises(MalformedRow) as exc:
        cicids2017.read(DATA / "cicids2017_bad.csv")
    assert exc.value.line == 3
    assert "'Flow IAT Mean' (field 17) is 'Infinity', not finite" in str(exc.value)
    raw, rep = cicids2017.read(DATA / "cicids2017_bad.csv", on_bad_row="skip")
    assert rep.rows == 3 and rep.skipped == 3
    assert "not a number: 'lots'" in rep.reasons[1]
    assert "expected 79 columns, got 50" in rep.reasons[2]


def test_cicids_pandas_resaved_header_and_extra_columns(tmp_path: Path) -> None:
    text = (DATA / "cicids2017_thursday.csv").read_bytes().decode("utf-8", "replace")
    lines = text.splitlines()
    header = lines[0].split(",")
    dup = [i for i, h in enumerate(header) if h.strip() == "Fwd Header Length"][1]
    header[dup] = "Fwd Header Length.1"
    out = ["Flow ID," + ",".join(h.strip() for h in header)]
    out += ["10.0.0.1-10.0.0.2-80-4000-6," + line for line in lines[1:4]]
    (tmp_path / "resaved.csv").write_text("\n".join(out) + "\n")
    raw, _ = cicids2017.read(tmp_path / "resaved.csv")
    assert _families(raw) == ["normal"] * 3


def test_cicids_header_missing_label(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(" Destination Port, Flow Duration\n80,1\n")
    with pytest.raises(DataError, match="header lacks CICIDS2017 columns"):
        cicids2017.read(tmp_path / "x.csv")


# -- fuzzing: whatever the bytes, a typed error or a correct load, never a crash -------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_GOOD_NSL = (DATA / "nsl_kdd_train.txt").read_text().splitlines()
_GOOD_CIC = (DATA / "cicids2017_thursday.csv").read_bytes().splitlines()


def _mutate(line: str, data: st.DataObject) -> str:
    cells = line.split(",")
    i = data.draw(st.integers(0, len(cells) - 1))
    cells[i] = data.draw(st.sampled_from(["", "nan", "-inf", "1e999", "x", '"', "0x1f", "1,2",
                                          "\x00", "normal", "∞", " 7 "]))
    return ",".join(cells)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_nsl_kdd_rows_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    lines = [_mutate(line, data) if data.draw(st.booleans()) else line for line in _GOOD_NSL[:6]]
    path = tmp_path / "fuzz.txt"
    path.write_text("\n".join(lines) + "\n")
    for policy in ("error", "skip"):
        try:
            raw, rep = nsl_kdd.read(path, on_bad_row=policy)  # type: ignore[arg-type]
        except DataError:
            continue
        x = nsl_kdd.SCHEMA.transform(raw)
        assert np.isfinite(x).all() and rep.rows + rep.skipped >= len(raw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=400), keep_header=st.booleans())
def test_random_bytes_in_cicids_files_never_crash(tmp_path: Path, blob: bytes,
                                                   keep_header: bool) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes((_GOOD_CIC[0] + b"\n" if keep_header else b"") + blob + b"\n" + _GOOD_CIC[1])
    for policy in ("error", "skip"):
        try:
            raw, _ = cicids2017.read(path, on_bad_row=policy)  # type: ignore[arg-type]
        except DataError:
            continue
        assert np.isfinite(cicids2017.SCHEMA.transform(raw)).all()
