"""Browser tests of the web console: Debian's headless Chromium, driven by Selenium through
Debian's chromium-driver, against the real stack's API under gunicorn (``stack.start_api()``).

``make install`` (deploy/local/install.sh) installs ``chromium`` and ``chromium-driver``; these
tests fail, rather than skip, when they are missing. Each test saves a screenshot of every page
it visits under the run's output folder: ``$HYDRA_TEST_OUTPUT/browser/`` (default
``test-output/browser/`` in the repository, which git ignores).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HYDRA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HYDRA_CHROMEDRIVER", "/usr/bin/chromedriver")
OUTPUT = Path(os.environ.get("HYDRA_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "browser"


@pytest.fixture(scope="session")
def base_url(stack) -> str:
    stack.start_api()
    return stack.api_url


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture
def browser(screenshots, request):
    """A fresh headless Chromium (its own profile: no cookies), closed after the test."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (shutil.which(path) or os.access(path, os.X_OK)):
            pytest.fail(f"{path} is missing: `make install` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    driver.hydra_test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)
    yield driver
    driver.quit()
