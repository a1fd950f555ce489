"""The one retry policy and the overall deadline, alone and where they reach a real network call."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from contracts.errors import RpcUnavailable
from faults import (
    Backoff,
    Deadline,
    DeadlineExceeded,
    FedLedgerError,
    current_deadline,
    deadline,
    remaining,
    retrying,
    run_in_context,
)
from federation.fetch import fetch_update
from ipfs import ContentNotFound, StoreUnavailable
from ipfs.kubo import KuboStore


class Flaky(FedLedgerError):
    transient = True


class Broken(FedLedgerError):
    pass


def _call(fn, **kw):  # noqa: ANN001, ANN003, ANN202
    for attempt in retrying(**kw):
        with attempt:
            return fn()
    raise AssertionError("unreachable")


def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    calls = []

    def fn() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Flaky("node restarting")
        return "ok"

    assert _call(fn, attempts=5, initial=0.01, maximum=0.02) == "ok"
    assert len(calls) == 3


def test_permanent_errors_propagate_at_once_and_attempts_are_bounded() -> None:
    calls = []

    def permanent() -> None:
        calls.append(1)
        raise Broken("bad input")

    with pytest.raises(Broken):
        _call(permanent, attempts=5, initial=0.01)
    assert len(calls) == 1

    def flaky() -> None:
        calls.append(1)
        raise Flaky("still down")

    calls.clear()
    with pytest.raises(Flaky):
        _call(flaky, attempts=3, initial=0.01, maximum=0.01)
    assert len(calls) == 3


def test_other_types_are_retried_only_when_named() -> None:
    calls = []

    def not_yet() -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ContentNotFound("Qm…")
        return "here"

    with pytest.raises(ContentNotFound):
        _call(not_yet, attempts=3, initial=0.01)
    calls.clear()
    assert _call(not_yet, attempts=3, initial=0.01, also=(ContentNotFound,)) == "here"


def test_the_deadline_stops_retrying_before_a_sleep_would_overrun_it() -> None:
    t0 = time.monotonic()
    with deadline(0.5), pytest.raises(Flaky):
        _call(lambda: (_ for _ in ()).throw(Flaky("down")), attempts=None, initial=0.1, maximum=0.2)
    assert time.monotonic() - t0 < 0.8


def test_waits_are_jittered_so_members_do_not_retry_in_step() -> None:
    b = Backoff(initial=1.0, maximum=8.0)
    delays = [b.next_delay() for _ in range(6)]
    assert all(0.5 <= d <= 8.0 for d in delays)
    firsts = {Backoff(initial=1.0).next_delay() for _ in range(20)}
    assert len(firsts) > 10  # random, not one fixed schedule
    b.reset()
    assert b.failures == 0


def test_nested_deadlines_keep_the_tighter_and_reach_other_threads() -> None:
    assert current_deadline() is None and remaining(7.0) == 7.0
    with deadline(10):
        with deadline(0.2) as inner:
            assert remaining(5.0) <= 0.2
            with deadline(30) as wider:
                assert wider is inner  # an inner block cannot extend its caller's budget
            with ThreadPoolExecutor(1) as pool:
                seen = pool.submit(run_in_context(lambda: current_deadline())).result()
            assert seen is inner
        assert 9 < remaining(100) <= 10
    d = Deadline.after(0)
    with pytest.raises(DeadlineExceeded, match="time budget"):
        d.check("walking the DAG")


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers: a hung node."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_a_hung_kubo_node_costs_the_callers_deadline_not_its_own_timeouts() -> None:
    """Before: a fetch from a node that never answers waited 60 s per attempt, four attempts."""
    srv, port = _silent_server()
    try:
        store = KuboStore(f"/ip4/127.0.0.1/tcp/{port}", timeout=60.0, retries=3)
        t0 = time.monotonic()
        data, reason = fetch_update(store, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", max_bytes=1 << 20,
                                    until=Deadline.after(1.0))  # fmt: skip
        assert data is None and reason == "store-unavailable"
        assert time.monotonic() - t0 < 2.5
        with deadline(0.5), pytest.raises(StoreUnavailable):
            store.version()
        assert StoreUnavailable.transient
    finally:
        srv.close()


def test_a_hung_rpc_node_costs_the_callers_deadline() -> None:
    from contracts.client import Ledger

    srv, port = _silent_server()
    try:
        t0 = time.monotonic()
        with deadline(0.5), pytest.raises(RpcUnavailable):
            Ledger.attach(f"http://127.0.0.1:{port}", "0x" + "11" * 20, request_timeout=60.0)
        assert time.monotonic() - t0 < 2.0
        assert RpcUnavailable.transient
    finally:
        srv.close()
