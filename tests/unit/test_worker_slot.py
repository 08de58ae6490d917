"""A worker's host-local resources are its own, even beside a same-named worker of another
deployment (a test stack next to a developer's, two stacks on one build machine)."""

import os
import subprocess
import sys

import psutil
import pytest

from hydra import names
from hydra.celery import orphans
from hydrastack.waiting import wait_until


def test_the_slot_names_the_worker_and_its_broker_but_no_credentials():
    a = names.worker_slot("cpu1@vm", "redis://hydra:s3cret@127.0.0.1:6379/0")
    assert a.startswith("cpu1@vm.") and "s3cret" not in a
    assert a == names.worker_slot("cpu1@vm", "redis://hydra:other@127.0.0.1:6379/0")  # same broker
    assert a != names.worker_slot("cpu1@vm", "redis://127.0.0.1:6380/0")  # another stack's
    assert a != names.worker_slot("cpu1@vm", "redis://127.0.0.1:6379/1")
    assert a != names.worker_slot("gpu1@vm", "redis://127.0.0.1:6379/0")
    sentinels = "sentinel://hydra:pw@s1:26379;sentinel://hydra:pw@s2:26379/0"
    slot = names.worker_slot("cpu1@vm", sentinels)  # a list of hosts, each with credentials
    assert "pw" not in slot and slot == names.worker_slot("cpu1@vm", sentinels.replace("pw", "new"))


def _sleeper(slot: str) -> subprocess.Popen:
    env = {**os.environ, "HYDRA_WORKER": "cpu1@vm", "HYDRA_WORKER_SLOT": slot}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads other processes' environments (/proc)")
def test_a_starting_worker_ends_its_own_leftovers_and_spares_another_deployments():
    mine = names.worker_slot("cpu1@vm", "redis://127.0.0.1:1/0")
    theirs = names.worker_slot("cpu1@vm", "redis://127.0.0.1:2/0")
    own, other = _sleeper(mine), _sleeper(theirs)
    try:

        def in_place() -> bool:  # both have their environment
            try:
                return all(psutil.Process(p.pid).environ().get("HYDRA_WORKER_SLOT") for p in (own, other))
            except psutil.Error:
                return False

        wait_until(in_place, 10, interval=0.02, message="both sleepers' environments")
        assert orphans.end_leftovers(mine) == 1
        assert own.wait(timeout=10) is not None
        assert other.poll() is None  # the other deployment's command runs on
    finally:
        for proc in (own, other):
            proc.kill()
            proc.wait()
