"""The explorer in a real headless Chromium (Debian's, through its chromedriver): the pages of a
federation load, their numbers are the audit's, a tampered round shows as a mismatch, the page
follows a new round by itself, and the demo's ``--explore`` serves its federation until Ctrl-C.

Screenshots go to each test's tmp dir; the tests print where."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from contracts.anvil import LocalAnvil
from fedledger.audit import Auditor
from fedledger.explorer import ExplorerSettings, start_explorer
from tests.helpers.browser import chromium, full_page_screenshot, why_no_browser
from tests.helpers.explorer import finalize_with_inflated_scores
from tests.helpers.runtime import ROOT, make_env, run_round
from tests.helpers.signals import ctrl_c_reaches_it

pytestmark = pytest.mark.skipif(why_no_browser() is not None, reason=str(why_no_browser()))


def wait_for(what: str, check, seconds: float = 120.0, every: float = 0.3):  # noqa: ANN001, ANN201
    until = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def all_audited(url: str, rounds: int):  # noqa: ANN201
    def check():  # noqa: ANN202
        try:
            got = httpx.get(url + "api/rounds", timeout=10).json()
        except httpx.HTTPError:
            return None
        return got if len(got) == rounds and all(r["audit"] for r in got) else None

    return check


def css(driver, selector: str):  # noqa: ANN001, ANN201
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_the_pages_of_a_federation_with_a_tampered_round(tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with LocalAnvil(accounts=8) as chain:
        env = make_env(tmp_path / "fed", chain)
        run_round(env, [0, 1, 2])
        run_round(env, [0, 1])
        tampered = finalize_with_inflated_scores(env)
        report = Auditor(env.ledger, env.store, descriptor_cid=env.fed.descriptor_cid).audit().to_dict()
        audit = {r["round_id"]: r for r in report["rounds"]}
        settings = ExplorerSettings(cache_dir=tmp_path / "cache", poll_seconds=0.5)
        with start_explorer(env.ledger, env.store, settings=settings) as ex, chromium() as browser:
            wait_for("every verdict", all_audited(ex.url, 3))
            browser.get(ex.url)
            rows = {int(tr.get_attribute("data-round")): tr.get_attribute("data-verdict") for tr in css(browser, "#rounds tr[data-round]")}
            assert rows == {1: "verified", 2: "verified", tampered: "mismatch"}
            assert css(browser, "#privacy-mode")[0].text == "public"
            totals = {tr.get_attribute("data-address"): int(tr.find_element("css selector", ".total-score").text)
                      for tr in css(browser, "#members tr[data-address]")}  # fmt: skip
            assert totals == {o.address: env.ledger.total_score(o.address) for o in env.orgs}
            assert css(browser, "svg.chart polyline.series"), "the charts draw their series"
            print(f"\nexplorer screenshot: {full_page_screenshot(browser, shots / 'overview.png')}")

            browser.get(f"{ex.url}rounds/{tampered}")
            shown = [li.text for li in css(browser, "#verdict .field-mismatches li")]
            assert shown == audit[tampered]["mismatches"] and any("score on chain" in m for m in shown)
            assert css(browser, "#verdict .badge")[0].text == "mismatch"
            for tr in css(browser, "#submissions tr[data-participant]"):
                address = tr.get_attribute("data-participant")
                chain_score = int(tr.find_element("css selector", ".score-chain").text)
                assert chain_score == env.ledger.get_submission(tampered, address).score
                assert "mismatch" in tr.get_attribute("class")
            print(f"explorer screenshot: {full_page_screenshot(browser, shots / f'round-{tampered}.png')}")

            browser.get(f"{ex.url}rounds/1")
            assert css(browser, "#verdict .badge")[0].text == "verified"
            assert not css(browser, "#submissions tr.mismatch")

            member = env.orgs[2].address
            browser.get(f"{ex.url}members/{member}")
            assert int(css(browser, "#total-score")[0].text) == env.ledger.total_score(member)
            assert [int(tr.get_attribute("data-round")) for tr in css(browser, "#history tr[data-round]")] == [1, tampered]
            print(f"explorer screenshot: {full_page_screenshot(browser, shots / 'member.png')}")

            browser.get(f"{ex.url}lineage")
            nodes = {int(c.get_attribute("data-round")): c.get_attribute("data-verdict") for c in css(browser, "svg.lineage circle.node")}
            assert nodes == {0: "genesis", 1: "verified", 2: "verified", tampered: "mismatch"}
            print(f"explorer screenshot: {full_page_screenshot(browser, shots / 'lineage.png')}")

            browser.get(f"{ex.url}rounds/nine")
            assert "is not a number" in css(browser, "#error")[0].text

            # The overview follows the federation by itself: a new round appears, audited, without a reload by us.
            browser.get(ex.url)
            run_round(env, [0, 1, 2])
            wait_for("round 4 on the page", lambda: any(
                tr.get_attribute("data-verdict") == "verified" for tr in css(browser, '#rounds tr[data-round="4"]')), 60)
            print(f"explorer screenshot: {full_page_screenshot(browser, shots / 'overview-followed.png')}")
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]
                      and "/rounds/nine" not in e["message"]]  # fmt: skip
            assert errors == [], errors


def test_the_demo_with_explore_serves_its_federation_until_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedledger", "demo", "--participants", "3", "--rounds", "2", "--out", str(out),
         "--round-seconds", "240", "--explore"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_reaches_it,
        env=dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200"),
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        def explorer_line() -> str | None:
            assert proc.poll() is None, "".join(lines)[-3000:]
            found = [m for line in lines if (m := re.fullmatch(r"explorer: (http://127\.0\.0\.1:\d+/)\s*", line))]
            return found[0].group(1) if found else None

        url = wait_for("the explorer line", explorer_line, 900, 1.0)
        chain_url = re.search(r"on (http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)
        rounds = wait_for("the demo's verdicts", all_audited(url, 2), 300)
        assert [r["verdict"] for r in rounds] == ["verified", "verified"]
        with chromium() as browser:
            browser.get(url)
            assert {tr.get_attribute("data-verdict") for tr in css(browser, "#rounds tr[data-round]")} == {"verified"}
            assert len(css(browser, "#members tr[data-address]")) == 3
            print(f"\nexplorer screenshot (demo): {full_page_screenshot(browser, tmp_path / 'demo-overview.png')}")
            browser.get(url + "rounds/2")
            assert css(browser, "#verdict .badge")[0].text == "verified"
            print(f"explorer screenshot (demo): {full_page_screenshot(browser, tmp_path / 'demo-round-2.png')}")
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops the explorer and the chain
        assert proc.wait(timeout=120) == 0, "".join(lines)[-3000:]
        for gone in (url + "api/federation", chain_url):
            with pytest.raises(httpx.HTTPError):
                httpx.post(gone, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=3)
        assert json.loads((out / "report.json").read_text())["audit"]["ok"] is True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
