"""deploy/prometheus/hydra-alerts.yml: promtool loads it and its unit tests pass
(hydra-alerts.test.yml feeds series and says which alerts fire), and every Hydra metric an
alert names is one the collectors export. (tests/integration/test_metrics.py checks the same
names against /metrics on the real stack.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from hydra.model.spec import load_job
from hydrastack import REPO

RULES = REPO / "deploy" / "prometheus" / "hydra-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "hydra-alerts.test.yml"

#: deploy/local/install.sh installs Debian's prometheus package (promtool) on Linux.
needs_promtool = pytest.mark.skipif(
    not sys.platform.startswith("linux") and shutil.which("promtool") is None,
    reason="promtool comes with Debian's prometheus package (make install on Linux)",
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: make install (deploy/local/install.sh) installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bhydra_[a-z_]+", expr))


@needs_promtool
def test_promtool_loads_the_rules():
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_rules_unit_tests_pass():
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_alert_on_what_operators_need():
    exprs = alert_expressions()
    wanted = {
        "HydraJobFailing": "hydra_job_last_failure_timestamp_seconds",
        "HydraJobMissedSchedule": "hydra_job_next_fire_timestamp_seconds",
        "HydraDeadLettersGrowing": "hydra_dead_letters",
        "HydraNoWorkerForTag": "hydra_workers_online_by_tag",
        "HydraControllerDown": "hydra_controller_up",
    }
    for alert, metric in wanted.items():
        assert metric in metric_names(exprs[alert]), alert


def test_every_metric_the_rules_name_is_exported(memory):
    from tests.unit.test_attempts import end, started
    from tests.unit.test_job_metrics import scrape

    job, run_id = started(memory, monitor=True, schedule="*/5 * * * *")
    assert end(memory, job, run_id, "failed", returncode=1)
    waiting = memory.pipeline.jobs.create(
        load_job({"name": "w", "user": "u", "command": "true", "affinity": {"tags": ["gpu"]}})
    )
    assert memory.pipeline.dispatch(waiting).status.value == "pending"  # no worker has gpu
    exported = {name for name, _labels in scrape(memory)}
    used = {name for expr in alert_expressions().values() for name in metric_names(expr)}
    assert used <= exported, used - exported
