"""A real headless Chromium for the explorer's browser tests: Debian's chromium driven by selenium
through the system chromedriver (never a browser or driver download), with a fresh profile."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1360,1000", "--hide-scrollbars")  # fmt: skip


def _first(paths: tuple[str, ...], name: str) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None) or shutil.which(name)


def why_no_browser() -> str | None:
    """None when the browser tests can run; else the reason they skip."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (./scripts/setup installs the dev extras)"
    if _first(CHROMIUM, "chromium") is None:
        return "no chromium: ./scripts/setup installs Debian's chromium as root, or apt-get install chromium chromium-driver"
    if _first(CHROMEDRIVER, "chromedriver") is None:
        return "no chromedriver: apt-get install chromium-driver"
    return None


@contextmanager
def chromium() -> Iterator[object]:
    """A selenium WebDriver on a fresh headless Chromium profile; quits and removes the profile after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="fedledger-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = _first(CHROMIUM, "chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # With both paths given, selenium has nothing to look up or download.
    driver = webdriver.Chrome(service=Service(executable_path=_first(CHROMEDRIVER, "chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def full_page_screenshot(driver, path: Path) -> Path:  # noqa: ANN001
    """A PNG of the whole page (the window grown to the document's height)."""
    driver.set_window_size(1360, 600)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1360, min(max(height + 40, 600), 4000))
    driver.save_screenshot(str(path))
    return path
