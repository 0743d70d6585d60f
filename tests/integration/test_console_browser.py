"""The console in a real headless browser: Debian's chromium driven by Selenium and Debian's
chromium-driver (no browser download), over a real worker, Kafka and PostgreSQL.

The story: a handler refuses clicks on an item missing from its catalog; they are dead-lettered.
The operator logs in, reads the overview, opens the failure group, replays it after the dry-run
preview, and the worker applies the replayed events once each (the catalog was fixed); the
ledger names the operator. A record that does not decode is discarded. A form posted without
its CSRF token, or without a login, is refused.

With ``ONCEPIPE_CONSOLE_SCREENSHOTS=1`` the main pages are saved to docs/console/*.png (the
README shows them); without it nothing in the tree is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from console import hash_password
from tests.fixtures.handlers import CATALOG_TABLE
from tests.fixtures.poison import (
    assert_applied_exactly,
    good_record,
    poison_record,
    produce_records,
)
from tests.fixtures.relay import ONCEPIPE, RelayThread
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "night-shift-2026"  # noqa: S105 - a test user's
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
WAIT_S = 90


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1360,900", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def console_url(pool: WorkerPool, tmp_path: Path) -> str:
    users = tmp_path / "console-users"
    users.write_text(f"ops:{hash_password(PASSWORD)}\n")
    port_file = tmp_path / "console.port"
    child = pool.processes.start(
        "console",
        [ONCEPIPE, "console", "--port", "0", "--port-file", str(port_file),
         "--password-file", str(users)],
        env={
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": pool.settings.kafka_bootstrap_servers,
            "ONCEPIPE_DATABASE_URL": pool.settings.database_url.get_secret_value(),
            "ONCEPIPE_CONSOLE_INDEX_INTERVAL_S": "0.5",
            "ONCEPIPE_CONSOLE_RATE": "20",
            "ONCEPIPE_CONSOLE_REDACT_FIELDS": "session_id",
        },
        log=tmp_path / "console.log",
    )  # fmt: skip
    deadline = time.monotonic() + WAIT_S
    while not (port_file.exists() and port_file.read_text().strip()):
        assert child.alive(), child.tail(30)
        assert time.monotonic() < deadline, child.tail(30)
        time.sleep(0.1)
    return f"http://127.0.0.1:{int(port_file.read_text())}"


def shoot(driver: WebDriver, name: str) -> None:
    """Save a screenshot of the page when asked (ONCEPIPE_CONSOLE_SCREENSHOTS=1)."""
    if os.environ.get("ONCEPIPE_CONSOLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def text(driver: WebDriver, css: str) -> str:
    """The text of ``css``, once the page shows it: a click that submits a form returns before
    the next page is there (the full suite once read the old page after "preview")."""
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, css)
        )
    except TimeoutException:
        pytest.fail(f"no {css} on {driver.current_url}: {driver.page_source[:2000]}")
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def group_of(driver: WebDriver, url: str, topic: str, error: str, count: int) -> str:
    """Reload the failures page of ``topic`` until the group of ``error`` holds ``count``;
    its fingerprint."""
    found: dict[str, str] = {}

    def listed(_: WebDriver) -> bool:
        driver.get(f"{url}/failures?topic={topic}")
        for row in driver.find_elements(By.CSS_SELECTOR, "#failures tr")[1:]:
            cells = row.find_elements(By.TAG_NAME, "td")
            if len(cells) > 3 and error in cells[3].text and cells[1].text == str(count):
                found["fingerprint"] = cells[0].text
                return True
        return False

    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.5).until(listed)
    except TimeoutException:
        pytest.fail(f"no group {error} of {count}: {text(driver, '#failures')}")
    return found["fingerprint"]


def post_form(driver: WebDriver, action: str, fields: dict[str, str]) -> None:
    """Submit a form the page did not offer (as a forged cross-site form would)."""
    driver.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = arguments[0];
        for (const [name, value] of Object.entries(arguments[1])) {
            const input = document.createElement("input");
            input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
        """,
        action,
        fields,
    )


def ledger(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT outcome, replayed_by FROM oncepipe.dlq_replays ORDER BY dlq_partition,"
            " dlq_offset"
        ).fetchall()
    return [(str(o), str(b)) for o, b in rows]


def test_an_operator_replays_a_failure_group_and_discards_a_poison_record_in_the_browser(
    worker_pool: WorkerPool,
    dlq_topic: str,
    relay_thread: Callable[..., RelayThread],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    db = worker_pool.settings.database_url.get_secret_value()
    events = make_clicks(60, seed=31)
    with psycopg.connect(db) as conn:
        conn.execute(CATALOG_TABLE)
        conn.execute(
            "INSERT INTO public.test_catalog SELECT unnest(%s::text[])",
            (sorted({e.item_id for e in events}),),
        )
    refused = {10, 20, 30}
    clicks = [
        e.model_copy(update={"item_id": "new-item"}) if n in refused else e
        for n, e in enumerate(events)
    ]
    poison = poison_record("bad_magic", events[0])
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [*map(good_record, clicks), poison]
    )
    relay_thread()
    worker = worker_pool.start(handler="tests.fixtures.handlers:catalog_clicks")
    wait_until(caught_up(db, worker_pool.group, len(records)), WAIT_S, "the worker to catch up")
    url = console_url(worker_pool, tmp_path)

    # Not logged in: the login page first.
    browser.get(f"{url}/")
    assert "/login" in browser.current_url
    shoot(browser, "login")
    browser.find_element(By.ID, "username").send_keys("ops")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "groups"))
    assert worker_pool.group in text(browser, "#groups")
    assert dlq_topic in text(browser, "#dead-letters")

    # The failure group of the three refused clicks, and the poison record's.
    fingerprint = group_of(browser, url, dlq_topic, "PoisonError", 3)
    poison_fingerprint = group_of(browser, url, dlq_topic, "BadMagicError", 1)
    browser.get(f"{url}/")
    shoot(browser, "overview")
    browser.get(f"{url}/failures?topic={dlq_topic}")
    shoot(browser, "failures")
    browser.find_element(By.LINK_TEXT, fingerprint).click()
    assert "3 dead letter(s) selected" in text(browser, "#total")
    shoot(browser, "group")
    browser.find_elements(By.CSS_SELECTOR, "a.letter")[0].click()
    assert "item new-item is not in the catalog" in text(browser, "#error-message")
    assert "[redacted]" in text(browser, "#event")  # session_id is personal data here
    shoot(browser, "dead-letter")
    browser.back()

    # The fix: the item exists now. Replay the group after its dry run.
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO public.test_catalog VALUES ('new-item')")
    browser.find_element(By.ID, "preview-replay").click()
    assert "3 would-send" in text(browser, "#preview-counts")
    assert ledger(db) == []  # the preview records nothing
    shoot(browser, "preview")
    browser.find_element(By.ID, "confirm").click()
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "result-counts"))
    assert "3 sent" in text(browser, "#result-counts")
    wait_until(caught_up(db, worker_pool.group, len(records) + 3), WAIT_S, "the replays applied")
    assert_applied_exactly(worker_pool, clicks, len(records) + 3)
    assert ledger(db) == [("sent", "ops@console")] * 3

    # The poison record: nothing to fix, discard it.
    browser.get(f"{url}/letters?topic={dlq_topic}&fingerprint={poison_fingerprint}")
    browser.find_elements(By.CSS_SELECTOR, "a.letter")[0].click()
    text(browser, "#error-message")  # the letter's page is there
    browser.find_element(By.ID, "preview-discard").click()
    assert "1 would-discard" in text(browser, "#preview-counts")
    browser.find_element(By.ID, "confirm").click()
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "result-counts"))
    assert "1 discarded" in text(browser, "#result-counts")
    assert sorted(ledger(db)) == [("discarded", "ops@console"), *[("sent", "ops@console")] * 3]

    # Refused: a form without the CSRF token, then one without a login.
    ref = f"{dlq_topic}:0:0"
    post_form(browser, "/actions/run", {"kind": "replay", "ref": ref, "confirm": "yes"})
    WebDriverWait(browser, WAIT_S).until(lambda d: "CSRF" in d.page_source)
    browser.delete_all_cookies()
    browser.get(f"{url}/login")
    token = browser.find_element(By.NAME, "csrf").get_attribute("value") or ""
    post_form(browser, "/actions/run", {"kind": "replay", "ref": ref, "confirm": "yes",
                                        "csrf": token})  # fmt: skip
    WebDriverWait(browser, WAIT_S).until(lambda d: "log in first" in d.page_source)
    assert len(ledger(db)) == 4  # nothing more replayed

    browser.get(f"{url}/login")
    browser.find_element(By.ID, "username").send_keys("ops")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    browser.get(f"{url}/audit")
    audit = text(browser, "#audit")
    assert audit.count("ops@console") == 5  # 2 previews, replay, discard, the CSRF refusal
    shoot(browser, "audit")
    assert worker.terminate() == 0, worker.text()[-3000:]
