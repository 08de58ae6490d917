"""The web console in a real browser (headless Chromium): sign in, submit from the form and
watch the output arrive live, cancel a running run, see a field error, watch a worker go
offline, and see that a viewer has no buttons. Screenshots of each page go to
``test-output/browser/`` (see conftest.py)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from hydra.auth import tokens
from hydra.model.access import Role
from hydra.store.tokens import TokenStore
from hydrastack import WorkerSpec
from tests.helpers import job_body, unique, wait_run

pytestmark = pytest.mark.browser


def shot(driver, screenshots, page: str) -> None:
    """A screenshot of the whole page (the window is made as tall as the page for it)."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], min(height + 100, 6000)))
    driver.save_screenshot(str(screenshots / f"{driver.hydra_test}--{page}.png"))
    driver.set_window_size(size["width"], size["height"])


def wait(driver, timeout: float = 20):
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def sign_in(driver, base_url: str, token: str, screenshots=None) -> None:
    driver.get(f"{base_url}/ui/jobs")
    wait(driver).until(ec.presence_of_element_located((By.ID, "token")))  # sent to the sign-in form
    if screenshots is not None:
        shot(driver, screenshots, "login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver).until(ec.text_to_be_present_in_element((By.ID, "who"), ""))
    assert driver.find_element(By.TAG_NAME, "h1").text == "Jobs"


def status_of(driver) -> str:
    # Read in one script call: the element is replaced as the status changes.
    return driver.execute_script(
        "var e = document.querySelector('#run-status [data-status]'); return e ? e.dataset.status : null;"
    )


def action_controls(driver) -> list[str]:
    """The controls that act (POST forms, the edit and clone links) in the page's main part; the
    search and filter forms (GET) and the downloads (a job's file: reading it) only read."""
    posts = driver.find_elements(By.CSS_SELECTOR, "main form[method=post] button, main a.button:not([download])")
    return [element.text for element in posts]


def severe_logs(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_sign_in_submit_from_the_form_and_see_the_output_live(browser, base_url, stack, screenshots, shared):
    sign_in(browser, base_url, stack.admin_token, screenshots)
    shot(browser, screenshots, "jobs")
    browser.find_element(By.LINK_TEXT, "Submit").click()
    name = unique("ui")
    browser.find_element(By.ID, "f-name").send_keys(name)
    # The second line is written only once the test saw the first on the page (no fixed wait):
    # the command waits for a file the test makes in a directory both can reach.
    go = shared / "go"
    browser.find_element(By.ID, "f-command").send_keys(
        f"echo first-line; for i in $(seq 1 600); do [ -e {go} ] && break; sleep 0.1; done; echo second-line"
    )
    browser.find_element(By.ID, "f-os").send_keys("linux")
    browser.find_element(By.ID, "f-cwd").send_keys(str(shared))
    browser.find_element(By.ID, "f-timeout").send_keys("90")
    shot(browser, screenshots, "submit")
    browser.find_element(By.CSS_SELECTOR, "form.form-grid button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "output")))
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "output"), "first-line"))
    assert "second-line" not in browser.find_element(By.ID, "output").text
    assert status_of(browser) == "running"  # live: shown while the command still runs
    shot(browser, screenshots, "run-live")
    go.touch()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "output"), "second-line"))
    wait(browser).until(lambda d: status_of(d) == "succeeded")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "run-returncode"), "0"))
    shot(browser, screenshots, "run-done")
    browser.find_element(By.PARTIAL_LINK_TEXT, name).click()  # the job page
    wait(browser).until(ec.presence_of_element_located((By.ID, "job-runs")))
    assert "succeeded" in browser.find_element(By.ID, "job-runs").text
    shot(browser, screenshots, "job")
    assert not severe_logs(browser)


def test_cancel_a_running_run_and_see_it_end_cancelled(browser, base_url, stack, screenshots, api):
    job = api.post("/jobs/", json=job_body("echo started; sleep 120", timeout=200)).json
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/runs/{job['run_id']}")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "output"), "started"))
    assert status_of(browser) == "running"
    shot(browser, screenshots, "run-running")
    browser.find_element(By.XPATH, "//button[normalize-space()='Cancel run']").click()
    wait(browser, 30).until(lambda d: status_of(d) == "cancelled")
    # Once it ended the page redraws its actions: a cancelled run may be retried, not cancelled.
    wait(browser).until(ec.presence_of_element_located((By.XPATH, "//button[normalize-space()='Retry']")))
    assert not browser.find_elements(By.XPATH, "//button[normalize-space()='Cancel run']")
    shot(browser, screenshots, "run-cancelled")
    assert wait_run(job["run_id"]).status == "cancelled"


def test_a_bad_form_shows_the_apis_field_error_beside_the_field(browser, base_url, stack, screenshots):
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/submit")
    browser.find_element(By.ID, "f-name").send_keys(unique("bad"))
    browser.find_element(By.ID, "f-command").send_keys("true")
    browser.find_element(By.ID, "f-timeout").send_keys("soon")
    browser.find_element(By.ID, "f-priority").send_keys("700")
    browser.find_element(By.CSS_SELECTOR, "form.form-grid button[type=submit]").click()
    error = wait(browser).until(ec.visibility_of_element_located((By.ID, "timeout-error")))
    assert error.text == "Not a valid number."
    assert "less than or equal to 100" in browser.find_element(By.ID, "priority-error").text
    summary = browser.find_element(By.ID, "form-error")
    assert browser.switch_to.active_element == summary  # focus moved to the summary of errors
    assert "timeout: Not a valid number." in summary.text
    field = browser.find_element(By.ID, "f-timeout")
    assert field.get_attribute("aria-invalid") == "true" and "timeout-error" in field.get_attribute("aria-describedby")
    assert field.get_attribute("value") == "soon"  # what was typed is kept
    shot(browser, screenshots, "submit-errors")
    # Keyboard and screen-reader basics: every control has a label; focus is visible.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('main input:not([type=hidden]), main select, main textarea')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name || e.id);"
    )
    assert unlabelled == []
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{base_url}/ui/submit")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Skip to content"
    assert browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle;", focused) != "none"


def test_a_worker_goes_offline_when_it_is_stopped(browser, base_url, stack, screenshots, worker_factory):
    spec = worker_factory(WorkerSpec(unique("ui"), "os.linux,tag.console", concurrency=1))
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/workers")
    row = (By.CSS_SELECTOR, f"tr[data-worker='{spec.node}'] .worker-state")
    wait(browser).until(ec.text_to_be_present_in_element(row, "online"))
    tags = browser.find_element(By.CSS_SELECTOR, f"tr[data-worker='{spec.node}']").text
    assert "console" in tags and "linux" in tags
    shot(browser, screenshots, "workers-online")
    stack.stop(spec.process_name, timeout=20)
    wait(browser, 40).until(ec.text_to_be_present_in_element(row, "offline"))  # the page refreshes itself
    shot(browser, screenshots, "workers-offline")


def test_a_viewer_has_no_buttons(browser, base_url, stack, screenshots, api):
    """The same pages show an admin its controls (see the last lines); a viewer gets none."""
    namespace = "console-view"
    viewer = tokens.issue(TokenStore(), name="ui-viewer", user="vic", roles={namespace: Role.VIEWER}).secret
    job = api.post(
        "/jobs/", json=job_body("false", namespace=namespace, schedule="0 3 * * *", timezone="Europe/Paris")
    ).json
    run = api.post(f"/jobs/{job['id']}/trigger").json
    wait_run(run["run_id"])
    sign_in(browser, base_url, viewer)
    pages = {
        "viewer-home": "/ui/",
        "viewer-jobs": "/ui/jobs",
        "viewer-job": f"/ui/jobs/{job['id']}",
        "viewer-run": f"/ui/runs/{run['run_id']}",
        "viewer-placement": f"/ui/runs/{run['run_id']}/placement",
        "viewer-dead-letters": "/ui/dead-letters",
        "viewer-workers": "/ui/workers",
    }
    for page, path in pages.items():
        browser.get(base_url + path)
        wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert action_controls(browser) == [], page
        shot(browser, screenshots, page)
    assert not browser.find_elements(By.LINK_TEXT, "Submit")  # it may submit nowhere
    browser.get(f"{base_url}/ui/jobs/{job['id']}")
    fires = browser.find_elements(By.CSS_SELECTOR, "#fire-times tbody tr")
    assert len(fires) == 5 and ("+01:00" in fires[0].text or "+02:00" in fires[0].text)  # Paris time
    assert api.post(f"/jobs/{job['id']}/trigger", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    browser.delete_all_cookies()
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/jobs/{job['id']}")
    assert action_controls(browser) == ["Trigger now", "Pause schedule", "Edit", "Clone…", "Delete"]


def test_charts_draw_from_hydras_own_data(browser, base_url, stack, screenshots, api):
    done = api.post("/jobs/", json=job_body("echo chart")).json
    wait_run(done["run_id"])
    sign_in(browser, base_url, stack.admin_token)
    browser.get(f"{base_url}/ui/charts?minutes=15")
    for chart in ("chart-runs", "chart-queues", "chart-durations"):
        wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{chart} canvas")))
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#table-runs tbody tr"))
    assert "succeeded" in browser.find_element(By.ID, "table-runs").get_attribute("textContent")
    assert "gpu1" in browser.find_element(By.ID, "table-queues").get_attribute("textContent")
    shot(browser, screenshots, "charts")
    assert not severe_logs(browser)
