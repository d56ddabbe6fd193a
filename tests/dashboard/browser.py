"""A real headless Chromium for the dashboard's browser tests (Debian's chromium and its driver).

Missing pieces skip the tests with a printed reason, except under CI (the env var CI
set), where they fail: CI installs them (scripts/bootstrap with EXTRAS=browser).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from queuetopia_lite import Queuetopia
from queuetopia_lite.backend import Failure, NewJob, Success

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1360,1000")
SCREENSHOTS_ENV = "QTL_SCREENSHOTS"  # a folder: write the screenshots there (e.g. docs)
WAIT = 20.0  # seconds a browser condition may take before the test fails


def _unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (EXTRAS=browser scripts/bootstrap)"
    if _chromium() is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> None:
    """Skip (with a printed reason) without a browser; fail instead under CI."""
    reason = _unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    print(f"skipping the browser tests: {reason}")
    pytest.skip(reason)


def start_chromium(profile: Path) -> Any:
    """A headless Chromium driven by chromedriver, on a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _chromium() or ""
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "")
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    require_browser()
    chrome = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    chrome.set_page_load_timeout(WAIT)
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(driver: Any, condition: Callable[[Any], object], what: str) -> Any:
    """Wait until ``condition(driver)`` is truthy; fail the test at the deadline."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    def safe(d: Any) -> object:
        try:
            return condition(d)
        except StaleElementReferenceException:  # the refresh swapped the page meanwhile
            return False

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(safe)
    except Exception as exc:
        pytest.fail(f"timed out waiting for {what}: {exc}")


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $QTL_SCREENSHOTS if set (e.g. docs), else the test's tmp dir."""
    target = os.environ.get(SCREENSHOTS_ENV)
    return Path(target) if target else tmp_path


def add_history(q: Queuetopia, minutes: int = 60, per_minute: int = 12) -> None:
    """Jobs done (and a few failed for good) over the last ``minutes``, through the real
    backend with past instants, so the throughput chart has an hour to show."""
    backend, scope, start = q.backend, q.scope, time.time() - minutes * 60
    for minute in range(minutes):
        at = start + minute * 60 + 5
        wave = max(per_minute + (minute * 7) % 9 - 4, 1)
        backend.insert_jobs(scope, [NewJob(f"history-{i % 6}", "report", "{}", None, 60.0,
                                           86400.0, 1) for i in range(wave)], at)
        for rnd in range(wave):  # each queue runs its jobs one at a time
            now = at + rnd * 0.5
            claims = backend.step(scope, now, claim=100, owner="history:1").claimed
            if not claims:
                break
            outcomes: list[Success | Failure] = [Success(c) for c in claims]
            if minute % 7 == 3 and rnd == 0:  # one attempt only: failed for good
                outcomes[0] = Failure(claims[0], "TimeoutError: upstream", now)
            backend.step(scope, now + 0.1, outcomes=outcomes)
