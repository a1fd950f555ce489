"""Reading flow files block by block: the same rows, values, line numbers and errors as the loaders."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import flows.stream as stream
from flows import DataError, MalformedRow
from flows.loaders import cicids2017, nsl_kdd, unsw_nb15
from flows.loaders.rows import LoadReport, concat_raw
from flows.schema import CodedColumn, LocalStats, Normaliser
from flows.stream import SchemaMismatch, check_format, iter_chunks, sniff_format

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = [
    ("nsl-kdd", nsl_kdd, "nsl_kdd_train.txt"),
    ("nsl-kdd", nsl_kdd, "nsl_kdd_test.txt"),
    ("cicids2017", cicids2017, "cicids2017_thursday.csv"),
    ("unsw-nb15", unsw_nb15, "unsw_nb15_1.csv"),
    ("unsw-nb15", unsw_nb15, "unsw_nb15_testing-set.csv"),
]
BAD = [("nsl-kdd", nsl_kdd, "nsl_kdd_bad.txt"), ("cicids2017", cicids2017, "cicids2017_bad.csv"),
       ("unsw-nb15", unsw_nb15, "unsw_nb15_bad.csv")]  # fmt: skip


def _streamed(name: str, path: Path, **kw) -> tuple:  # noqa: ANN003
    report = LoadReport()
    chunks = list(iter_chunks(name, path, report=report, endpoints=False, **kw))
    return concat_raw([c.raw for c in chunks]), report, chunks


def _same(a, b) -> None:  # noqa: ANN001
    assert len(a) == len(b)
    for k in a.numeric:
        np.testing.assert_array_equal(a.numeric[k], b.numeric[k], err_msg=k)
    for k in a.categorical:
        assert np.asarray(a.categorical[k]).tolist() == np.asarray(b.categorical[k]).tolist(), k
    assert a.families.tolist() == b.families.tolist()
    assert a.source_labels.tolist() == b.source_labels.tolist()
    assert a.lines.tolist() == b.lines.tolist()


@pytest.mark.parametrize(("name", "module", "file"), CASES, ids=[c[2] for c in CASES])
@pytest.mark.parametrize("block", [1024, 1 << 20], ids=["1KiB-blocks", "one-block"])
def test_streaming_gives_the_loaders_rows_values_and_line_numbers(name: str, module, file: str, block: int) -> None:  # noqa: ANN001
    whole, rep = module.read(DATA / file)
    got, report, chunks = _streamed(name, DATA / file, block_bytes=block)
    _same(whole, got)
    assert (report.rows, report.skipped, report.blank) == (rep.rows, rep.skipped, rep.blank)
    assert sum(c.bytes_read for c in chunks) == (DATA / file).stat().st_size
    if block == 1024:
        assert len(chunks) > 1


@pytest.mark.parametrize(("name", "module", "file"), CASES, ids=[c[2] for c in CASES])
def test_the_fast_path_and_the_row_parser_agree(name: str, module, file: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    fast, _, _ = _streamed(name, DATA / file)
    monkeypatch.setattr(stream, "_fast_block", lambda *a, **k: None)  # every block through the loaders' row parser
    slow, _, _ = _streamed(name, DATA / file)
    _same(fast, slow)


def test_clean_blocks_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(stream, "parse_rows", lambda *a, **k: calls.append(1) or pytest.fail("row parser used"))
    raw, report, _ = _streamed("nsl-kdd", DATA / "nsl_kdd_train.txt")
    assert len(raw) == report.rows == 31 and not calls


@pytest.mark.parametrize(("name", "module", "file"), BAD, ids=[c[2] for c in BAD])
def test_bad_rows_fail_or_are_skipped_exactly_as_the_loaders_do(name: str, module, file: str) -> None:  # noqa: ANN001
    with pytest.raises(MalformedRow) as whole:
        module.read(DATA / file)
    with pytest.raises(MalformedRow) as streamed:
        _streamed(name, DATA / file, block_bytes=1024)
    assert (streamed.value.line, streamed.value.reason) == (whole.value.line, whole.value.reason)
    raw, rep = module.read(DATA / file, on_bad_row="skip")
    got, report, _ = _streamed(name, DATA / file, on_bad_row="skip")
    _same(raw, got)
    assert report.skipped == rep.skipped and report.reasons == rep.reasons


def test_a_line_over_the_limit_is_a_bad_row_and_memory_stays_bounded(tmp_path: Path) -> None:
    rows = (DATA / "nsl_kdd_train.txt").read_bytes().splitlines(keepends=True)
    f = tmp_path / "long.txt"
    f.write_bytes(b"".join(rows[:3]) + b"x" * 5000 + b"\n" + b"".join(rows[3:]))
    with pytest.raises(MalformedRow, match="line longer than") as info:
        list(iter_chunks("nsl-kdd", f, block_bytes=1024, max_line_bytes=2048))
    assert info.value.line == 4
    report = LoadReport()
    got = concat_raw([c.raw for c in iter_chunks("nsl-kdd", f, on_bad_row="skip", block_bytes=1024,
                                                 max_line_bytes=2048, report=report)])  # fmt: skip
    assert len(got) == 31 and report.skipped == 1 and got.lines.tolist()[3] == 5


def test_one_pass_over_a_large_file_holds_a_few_blocks(tmp_path: Path) -> None:
    block = (DATA / "nsl_kdd_train.txt").read_bytes()
    f = tmp_path / "big.txt"
    with open(f, "wb") as fh:
        for _ in range(2000):  # 62,000 rows, ~9 MB
            fh.write(block)
    schema = nsl_kdd.SCHEMA
    raw, _ = nsl_kdd.read(DATA / "nsl_kdd_train.txt")
    norm = Normaliser.from_stats(schema, LocalStats.of(schema, schema.transform(raw)))
    pool = pa.default_memory_pool()
    tracemalloc.start()
    rows = 0
    for chunk in iter_chunks("nsl-kdd", f, block_bytes=256 << 10):
        rows += len(schema.features(chunk.raw, norm))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rows == 62_000
    # Python and numpy memory: a few blocks' worth, not the file (~9 MB) nor its features (~30 MB).
    assert peak < 8 << 20, peak
    assert pool.max_memory() < 32 << 20


def test_endpoints_come_from_the_files_that_have_them(tmp_path: Path) -> None:
    header, *rows = (DATA / "cicids2017_thursday.csv").read_text(encoding="latin-1").splitlines()
    lines = ["Flow ID, Source IP, Source Port, Destination IP," + header + ", Protocol, Timestamp"]
    for i, r in enumerate(rows):
        lines.append(f"x{i}, 203.0.113.{i}, {40000 + i}, 10.0.0.{i}," + r + ", 6, 7/7/2017 8:00" if r.strip(",") else r)
    f = tmp_path / "generated.csv"
    f.write_text("\n".join(lines) + "\n", encoding="latin-1")  # the fixture's bytes as they are
    got = concat_raw([c.raw for c in iter_chunks("cicids2017", f)])
    assert len(got) == 22
    assert np.asarray(got.extras["src_ip"]).tolist()[:2] == ["203.0.113.0", "203.0.113.1"]
    assert np.asarray(got.extras["dst_port"]).tolist()[0] == "53"
    assert set(got.extras) == {"src_ip", "src_port", "dst_ip", "dst_port", "protocol"}
    unsw = concat_raw([c.raw for c in iter_chunks("unsw-nb15", DATA / "unsw_nb15_1.csv")])
    assert np.asarray(unsw.extras["src_ip"]).tolist()[0] == "59.166.0.1"
    assert np.asarray(unsw.extras["src_port"]).tolist()[0] == "14612"
    nsl = concat_raw([c.raw for c in iter_chunks("nsl-kdd", DATA / "nsl_kdd_train.txt")])
    assert set(nsl.extras) == {"protocol"}


def test_a_file_of_another_schema_is_named_as_such() -> None:
    assert sniff_format(DATA / "cicids2017_thursday.csv") == "cicids2017"
    assert sniff_format(DATA / "unsw_nb15_1.csv") == "unsw-nb15"
    assert sniff_format(DATA / "unsw_nb15_testing-set.csv") == "unsw-nb15"
    assert sniff_format(DATA / "nsl_kdd_train.txt") == "nsl-kdd"
    with pytest.raises(SchemaMismatch, match="looks like a cicids2017 file"):
        check_format(DATA / "cicids2017_thursday.csv", "nsl-kdd")
    with pytest.raises(DataError, match="no file reader"):
        list(iter_chunks("synthetic", DATA / "nsl_kdd_train.txt"))


def test_features_equal_normalising_the_transform_and_coded_columns_encode_like_strings() -> None:
    raw, _ = cicids2017.read(DATA / "cicids2017_thursday.csv")
    schema = cicids2017.SCHEMA
    norm = Normaliser.from_stats(schema, LocalStats.of(schema, schema.transform(raw)))
    np.testing.assert_array_equal(schema.features(raw, norm), norm.apply(schema.transform(raw)))
    values, codes = np.unique(np.asarray(raw.categorical["Destination Port"], dtype=object), return_inverse=True)
    coded = CodedColumn(values.astype(object), codes)
    assert np.asarray(coded).tolist() == np.asarray(raw.categorical["Destination Port"]).tolist()
    raw.categorical["Destination Port"] = coded
    np.testing.assert_array_equal(schema.features(raw, norm), norm.apply(schema.transform(raw)))
