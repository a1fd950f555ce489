"""The update codec: round trips, the header binding, and hostile inputs."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
import zstandard
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.model import ModelSpec
from federation.updates import (
    HEADER_SIZE,
    CodecParams,
    InvalidUpdate,
    UpdateHeader,
    compress_delta,
    decode_update,
    encode_update,
    encode_update_with_reconstruction,
    payload_size,
    read_header,
)

SPEC = ModelSpec("test/v1", 6, (4,), ("normal", "dos"))
ADDR = "0x" + "5a" * 20
BASE = "11" * 32


def _delta(seed: int = 0, spec: ModelSpec = SPEC) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in spec.tensor_shapes().items()}


def _header(codec: CodecParams = CodecParams(), **kw: object) -> UpdateHeader:
    fields = dict(participant=ADDR, round_id=3, base_model=BASE, spec_digest=SPEC.digest(), num_samples=120, epsilon_milli=1500, codec=codec)
    fields.update(kw)
    return UpdateHeader(**fields)  # type: ignore[arg-type]


def _blob(header: UpdateHeader, raw: bytes, **zkw: object) -> bytes:
    return header.pack() + zstandard.ZstdCompressor(**zkw).compress(raw)  # type: ignore[arg-type]


def _reason(data: bytes, spec: ModelSpec = SPEC, **kw: object) -> str:
    with pytest.raises(InvalidUpdate) as err:
        decode_update(data, spec, **kw)  # type: ignore[arg-type]
    assert str(err.value) and err.value.hint
    return err.value.reason


def test_dense_round_trip_is_exact_and_binds_the_header() -> None:
    delta = _delta()
    header = _header()
    data = encode_update(header, delta, SPEC)
    got_header, got = decode_update(data, SPEC)
    assert got_header == header == read_header(data)
    assert got_header.participant == to_checksum_address(ADDR)
    assert (got_header.round_id, got_header.base_model, got_header.num_samples, got_header.epsilon_milli) == (3, BASE, 120, 1500)
    assert all(np.array_equal(delta[k], got[k]) and got[k].dtype == np.float32 for k in delta)
    assert encode_update(header, delta, SPEC) == data  # deterministic
    assert encode_update(header, delta) == data  # layout from the delta itself is the same


def test_address_is_stored_checksummed() -> None:
    header = _header(participant="0xd8da6bf26964af9d7eed9e03e53415d37aa96045")
    assert header.participant == "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"


def test_int8_error_is_within_half_a_step_per_block() -> None:
    delta = _delta(1)
    delta["layers.00.weight"][0, :3] = [40.0, -0.001, 0.002]  # one outlier: per-tensor scale suffers, blocks less
    for block in (0, 8):
        codec = CodecParams(quant="int8", block=block)
        _, got = decode_update(encode_update(_header(codec), delta, SPEC), SPEC)
        for k, x in delta.items():
            flat, out = x.reshape(-1), got[k].reshape(-1)
            size = flat.size if block == 0 else block
            for start in range(0, flat.size, size):
                step = np.abs(flat[start : start + size]).max() / 127
                assert np.all(np.abs(out[start : start + size] - flat[start : start + size]) <= step / 2 * 1.0001 + 1e-12)


def test_topk_keeps_exactly_the_largest_entries() -> None:
    delta = _delta(2)
    codec = CodecParams(topk=0.25)
    _, got = decode_update(encode_update(_header(codec), delta, SPEC), SPEC)
    for k, x in delta.items():
        flat, out = x.reshape(-1), got[k].reshape(-1)
        kept = max(1, -(-flat.size * 250_000 // 1_000_000))
        nz = np.flatnonzero(out)
        assert nz.size == kept
        assert set(nz) == set(np.argsort(-np.abs(flat), kind="stable")[:kept])
        assert np.array_equal(out[nz], flat[nz])


def test_topk_ties_go_to_the_lowest_indices() -> None:
    delta = {k: np.ones(s, dtype=np.float32) for k, s in SPEC.tensor_shapes().items()}
    _, got = decode_update(encode_update(_header(CodecParams(topk=0.25)), delta, SPEC), SPEC)
    assert np.flatnonzero(got["layers.00.weight"].reshape(-1)).tolist() == [0, 1, 2, 3, 4, 5]


def test_reconstruction_is_what_the_receiver_decodes() -> None:
    codec = CodecParams(topk=0.5, quant="int8", block=8)
    data, recon = encode_update_with_reconstruction(_header(codec), _delta(3), SPEC)
    _, got = decode_update(data, SPEC)
    assert all(np.array_equal(recon[k], got[k]) for k in got)


def test_payload_size_matches_and_compression_shrinks_a_real_sized_update() -> None:
    spec = ModelSpec("test/v1", 120, (128, 64), ("normal", "a", "b", "c", "d"))
    delta = _delta(4, spec)
    sizes = {}
    for text in ("none", "int8", "topk:0.01+int8"):
        codec = CodecParams.parse(text)
        raw, _ = compress_delta(spec, codec, delta)
        assert len(raw) == payload_size(spec, codec)
        header = _header(codec, spec_digest=spec.digest())
        sizes[text] = len(encode_update(header, delta, spec))
    dense = 4 * spec.num_parameters()
    assert sizes["none"] > dense * 0.9
    assert sizes["int8"] < dense / 3.5
    assert sizes["topk:0.01+int8"] < dense / 100


@pytest.mark.parametrize(
    "text, expected",
    [
        ("none", CodecParams()),
        ("int8", CodecParams(quant="int8")),
        ("int8:256", CodecParams(quant="int8", block=256)),
        ("topk:0.01+int8:256", CodecParams(topk=0.01, quant="int8", block=256)),
        ("topk:0.05+int8+zstd:9", CodecParams(topk=0.05, quant="int8", zstd_level=9)),
        ("topk:0.1", CodecParams(topk=0.1)),
    ],
)
def test_codec_strings(text: str, expected: CodecParams) -> None:
    assert CodecParams.parse(text) == expected
    assert CodecParams.parse(expected.describe()).describe() == expected.describe()


@pytest.mark.parametrize("text", ["int9", "topk:abc", "topk:2+int8", "int8:3", "int8:block=x", "zstd:40"])
def test_bad_codec_strings(text: str) -> None:
    with pytest.raises(InvalidUpdate) as err:
        CodecParams.parse(text)
    assert err.value.reason == "codec"


@pytest.mark.parametrize(
    "kw",
    [
        {"participant": "0x1234"},
        {"participant": "not an address"},
        {"base_model": "zz" * 32},
        {"spec_digest": "00" * 31},
        {"num_samples": 0},
        {"round_id": -1},
        {"epsilon_milli": 1.5},
    ],
)
def test_bad_header_fields_are_rejected_when_encoding(kw: dict) -> None:
    with pytest.raises(InvalidUpdate) as err:
        _header(**kw)
    assert err.value.reason == "header"


def test_encoder_rejects_bad_deltas() -> None:
    delta = _delta()
    with pytest.raises(InvalidUpdate) as err:
        encode_update(_header(), {**delta, "layers.00.bias": np.full(4, np.inf, np.float32)}, SPEC)
    assert err.value.reason == "non-finite"
    with pytest.raises(InvalidUpdate) as err:
        encode_update(_header(), {**delta, "layers.00.bias": np.zeros(5, np.float32)}, SPEC)
    assert err.value.reason == "shape-mismatch"
    with pytest.raises(InvalidUpdate) as err:
        encode_update(_header(spec_digest="22" * 32), delta, SPEC)
    assert err.value.reason == "spec-mismatch"


# --- hostile inputs -------------------------------------------------------


def _valid(codec: CodecParams = CodecParams()) -> bytes:
    return encode_update(_header(codec), _delta(), SPEC)


def _patch(data: bytes, offset: int, fmt: str, value: object) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def test_header_level_rejections() -> None:
    data = _valid()
    assert _reason(data[:50]) == "truncated"
    assert _reason(b"GZIP" + data[4:]) == "magic"
    assert _reason(_patch(data, 4, "<H", 2)) == "version"  # an update of the format before chain and ledger were bound
    assert _reason(_patch(data, 6, "<B", 0x80)) == "header"  # a flag this build does not know
    assert _reason(_patch(data, 127, "<Q", 0)) == "header"  # zero samples
    assert _reason(_patch(data, 143, "<I", 2_000_000)) == "codec"  # top-k over 100 %
    assert _reason(_patch(data, 147, "<B", 7)) == "codec"  # unknown quantisation
    assert _reason(_patch(data, 148, "<B", 0)) == "codec"  # zstd level 0
    assert _reason(_patch(data, 149, "<I", 64)) == "codec"  # float32 with a block size
    assert _reason(data, max_bytes=HEADER_SIZE + 10) == "too-large"
    other = ModelSpec("test/v1", 6, (5,), ("normal", "dos"))
    assert _reason(data, other) == "spec-mismatch"


def test_frame_level_rejections() -> None:
    data = _valid()
    header = read_header(data)
    raw, _ = compress_delta(SPEC, header.codec, _delta())
    assert _reason(data + b"\0") == "trailing-bytes"
    assert _reason(data[:-3]) == "zstd"
    assert _reason(data[:HEADER_SIZE] + b"not zstd at all") == "zstd"
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"abcd"
    assert _reason(data[:HEADER_SIZE] + skippable + data[HEADER_SIZE:]) == "zstd"
    assert _reason(_blob(header, raw + b"\0\0\0\0")) == "size-mismatch"
    assert _reason(_blob(header, raw[:-4])) == "size-mismatch"
    assert _reason(_blob(header, raw, write_content_size=False)) == "size-mismatch"


def test_decompression_bomb_is_rejected_without_inflating() -> None:
    spec = ModelSpec("test/v1", 100, (100,), ("normal", "dos"))  # 40 KiB dense: room for the bomb's frame
    header = _header(spec_digest=spec.digest())
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (128 << 20))  # 128 MiB of zeros in a few KiB
    assert len(bomb) < 4 * spec.num_parameters()
    start = time.perf_counter()
    assert _reason(header.pack() + bomb, spec) == "size-mismatch"
    assert time.perf_counter() - start < 1.0


def test_frame_that_lies_about_its_size_is_rejected() -> None:
    header = _header()
    expected = payload_size(SPEC, header.codec)
    frame = bytearray(zstandard.ZstdCompressor().compress(b"\1" * (expected + 60)))
    # Frame header: magic (4), descriptor (1); single-segment with a 1-byte content size right after.
    assert frame[4] & 0x20 and frame[4] >> 6 == 0
    frame[5] = expected
    assert _reason(header.pack() + bytes(frame)) == "zstd"


def test_payload_level_rejections() -> None:
    # Top-k 25 % of (4, 24, 2, 8) entries keeps (1, 6, 1, 2): 40 bytes of indices, 16 of scales, 10 of values.
    codec = CodecParams(topk=0.25, quant="int8")
    header = _header(codec)
    raw, _ = compress_delta(SPEC, codec, _delta())
    assert len(raw) == 66 == payload_size(SPEC, codec)

    def with_raw(offset: int, value: bytes) -> bytes:
        buf = bytearray(raw)
        buf[offset : offset + len(value)] = value
        return _blob(header, bytes(buf))

    assert decode_update(_blob(header, raw), SPEC)[0] == header
    assert _reason(with_raw(0, b"\4\0\0\0")) == "indices"  # layers.00.bias has 4 entries: index 4 is out
    # layers.00.weight's 6 gaps, byte-plane shuffled (24 bytes at 4..28): every gap 2^32-1 overflows the tensor
    assert _reason(with_raw(4, b"\xff" * 24)) == "indices"
    assert _reason(with_raw(40, struct.pack("<f", float("nan")))) == "scales"
    assert _reason(with_raw(40, struct.pack("<f", -1.0))) == "scales"
    assert _reason(with_raw(65, b"\x80")) == "values"  # int8 -128
    overflow = with_raw(40, struct.pack("<f", 3.0e38))
    buf = bytearray(raw)
    buf[40:44] = struct.pack("<f", 3.0e38)
    buf[56] = 127
    assert _reason(_blob(header, bytes(buf))) == "non-finite"  # 127 * 3e38 overflows float32
    assert overflow  # the scale alone is finite; only the product overflows
    dense = CodecParams()
    raw_dense, _ = compress_delta(SPEC, dense, _delta())
    buf = bytearray(raw_dense)
    buf[0:4] = struct.pack("<f", float("inf"))
    assert _reason(_blob(_header(dense), bytes(buf))) == "non-finite"


_FUZZ_CODECS = [CodecParams(), CodecParams(quant="int8", block=8), CodecParams(topk=0.25, quant="int8")]


def _decode_is_total(data: bytes) -> None:
    try:
        header, delta = decode_update(data, SPEC)
    except InvalidUpdate as exc:
        assert exc.reason and str(exc)
        return
    assert {k: v.shape for k, v in delta.items()} == SPEC.tensor_shapes()
    assert all(np.all(np.isfinite(v)) for v in delta.values())
    assert header.spec_digest == SPEC.digest()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    _decode_is_total(data)
    _decode_is_total(_valid()[:HEADER_SIZE] + data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(_FUZZ_CODECS))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(-40, 40),
)
def test_fuzz_mutated_updates_never_crash(which: int, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_valid(_FUZZ_CODECS[which]))
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut < 0:
        data = data[:cut]
    elif cut > 0:
        data += bytes(cut)
    _decode_is_total(bytes(data))
