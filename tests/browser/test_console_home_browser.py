"""The console's home page, jobs list and job page in a real browser (headless Chromium), with a
screenshot of each (``test-output/browser/``): the tiles link to their lists, a column heading
sorts the jobs, the job page draws its run history, every time is UTC with the reader's own time
on hover (the browser set to New York), the charts' axes and legends are UTC, every status
symbol has an installed font, and a viewer asking for the submit form gets a page saying no."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from api.console.present import GLYPHS, NO_GLYPH
from hydra.auth import tokens
from hydra.model.access import Role
from hydra.store.tokens import TokenStore
from tests.browser.test_console_browser import severe_logs, shot, sign_in, wait
from tests.helpers import job_body, unique, wait_run, wait_until

pytestmark = pytest.mark.browser

#: A UTC time as the console writes it.
UTC_TIME = r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ"


@pytest.fixture(scope="module")
def team(stack):
    """A namespace with a job that succeeded, one that failed, one dead-lettered after a retry
    (three runs of it, for its chart) and a cron job."""
    from api import create_app

    api = create_app().test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {stack.admin_token}"
    ns = unique("ui-home")
    jobs = {
        "ok": api.post("/jobs/", json=job_body("sleep 0.2", name="nightly-report", namespace=ns)).json,
        "bad": api.post("/jobs/", json=job_body("exit 2", name="flaky-import", namespace=ns)).json,
        "dead": api.post(
            "/jobs/",
            json=job_body(
                "sleep 0.3; exit 3", name="db-backup", namespace=ns, retries=2, backoff={"base": 0.2, "jitter": 0}
            ),
        ).json,
        "cron": api.post(
            "/jobs/",
            json=job_body(
                "true",
                name="cleanup",
                namespace=ns,
                schedule="0 2 * * *",
                affinity={"os": ["linux"], "tags": ["gpu"], "allowed_users": ["tester", "ana"]},
            ),
        ).json,
    }
    for key in ("ok", "bad"):
        wait_run(jobs[key]["run_id"])
    wait_until(
        lambda: any(r["status"] == "dead_letter" for r in api.get(f"/jobs/{jobs['dead']['id']}/runs").json),
        40,
        message="the dead letter",
    )
    return {"ns": ns, "jobs": jobs}


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def legend_x(driver, chart: str) -> str:
    """Hover the middle of a chart and read the time its legend shows."""
    over = driver.find_element(By.CSS_SELECTOR, f"#{chart} .u-over")
    ActionChains(driver).move_to_element(over).perform()
    cell = (By.CSS_SELECTOR, f"#{chart} .u-legend .u-series:first-child .u-value")
    wait(driver).until(lambda d: d.find_element(*cell).text.strip() not in ("", "--"))
    return driver.find_element(*cell).text.strip()


def test_the_home_page_jobs_list_and_job_page(browser, base_url, stack, screenshots, team):
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/")
    wait(browser).until(ec.presence_of_element_located((By.ID, "failing-jobs")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Now"
    failing = text_of(browser, "#failing-jobs")
    assert "db-backup" in failing and "flaky-import" in failing and "nightly-report" not in failing
    for tile in ("Failing jobs", "Runs ended, last 24 h", "Dead letters", "Workers", "Queue depth"):
        assert browser.find_element(By.LINK_TEXT, tile).is_displayed()
    shot(browser, screenshots, "home")
    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Dead letters"))
    assert "db-backup" in text_of(browser, "#dead-letters")

    browser.get(f"{base_url}/ui/jobs?namespace={team['ns']}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "jobs-table")))
    row = text_of(browser, f"tr[data-job='{team['jobs']['ok']['id']}']")
    assert "succeeded" in row and "100%" in row
    cron = text_of(browser, f"tr[data-job='{team['jobs']['cron']['id']}'] .next-run")
    assert re.match(UTC_TIME, cron) and "cron" in cron
    shot(browser, screenshots, "jobs")
    browser.find_element(By.LINK_TEXT, "Name").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "th[aria-sort='ascending']")))
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr td:first-child a")]
    assert names == ["cleanup", "db-backup", "flaky-import", "nightly-report"]
    browser.find_element(By.PARTIAL_LINK_TEXT, "Name").click()  # again: the other way round
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "th[aria-sort='descending']")))
    shot(browser, screenshots, "jobs-sorted")

    browser.find_element(By.LINK_TEXT, "db-backup").click()
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#chart-history canvas")))
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#table-history tbody tr")) == 3)
    table = browser.find_element(By.ID, "table-history").get_attribute("textContent")
    assert table.count("retrying") == 2 and table.count("dead_letter") == 1
    assert "1 retry" not in text_of(browser, "#retry-words") and "2 retries" in text_of(browser, "#retry-words")
    assert re.fullmatch(UTC_TIME, legend_x(browser, "chart-history"))
    shot(browser, screenshots, "job-history")
    browser.get(f"{base_url}/ui/jobs/{team['jobs']['cron']['id']}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "schedule-words")))
    assert text_of(browser, "#schedule-words") == "every day at 02:00 UTC (cron 0 2 * * *)"
    assert text_of(browser, "#affinity-words") == "linux workers tagged gpu, users ana or tester"
    shot(browser, screenshots, "job-cron")
    assert not severe_logs(browser)


def test_times_are_utc_everywhere_with_the_readers_own_time_on_hover(browser, base_url, stack, screenshots, team):
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/jobs/{team['jobs']['ok']['id']}")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "time[datetime]")))
    for element in browser.find_elements(By.CSS_SELECTOR, "main time[datetime]"):
        shown, hover = element.text, element.get_attribute("title")
        assert re.fullmatch(UTC_TIME, shown), shown
        assert re.fullmatch(rf"{UTC_TIME} = 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d -0[45]:00 \(your time\)", hover), hover
    # the charts: axes in UTC whatever the reader's zone (tzDate), legends in the console's format
    hours = browser.execute_script(
        "var ts = Date.UTC(2026, 0, 15, 3, 5) / 1000; return [window.hydra.utc.tzDate(ts).getHours(), "
        "uPlot.fmtDate('{HH}:{mm}')(window.hydra.utc.tzDate(ts))];"
    )
    assert hours == [3, "03:05"]  # not New York's 22:05, nor "3:05am"
    browser.get(f"{base_url}/ui/charts?minutes=60")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#chart-runs canvas")))
    assert re.fullmatch(UTC_TIME, legend_x(browser, "chart-runs"))
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#table-runs tbody tr"))
    first = browser.find_element(By.CSS_SELECTOR, "#table-runs tbody tr td").get_attribute("textContent")
    assert re.fullmatch(UTC_TIME, first)
    shot(browser, screenshots, "charts-utc")


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig's fc-list is missing")
def test_every_status_symbol_has_an_installed_font():
    """Chromium on Linux draws text with the fonts fontconfig lists: each symbol the console
    uses must be in one of them (or it shows as an empty box)."""
    used = set(GLYPHS.values()) | {NO_GLYPH, "▲", "▼", "⚠", "→", "●", "○", "—", "·", "≤"}
    missing = []
    for symbol in sorted(used):
        found = subprocess.run(
            ["fc-list", f":charset={ord(symbol):x}", "family"], capture_output=True, text=True, timeout=30
        ).stdout
        if not found.strip():
            missing.append(f"{symbol} (U+{ord(symbol):04X})")
    assert missing == [], f"no installed font draws {missing}: `make install` installs fonts-dejavu-core"


def test_a_viewer_made_for_a_named_user_gets_a_page_not_a_form(browser, base_url, stack, screenshots, team):
    user = unique("vic")
    viewer = tokens.issue(TokenStore(), name="home viewer", user=user, roles={team["ns"]: Role.VIEWER}).secret
    sign_in(browser, base_url, viewer)
    assert text_of(browser, "#who") == user
    browser.get(f"{base_url}/ui/")
    wait(browser).until(ec.presence_of_element_located((By.ID, "failing-jobs")))
    assert text_of(browser, "#failing-count") == "2"
    assert not browser.find_elements(By.LINK_TEXT, "Submit")
    shot(browser, screenshots, "viewer-home")
    browser.get(f"{base_url}/ui/submit")
    wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "403: Not allowed"
    message = text_of(browser, ".error-message")
    assert "may not submit here" in message and user in message
    assert not browser.find_elements(By.CSS_SELECTOR, "main form")
    shot(browser, screenshots, "viewer-submit")
