"""The tests and the bench name Redis keys and queues through ``hydra.names``, never by
spelling them: a renamed key would otherwise leave a test reading a key nobody writes,
passing on an empty answer."""

from __future__ import annotations

import re
from pathlib import Path

from hydra import names

REPO = Path(__file__).resolve().parents[2]


def owned_names() -> set[str]:
    """Every key (or key prefix) and queue prefix ``hydra.names`` declares."""
    owned = {
        value
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith(names.REDIS_PREFIX)
    }
    owned.discard(names.REDIS_PREFIX)  # the bare prefix: a made-up key in a test may start with it
    cut = "\0"
    owned |= {names.stop_key(cut), names.job_slots_key(cut), names.quota_key(cut, "x"), names.worker_queue(cut)}
    return {name.split(cut)[0] for name in owned}


def test_no_test_or_bench_spells_a_name_that_hydra_names_owns():
    pattern = re.compile("[\"'](?:" + "|".join(map(re.escape, sorted(owned_names(), key=len, reverse=True))) + ")")
    spelled = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for folder in ("tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert spelled == []


def test_the_check_finds_a_spelled_key():
    pattern = re.compile("[\"'](?:" + "|".join(map(re.escape, owned_names())) + ")")
    assert pattern.search('redis.hget("hydra:workers", node)')
    assert pattern.search("queue == f'hydra.worker.{worker}'")
    assert pattern.search('r.exists(f"hydra:stop:{run_id}")')
    assert not pattern.search('"redis://hydra:pw@h:1/0"') and not pattern.search('"hydra:test"')
