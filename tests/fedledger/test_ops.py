"""Operator plumbing: Prometheus metrics and /healthz on loopback, fed by the services' events; JSON logs with the round."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fedledger.ops import fan_out
from fedledger.ops.logs import RoundTracker, json_handler
from fedledger.ops.metrics import ServiceMetrics
from fedledger.ops.server import MetricsPortUnavailable, MetricsServer
from tests.helpers.runtime import ROOT
from tests.helpers.signals import ctrl_c_reaches_it


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(fedledger_\S+) (\S+)$", text, re.M)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_exporter_serves_metrics_and_health_on_loopback_and_counters_move_with_events() -> None:
    metrics = ServiceMetrics("coordinator")
    with MetricsServer(metrics, 0) as server:
        assert server.httpd.server_address[0] == "127.0.0.1"
        before = scrape(server.url)
        assert before["fedledger_rounds_opened_total"] == 0 and "fedledger_update_fetch_seconds_count" in before
        metrics.on_event("opened", {"round": 3, "deadline": 1, "gas": 120_000})
        metrics.on_event("fetching", {"round": 3, "count": 2})
        metrics.on_event("fetched", {"round": 3, "participant": "0xa", "seconds": 0.02, "error": None})
        metrics.on_event("fetched", {"round": 3, "participant": "0xb", "seconds": 1.5, "error": "unavailable"})
        metrics.on_event("retry", {"error": "cannot reach …", "kind": "RpcUnavailable"})
        metrics.on_event("finalized", {"round": 3, "global": "Qm", "manifest": "Qm", "gas": 300_000})
        metrics.on_event("aborted", {"round": 4, "reason": "quorum", "gas": 50_000})
        after = scrape(server.url)
        assert after["fedledger_rounds_opened_total"] == 1 and after["fedledger_rounds_finalized_total"] == 1
        assert after["fedledger_rounds_aborted_total"] == 1 and after["fedledger_submissions_total"] == 2
        assert after["fedledger_update_fetch_seconds_count"] == 2 and after["fedledger_update_fetch_seconds_sum"] == pytest.approx(1.52)
        assert after['fedledger_errors_total{kind="RpcUnavailable"}'] == 1
        assert after['fedledger_gas_used_total{function="openRound"}'] == 120_000
        assert after['fedledger_gas_used_total{function="finalizeRound"}'] == 300_000
        assert after["fedledger_last_round_id"] == 4
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            health = json.loads(r.read())
        assert r.status == 200 and health["status"] == "ok" and health["role"] == "coordinator"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "/", timeout=5)
        assert missing.value.code == 404
        with pytest.raises(MetricsPortUnavailable, match="cannot serve metrics"):
            MetricsServer(ServiceMetrics("x"), server.port)  # taken


def test_the_services_events_drive_the_metrics_in_a_real_round(env) -> None:
    from tests.helpers.runtime import run_round

    coordinator, participant = ServiceMetrics("coordinator"), ServiceMetrics("participant")
    outcome = run_round(env, [0, 1], env.coordinator(on_event=coordinator.on_event))
    assert outcome.finalized
    got = {m: v for m, v in _samples(coordinator).items()}
    assert got["fedledger_rounds_opened_total"] == 1 and got["fedledger_rounds_finalized_total"] == 1
    assert got["fedledger_submissions_total"] == 2 and got["fedledger_update_fetch_seconds_count"] == 2
    assert got['fedledger_gas_used_total{function="finalizeRound"}'] == outcome.gas_used
    assert got["fedledger_last_round_id"] == 1

    env.coordinator().step(None)  # round 2 opens
    member = env.participant(2, on_event=participant.on_event)
    assert member.step() is not None  # trains and commits
    env.close_submissions(2)
    member.step()  # reveals
    got = _samples(participant)
    assert got["fedledger_submissions_total"] == 1 and got["fedledger_update_fetch_seconds_count"] == 1
    assert got['fedledger_gas_used_total{function="submitUpdate"}'] > 0 and got["fedledger_last_round_id"] == 2


def _samples(metrics: ServiceMetrics) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(fedledger_\S+) (\S+)$", text, re.M)}


def test_json_logs_carry_the_round_of_the_latest_event() -> None:
    tracker, stream = RoundTracker(), io.StringIO()
    log = logging.getLogger("fedledger.test-json")
    log.propagate = False
    log.addHandler(json_handler(tracker, stream))
    log.setLevel(logging.INFO)
    try:
        log.info("before any round")
        fan_out(tracker.on_event, None)("opened", {"round": 7})
        log.warning("transient failure, retrying: %s", "node restarting", extra={"attempt": 2})
        fan_out(tracker.on_event)("submitted", {"round_id": 8, "gas_used": 1})
        log.info("next")
    finally:
        log.handlers.clear()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["round"] for line in lines] == [None, 7, 8]
    assert lines[1]["level"] == "warning" and lines[1]["message"] == "transient failure, retrying: node restarting"
    assert lines[1]["attempt"] == 2 and lines[1]["logger"] == "fedledger.test-json" and lines[1]["time"].endswith("Z")


def test_coordinator_run_serves_metrics_and_logs_json_lines(env, tmp_path: Path) -> None:
    """The daemon as an operator starts it: --metrics-port and --log-format json on a real small federation."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedledger", "coordinator", "run", *env.common_args(), "--rounds", "2",
         "--round-seconds", "120", "--metrics-port", str(port), "--log-format", "json", "-v",
         "--holdout-dir", str(env.tmp / "holdouts")],
        cwd=ROOT, env=dict(env.cli_env(None), FEDLEDGER_PRIVATE_KEY=env.coordinator_key.key.hex()), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        preexec_fn=ctrl_c_reaches_it,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        got = _wait(url, lambda m: m.get("fedledger_rounds_opened_total") == 1, proc)
        assert got["fedledger_last_round_id"] == 1
        for i in range(3):
            assert env.participant(i).step() is not None  # commit: every eligible member has, so submissions close
        for i in range(3):
            env.participant(i).step()  # reveal
        got = _wait(url, lambda m: m.get("fedledger_rounds_opened_total") == 2, proc)  # round 1 finalised, round 2 open
        assert got["fedledger_rounds_finalized_total"] == 1 and got["fedledger_submissions_total"] == 3
        assert got["fedledger_update_fetch_seconds_count"] == 3 and got["fedledger_last_round_id"] == 2
        with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
            assert json.loads(r.read())["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    finalised = [line for line in logs if line["message"].startswith("finalised round 1")]
    assert finalised and finalised[0]["round"] == 1 and finalised[0]["logger"] == "fedledger.coordinator"
    assert env.coordinator_key.key.hex() not in err.decode()


def _wait(url: str, done, proc: subprocess.Popen, timeout: float = 120.0) -> dict[str, float]:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the coordinator exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            last = scrape(url)
            if done(last):
                return last
        except OSError:
            pass  # not listening yet
        time.sleep(0.3)
    raise AssertionError(f"metrics never reached the expected state: {last}")


