"""``make bench`` (third part): how soon does the web console show a new line of output?

Starts a private stack on free ports (Redis, the MongoDB server, the controller, one worker,
the API under gunicorn as ``make up`` runs it), signs in to ``/ui/`` in headless Chromium
(Debian's, through Selenium and chromium-driver, as tests/browser does), opens the run page
of a job that prints its own clock (``date +%s.%N``) every 0.25 s, and records in the page,
with a MutationObserver, when each line appears. The delay of a line is the moment it
appeared minus the moment the command wrote it (one machine, one clock). Prints a table and
writes it as JSON next to the stack's data. Options: --lines, --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "deploy" / "local")]

from bench.measure import percentile  # noqa: E402
from hydrastack import Stack, WorkerSpec  # noqa: E402  (light: reads no settings)

OBSERVE = """
window.hydraSeen = [];
new MutationObserver(function (changes) {
  var now = Date.now() / 1000;
  changes.forEach(function (c) {
    c.addedNodes.forEach(function (n) {
      (n.textContent || '').split('\\n').forEach(function (line) {
        if (/^at [0-9.]+$/.test(line)) window.hydraSeen.push([now, parseFloat(line.slice(3))]);
      });
    });
  });
}).observe(document.getElementById('output'), {childList: true});
"""


def say(text: str) -> None:
    print(f"bench/console: {text}", flush=True)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("HYDRA_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(
        service=Service(os.environ.get("HYDRA_CHROMEDRIVER", "/usr/bin/chromedriver")), options=options
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40, help="lines per run (one every 0.25 s)")
    parser.add_argument("--runs", type=int, default=3, help="runs followed, one after the other")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hydra-bench-console-"))
    stack = Stack.ephemeral(root / "stack", mongo_db="hydra_bench_console")
    driver = None
    try:
        say("starting a private stack (Redis, MongoDB server, controller, one worker, API under gunicorn) ...")
        stack.start_redis()
        stack.start_mongo()
        stack.start_controller()
        stack.start_worker(WorkerSpec("console1", "os.linux", concurrency=2))
        stack.start_api()
        headers = {"Authorization": f"Bearer {stack.admin_token}"}
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver = browser()
        driver.get(f"{stack.api_url}/ui/login")
        driver.find_element(By.ID, "token").send_keys(stack.admin_token)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "who"))
        delays: list[float] = []
        for number in range(args.runs):
            body = {
                "name": f"console-bench-{number}",
                "command": f"sleep 3; for i in $(seq 1 {args.lines}); do echo at $(date +%s.%N); sleep 0.25; done",
                "shell": "bash",
                "timeout": 120,
            }
            created = requests.post(f"{stack.api_url}/jobs/", json=body, headers=headers, timeout=30)
            created.raise_for_status()
            driver.get(f"{stack.api_url}/ui/runs/{created.json()['run_id']}")
            driver.execute_script(OBSERVE)
            WebDriverWait(driver, 120, poll_frequency=0.5).until(
                lambda d: d.execute_script("return window.hydraSeen.length") >= args.lines
            )
            seen = driver.execute_script("return window.hydraSeen")
            delays += [appeared - written for appeared, written in seen]
            say(f"run {number + 1}: {len(seen)} lines")
        result = {
            "lines": len(delays),
            "p50_s": round(percentile(delays, 50), 3),
            "p99_s": round(percentile(delays, 99), 3),
            "max_s": round(max(delays), 3),
            "within_1s": sum(1 for d in delays if d <= 1.0),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
        print()
        print("| metric (web console, live output)             | value |")
        print("|------------------------------------------------|-------|")
        print(f"| lines followed                                 | {result['lines']} |")
        print(f"| written -> shown p50 (s)                       | {result['p50_s']} |")
        print(f"| written -> shown p99 (s)                       | {result['p99_s']} |")
        print(f"| written -> shown max (s)                       | {result['max_s']} |")
        print(f"| lines shown within 1 s (goal: all)             | {result['within_1s']}/{result['lines']} |")
        print(f"\n{result['at']}; {result['cpus']} CPUs; Python {result['python']}")
        (root / "console-bench.json").write_text(json.dumps(result, indent=2))
    finally:
        if driver is not None:
            driver.quit()
        stack.down()
        if not os.environ.get("HYDRA_KEEP_BENCH_DATA"):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
