"""Affinity matching and least-loaded selection (pure logic)."""

import pytest

from hydra import names
from hydra.model.affinity import (
    Requirements,
    WorkerProfile,
    eligible,
    explain,
    least_loaded,
    mismatch,
    place,
    profile_from_queues,
)

GPU = WorkerProfile(
    id="gpu1@h", os="linux", tags=frozenset({"gpu", "ssd"}), max_concurrency=2, shells=frozenset({"bash", "sh"})
)
CPU = WorkerProfile(id="cpu1@h", os="linux", max_concurrency=2, shells=frozenset({"bash", "sh"}))
WIN = WorkerProfile(
    id="win1@h",
    os="windows",
    allowed_users=frozenset({"ana"}),
    max_concurrency=4,
    shells=frozenset({"cmd", "powershell"}),
)


def req(**kwargs):
    return Requirements.from_message(kwargs)


def test_os_must_match_when_named():
    assert mismatch(req(user="u", affinity={"os": ["linux"]}), GPU) is None
    assert "windows" in mismatch(req(user="u", affinity={"os": ["windows"]}), GPU)
    assert mismatch(req(user="ana", affinity={"os": []}), WIN) is None  # no OS named: any


def test_os_aliases_are_normalized():
    assert mismatch(req(user="ana", affinity={"os": ["win32"]}), WIN) is None


def test_required_tags_must_be_a_subset():
    assert mismatch(req(user="u", affinity={"tags": ["gpu"]}), GPU) is None
    assert mismatch(req(user="u", affinity={"tags": ["gpu", "ssd"]}), GPU) is None
    assert mismatch(req(user="u", affinity={"tags": ["gpu"]}), CPU) == "lacks tag gpu"
    assert mismatch(req(user="u", affinity={"tags": ["gpu", "tpu"]}), GPU) == "lacks tag tpu"


def test_user_must_be_allowed_by_the_worker():
    assert mismatch(req(user="ana"), WIN) is None
    assert mismatch(req(user="bob"), WIN) == "does not accept user 'bob'"
    assert mismatch(req(user="bob"), CPU) is None  # no list: any user


def test_named_shell_must_exist_on_the_worker():
    assert mismatch(req(user="ana", shell="powershell"), WIN) is None
    assert mismatch(req(user="u", shell="powershell"), CPU) == "has no powershell"
    # an args list runs without a shell, so the shell is no constraint
    assert mismatch(req(user="u", shell="powershell", args=["ls"]), CPU) is None


def test_malformed_affinity_matches_nothing():
    assert mismatch(req(user="u", affinity="linux"), CPU) is not None
    assert mismatch(req(user="u", affinity={"os": ["plan9"]}), CPU) is not None


def test_least_loaded_prefers_free_capacity_then_fewer_runs():
    big = WorkerProfile(id="big@h", os="linux", max_concurrency=8)
    assert least_loaded([CPU, big], {"cpu1@h": 1, "big@h": 5}).id == "cpu1@h"  # 0.5 < 0.625
    assert least_loaded([CPU, big], {"cpu1@h": 1, "big@h": 2}).id == "big@h"  # 0.25 < 0.5
    assert least_loaded([CPU, GPU], {}).id == "cpu1@h"  # tie: by id
    assert least_loaded([], {}) is None


def test_full_workers_still_take_jobs_on_the_least_loaded():
    assert least_loaded([CPU, GPU], {"cpu1@h": 5, "gpu1@h": 3}).id == "gpu1@h"


def test_sequential_placement_spreads_evenly():
    inflight = {}
    for _ in range(20):
        chosen = least_loaded([CPU, GPU], inflight)
        inflight[chosen.id] = inflight.get(chosen.id, 0) + 1
    assert inflight == {"cpu1@h": 10, "gpu1@h": 10}


def test_place_explains_why_nothing_is_eligible():
    placement = place(req(user="bob", affinity={"tags": ["gpu"]}), [CPU, WIN], {})
    assert placement.worker is None
    assert "cpu1@h lacks tag gpu" in placement.reason
    assert "win1@h" in placement.reason
    assert place(req(user="u"), [], {}).reason == "no worker is online"
    assert eligible(req(user="u", affinity={"tags": ["gpu"]}), [CPU, GPU, WIN]) == [GPU]


def test_explain_caps_the_list():
    workers = [WorkerProfile(id=f"w{i}@h", os="linux") for i in range(9)]
    text = explain(req(user="u", affinity={"tags": ["x"]}), workers, limit=3)
    assert text.endswith("and 6 more")


def test_profile_from_queues():
    profile = profile_from_queues(
        "gpu1@h",
        ["os.linux", "tag.gpu", "tag.ssd", "celery"],
        concurrency=4,
        platform_os="linux",
        allowed_users=frozenset({"rich"}),
    )
    assert (profile.os, profile.tags, profile.max_concurrency) == ("linux", {"gpu", "ssd"}, 4)
    assert profile.queue == names.worker_queue("gpu1@h")
    assert profile.allowed_users == {"rich"}
    assert profile_from_queues("a@h", [], concurrency=1, platform_os="macos").os == "macos"


@pytest.mark.parametrize(
    "queues,message",
    [
        (["os.plan9"], "unknown OS"),
        (["os.linux", "os.windows"], "one OS"),
        (["os.windows"], "this machine runs linux"),
    ],
)
def test_profile_rejects_impossible_os_declarations(queues, message):
    with pytest.raises(ValueError, match=message):
        profile_from_queues("a@h", queues, concurrency=1, platform_os="linux")


def test_profile_round_trips_through_json_dict():
    assert WorkerProfile.from_dict(WIN.to_dict()) == WIN
    assert WorkerProfile.from_dict(CPU.to_dict()).allowed_users is None


# -- placement explained, worker by worker (the console's placement page) -----------------------


def test_verdicts_say_why_each_worker_cannot_take_the_job():
    from hydra.model.affinity import verdicts

    tpu = req(user="u", affinity={"os": ["linux"], "tags": ["tpu"]})
    found = {v.worker_id: v for v in verdicts(tpu, [(GPU, True), (CPU, True), (WIN, False)], {})}
    assert found["gpu1@h"].text == "gpu1@h lacks tag tpu"
    assert found["cpu1@h"].text == "cpu1@h lacks tag tpu"
    assert found["win1@h"].text == "win1@h runs windows, job needs linux (and is offline)"
    assert not any(v.eligible or v.chosen for v in found.values())


def test_verdicts_mark_the_least_loaded_eligible_worker_and_name_offline_ones():
    from hydra.model.affinity import verdicts

    spare = WorkerProfile(id="cpu2@h", os="linux", max_concurrency=2, shells=frozenset({"bash"}))
    down = WorkerProfile(id="cpu3@h", os="linux", max_concurrency=2, shells=frozenset({"bash"}))
    plain = req(user="u", affinity={"os": ["linux"]}, shell="bash")
    found = verdicts(plain, [(CPU, True), (spare, True), (down, False), (WIN, True)], {"cpu1@h": 2, "cpu2@h": 1})
    assert [v.worker_id for v in found][:2] == ["cpu2@h", "cpu1@h"]  # the chosen one first, then eligible
    chosen = found[0]
    assert chosen.chosen and chosen.eligible
    assert chosen.text == "cpu2@h is eligible and least loaded (load 1/2): the router picks it"
    by_id = {v.worker_id: v for v in found}
    assert by_id["cpu1@h"].text == "cpu1@h is eligible (load 2/2)"
    assert by_id["cpu3@h"].text == "cpu3@h is offline (its profile fits)" and not by_id["cpu3@h"].eligible
    assert by_id["win1@h"].mismatch.startswith("runs windows")


def test_verdicts_name_users_and_namespaces():
    from hydra.model.affinity import verdicts

    ns_bound = WorkerProfile(id="ns1@h", os="linux", namespaces=frozenset({"team-a"}))
    job = req(user="bob", affinity={"os": []}, namespace="team-b")
    texts = {v.worker_id: v.text for v in verdicts(job, [(WIN, True), (ns_bound, True)], {})}
    assert texts == {
        "win1@h": "win1@h does not accept user 'bob'",
        "ns1@h": "ns1@h does not serve namespace 'team-b'",
    }
