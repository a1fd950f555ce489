"""Fuzz of the DAG reader and the CAR importer with hostile inputs (issue 11, "Also").

Hypothesis builds DAGs node by node as an attacker would (any fan-out up to past the limit,
any depth, declared sizes honest, zero, too small or too large, children shared) and mutates
CAR files byte by byte; the real embedded store on disk reads or imports them. Every input must
end in bytes or one typed StoreError, within a time and memory budget. The update decoder has
its own fuzz in tests/federation/test_updates.py.
"""

from __future__ import annotations

import io
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs.car import import_car
from ipfs.embedded import EmbeddedStore
from ipfs.errors import StoreError
from ipfs.unixfs import Link, encode_inner
from tests.attacks.dags import Dag, fan_out_bomb, leaf, pb_ref

LIMIT = 1 << 20  # the caller's byte limit
SECONDS = 2.0  # per input, on a busy 2-core machine
PEAK_BYTES = 64 << 20

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    """One store on disk for every example (opening one costs about a second here); blocks are content-addressed."""
    return EmbeddedStore(tmp_path_factory.mktemp("fuzz") / "store")


_SIZES = st.sampled_from(["honest", "zero", "small", "large"])


@st.composite
def hostile_dags(draw: st.DrawFn) -> Dag:
    """A DAG of up to 6 levels whose nodes link, with chosen declared sizes, to children drawn from the level below."""
    blocks = []
    level = []
    for i in range(draw(st.integers(1, 4))):
        data = bytes([i]) * draw(st.sampled_from([0, 1, 100, 4096, 5000]))
        block = leaf(data)
        ref = pb_ref(block)
        blocks.append((ref, block))
        level.append((ref, len(data), len(block)))
    for _ in range(draw(st.integers(1, 6))):
        nodes = []
        for _ in range(draw(st.integers(1, 3))):
            fan = draw(st.sampled_from([1, 2, 3, 174, 175, 1000]))
            picks = draw(st.lists(st.integers(0, len(level) - 1), min_size=1, max_size=3))
            links = []
            for k in range(fan):
                ref, size, tsize = level[picks[k % len(picks)]]
                how = draw(_SIZES) if k < 3 else "honest"
                declared = {"honest": size, "zero": 0, "small": max(0, size - 1), "large": size + LIMIT}[how]
                links.append(Link(ref.multihash, declared, tsize if how == "honest" else declared))
            node = encode_inner(links)
            nref = pb_ref(node)
            blocks.append((nref, node))
            nodes.append((nref, sum(x.file_size for x in links), sum(x.tsize for x in links) + len(node)))
        level = nodes
    return Dag(level[-1][0], blocks)


def _bounded(call):  # noqa: ANN001, ANN202
    """Run ``call``; return (result or the StoreError, seconds, peak bytes). Anything else fails the test."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        out = call()
    except StoreError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        out = exc
    finally:
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert seconds < SECONDS, f"{seconds:.2f} s"
    assert peak < PEAK_BYTES, f"{peak} bytes"
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_dags())
def test_fuzz_the_dag_reader_with_hostile_dags(store: EmbeddedStore, dag: Dag) -> None:
    """Before: the reader followed any DAG it was handed (zero or false declared sizes, any fan-out,
    any depth), so a few KB of blocks kept `ipfs cat`, the coordinator's fetch and the audit walking
    for hours. Now every generated DAG is read, or refused by one StoreError, within 2 s and 64 MiB."""
    store.put_blocks(dag.blocks)
    out = _bounded(lambda: store.get(dag.cid, max_bytes=LIMIT))
    if isinstance(out, bytes):
        assert len(out) <= LIMIT


_SEED_CARS = [
    fan_out_bomb(levels=2, fan=3, leaf_data=b"x" * 5000, honest_sizes=True).car(),
    fan_out_bomb(levels=4).car(),
    fan_out_bomb(levels=1, fan=2, leaf_data=b"", honest_sizes=True).car(),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(_SEED_CARS))),
    st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
    st.integers(-64, 64),
    st.binary(max_size=64),
)
def test_fuzz_the_car_importer_with_mutated_files(
    store: EmbeddedStore, which: int, flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    """Before: only hand-written CAR files were tried. Now any mutation of three seed files (a
    valid one, the zero-size bomb, an empty file) imports, or is refused by one StoreError, within
    2 s and 64 MiB, and whatever imported reads back (or is refused) within the same budget."""
    data = bytearray(_SEED_CARS[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut < 0:
        data = data[:cut]
    data += tail
    out = _bounded(lambda: import_car(store, io.BytesIO(bytes(data))))
    if isinstance(out, list):
        for cid in out:  # whatever was imported reads back in bounded time too, or is refused by name
            _bounded(lambda cid=cid: store.get(cid, max_bytes=LIMIT))
