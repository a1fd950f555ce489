"""CAR v1 export/import: the byte layout `ipfs dag export` writes, round trips, and bad CARs."""

from __future__ import annotations

import io

import pytest

from ipfs import ContentNotFound, CorruptBlock, EmbeddedStore, cid_to_digest
from ipfs.builder import CHUNK_SIZE
from ipfs.car import CarError, export_car, import_car, iter_car
from tests.helpers.store import vector_content

DATA = vector_content(3 * CHUNK_SIZE + 77)


@pytest.fixture
def source(tmp_path):
    store = EmbeddedStore(tmp_path / "src")
    return store, store.put(DATA)


def export(store, cid) -> bytes:
    buf = io.BytesIO()
    export_car(store, cid, buf)
    return buf.getvalue()


def test_header_is_the_dag_cbor_go_car_writes(source) -> None:
    store, cid = source
    car = export(store, cid)
    # varint(56) {"roots": [tag42(0x00 ‖ multihash)], "version": 1}, keys in dag-cbor order.
    expected = (
        bytes([56, 0xA2, 0x65]) + b"roots" + bytes([0x81, 0xD8, 0x2A, 0x58, 0x23, 0x00, 0x12, 0x20])
        + cid_to_digest(cid) + bytes([0x67]) + b"version" + bytes([0x01])
    )
    assert car[: len(expected)] == expected
    # The first section is the root block under its CIDv0 (bare multihash).
    section = car[len(expected) :]
    assert section[1:3] == b"\x12\x20" or section[2:4] == b"\x12\x20"


def test_round_trip_into_another_store(source, tmp_path) -> None:
    store, cid = source
    car = export(store, cid)
    roots, blocks = iter_car(io.BytesIO(car))
    assert [str(r) for r in roots] == [cid]
    assert len(list(blocks)) == 5  # root + 4 leaves
    other = EmbeddedStore(tmp_path / "dst")
    assert import_car(other, io.BytesIO(car)) == [cid]
    assert other.get(cid) == DATA
    assert list(other.list()) == [cid]
    assert export(other, cid) == car  # deterministic: same DAG, same bytes


def test_export_of_unknown_cid_is_not_found(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    with pytest.raises(ContentNotFound):
        export(store, "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN")


def test_export_refuses_a_corrupt_block(source, tmp_path) -> None:
    store, cid = source
    leaf = max((tmp_path / "src" / "blocks").glob("*/*.data"), key=lambda p: p.stat().st_size)
    raw = bytearray(leaf.read_bytes())
    raw[100] ^= 1
    leaf.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlock):
        export(store, cid)


def test_import_refuses_a_tampered_block(source, tmp_path) -> None:
    store, cid = source
    car = bytearray(export(store, cid))
    car[-10] ^= 0xFF  # inside the last leaf
    other = EmbeddedStore(tmp_path / "dst")
    with pytest.raises(CorruptBlock, match="hash"):
        import_car(other, io.BytesIO(bytes(car)))
    assert list(other.list()) == []


def test_import_of_an_incomplete_car_pins_nothing(source, tmp_path) -> None:
    store, cid = source
    car = export(store, cid)
    # Cut the last section off: the DAG is incomplete but every present block is valid.
    roots, blocks = iter_car(io.BytesIO(car))
    sections = list(blocks)
    buf = io.BytesIO()
    from ipfs.car import encode_header
    from ipfs.unixfs import encode_varint

    buf.write(encode_header(roots))
    for ref, block in sections[:-1]:
        buf.write(encode_varint(34 + len(block)) + ref.multihash + block)
    other = EmbeddedStore(tmp_path / "dst")
    with pytest.raises(CarError, match="missing") as info:
        import_car(other, io.BytesIO(buf.getvalue()))
    assert str(sections[-1][0]) in str(info.value)
    assert list(other.list()) == []


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "empty"),
        (b"\x05abc", "truncated"),
        (b"\x03\x01\x02\x03", "not a map|CBOR"),
        (bytes([10, 0xA1, 0x67]) + b"version" + b"\x02", "v2"),
        (bytes([10, 0xA1, 0x67]) + b"version" + b"\x03", "version"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint|plausible"),
    ],
)
def test_not_a_car_is_refused(blob, message, tmp_path) -> None:
    with pytest.raises(CarError, match=message):
        import_car(EmbeddedStore(tmp_path), io.BytesIO(blob))


def test_truncated_section_is_refused(source, tmp_path) -> None:
    store, cid = source
    car = export(store, cid)
    with pytest.raises(CarError, match="truncated"):
        import_car(EmbeddedStore(tmp_path / "dst"), io.BytesIO(car[:-5]))
