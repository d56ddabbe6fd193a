"""The dashboard in a real headless Chromium: find the blocked queue, read its error, retry it,
watch the queue move on; escaping; the token; read-only mode; screenshots."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from queuetopia_lite import Job, QueueState, Queuetopia
from queuetopia_lite.dashboard import DashboardServer, serve

from ..conftest import wait_until
from .browser import add_history, driver, screenshot_dir, wait_for
from .helpers import XSS

__all__ = ["driver"]  # the fixture, imported for this module

TOKEN = "browser-test-token"
QUEUE = "mail/customer-7"


class Flaky:
    """A performer whose ``send`` fails (error: a script tag) until ``fixed`` is set,
    whose ``charge`` always fails, and whose ``sync`` of devices 0-2 runs until ``release``."""

    def __init__(self) -> None:
        self.fixed = threading.Event()
        self.release = threading.Event()

    def perform(self, job: Job) -> None:
        if job.action == "send" and not self.fixed.is_set():
            raise ConnectionError(f"SMTP refused {XSS}")
        if job.action == "charge":
            raise ValueError(f"card declined for order {job.params['order']}")
        if job.action == "sync" and job.params.get("device", 99) < 3:
            self.release.wait(30.0)

    def backoff(self, job: Job) -> float:
        return 3600.0  # stays blocked until someone presses retry


@pytest.fixture
def flaky() -> Flaky:
    return Flaky()


@pytest.fixture
def running_q(tmp_path: Path, flaky: Flaky) -> Iterator[Queuetopia]:
    """A Queuetopia whose scheduler runs: a blocked queue among busy ones, an hour of history."""
    q = Queuetopia(tmp_path / "jobs.db", flaky, durability="normal", poll_interval=1.0)
    add_history(q)
    q.create_jobs([(f"sync/device-{i:03}", "sync", {"device": i}) for i in range(60)])
    q.create_job(QUEUE, "send", {"to": "ann@example.com", "template": "invoice"})
    q.create_job(QUEUE, "send", {"to": "bob@example.com", "template": "reminder"})
    q.create_job("payments/order-1042", "charge", {"order": 1042, "cents": 12990})
    q.create_job("<script>alert(1)</script>", "sync", {"note": "<b>bold?</b>"})
    q.start()
    wait_until(lambda: q.queues(QUEUE)[0].state == QueueState.BLOCKED, message="blocked queue")
    wait_until(lambda: q.queues("payments/order-1042")[0].state == QueueState.BLOCKED,
               message="the second blocked queue")
    yield q
    flaky.release.set()
    q.close()


@pytest.fixture
def dashboard(running_q: Queuetopia) -> Iterator[DashboardServer]:
    with serve(running_q, port=0, refresh=1.0) as server:
        yield server
        server.shutdown()


def queue_row(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, "table.queues tbody tr"):
        if row.get_attribute("data-queue") == name:
            return row
    return None


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        driver.switch_to.alert  # noqa: B018 (the property raises when there is none)
    except NoAlertPresentException:
        return True
    return False


def test_find_the_blocked_queue_read_its_error_retry_and_see_it_move_on(
        driver: Any, dashboard: DashboardServer, running_q: Queuetopia, flaky: Flaky,
        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(dashboard.url)
    first = driver.find_element(By.CSS_SELECTOR, "table.queues tbody tr")
    assert first.get_attribute("data-queue") == QUEUE  # blocked queues come first
    assert "blocked" in first.find_element(By.CSS_SELECTOR, ".badge").text
    assert f"ConnectionError: SMTP refused {XSS}" in first.text  # as text, not markup
    shots = screenshot_dir(tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shots / "dashboard-overview.png"))

    first.find_element(By.CSS_SELECTOR, "td:nth-child(4) a").click()
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Job #"),
             "the job page")
    error = driver.find_element(By.CSS_SELECTOR, "pre.error").text
    assert error.startswith(f"ConnectionError: SMTP refused {XSS}")
    assert "Traceback (most recent call last)" in error
    assert no_alert(driver)
    driver.save_screenshot(str(shots / "dashboard-job.png"))

    flaky.fixed.set()
    driver.find_element(By.ID, "retry-button").click()
    wait_for(driver, lambda d: "Retried" in d.find_element(By.CSS_SELECTOR, ".notice").text,
             "the retry notice")
    # the page refreshes itself: the job turns done without a reload
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "dd .badge").text == "done",
             "the job to show done")
    driver.find_element(By.LINK_TEXT, QUEUE).click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "dl .badge").text == "idle",
             "the queue to have run its second job too")
    assert [b.text for b in driver.find_elements(By.CSS_SELECTOR, "table.jobs .badge")] == [
        "done", "done"]
    driver.get(dashboard.url)
    row = queue_row(driver, QUEUE)
    assert row is not None and "idle" in row.text


def test_refresh_keeps_the_scroll_position(driver: Any, dashboard: DashboardServer) -> None:
    from selenium.webdriver.common.by import By

    driver.get(dashboard.url + "?page=1")
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    y = driver.execute_script("return window.scrollY")
    assert y > 100
    read_at = driver.find_element(By.ID, "read-at").text
    wait_for(driver, lambda d: d.find_element(By.ID, "read-at").text != read_at,
             "an automatic refresh")
    assert driver.execute_script("return window.scrollY") == y


def test_script_in_a_queue_name_is_text(driver: Any, dashboard: DashboardServer) -> None:
    from selenium.webdriver.common.by import By

    driver.get(dashboard.url + "?q=script")
    row = queue_row(driver, "<script>alert(1)</script>")
    assert row is not None
    assert row.find_element(By.CSS_SELECTOR, "td a").text == "<script>alert(1)</script>"
    row.find_element(By.CSS_SELECTOR, "td a").click()
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text
             == "Queue <script>alert(1)</script>", "the queue page")
    assert no_alert(driver)


def test_the_token_opens_the_dashboard_once_then_a_cookie_keeps_it(
        driver: Any, running_q: Queuetopia) -> None:
    from selenium.webdriver.common.by import By

    with serve(running_q, port=0, token=TOKEN) as server:
        try:
            driver.get(server.url)
            assert driver.find_element(By.TAG_NAME, "h1").text == "Token needed"
            driver.get(server.url + "?token=wrong-token")
            assert driver.find_element(By.TAG_NAME, "h1").text == "Token needed"
            driver.get(server.url + "?token=" + TOKEN)
            assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"
            assert "token" not in driver.current_url  # the redirect dropped it
            queue_row(driver, QUEUE).find_element(By.CSS_SELECTOR, "td a").click()
            wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text
                     == f"Queue {QUEUE}", "the queue page, by the cookie")
        finally:
            server.shutdown()
            driver.delete_all_cookies()


def test_read_only_mode_offers_no_actions(driver: Any, running_q: Queuetopia) -> None:
    from selenium.webdriver.common.by import By

    head = running_q.queues(QUEUE)[0].head
    assert head is not None
    with serve(running_q, port=0, read_only=True) as server:
        try:
            driver.get(f"{server.url}jobs/{head.id}")
            assert driver.find_element(By.TAG_NAME, "h1").text == f"Job #{head.id}"
            assert driver.find_elements(By.ID, "retry-button") == []
            assert driver.find_elements(By.TAG_NAME, "form") == [
                driver.find_element(By.CSS_SELECTOR, "form.search")]
            assert "read-only" in driver.find_element(By.TAG_NAME, "header").text
        finally:
            server.shutdown()
