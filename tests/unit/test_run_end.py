"""The end of a confined run and the pid file of a command: what the pool process does after
each command, kept cheap (docs/performance.md, "What the pool process itself spends per job")."""

from __future__ import annotations

import pytest

from hydra.celery import orphans
from hydra.execution import tree


class FakeConfinement:
    """A run's cgroup whose members leave after ``leaves_after`` looks (None: never)."""

    sandbox = None

    def __init__(self, leaves_after: int | None):
        self.leaves_after = leaves_after
        self.looks = 0
        self.killed = 0

    def empty(self) -> bool:
        self.looks += 1
        return self.leaves_after is not None and self.looks > self.leaves_after

    def pids(self) -> list[int]:
        return []

    def kill(self) -> None:
        self.killed += 1
        self.leaves_after = 0


@pytest.mark.parametrize("looks", [1, 2, 4])
def test_a_cgroup_that_empties_by_itself_is_left_to_empty(looks, monkeypatch):
    # bubblewrap's init leaves the cgroup a moment after the command's end: waited for, not killed
    monkeypatch.setattr(tree, "_SETTLE", (0.0, 0.0, 0.0, 0.0))
    confinement = FakeConfinement(leaves_after=looks)
    tree.end_tree(12345, 0.0, 1.0, confinement)
    assert confinement.killed == 0 and confinement.looks == looks + 1


def test_a_cgroup_that_stays_busy_is_killed_after_the_settling(monkeypatch):
    monkeypatch.setattr(tree, "_SETTLE", (0.0, 0.0, 0.0, 0.0))
    confinement = FakeConfinement(leaves_after=None)
    tree.end_tree(12345, 0.0, 0.0, confinement)
    assert confinement.killed == 1
    assert confinement.looks >= 1 + len(tree._SETTLE)  # every settling look was made first


def test_the_pid_file_is_written_and_removed_and_its_directory_made_again(tmp_path, monkeypatch):
    monkeypatch.setattr(orphans.tempfile, "gettempdir", lambda: str(tmp_path))
    orphans._runtime_path.cache_clear()
    try:
        directory = orphans.runtime_dir("w1")
        with orphans.command_pidfile("r1", "w1") as note:
            note(4242)
            assert (directory / "r1.pid").read_text() == "4242"
        assert not (directory / "r1.pid").exists()
        directory.rmdir()  # a cleaner of the temporary directory took it meanwhile
        with orphans.command_pidfile("r2", "w1") as note:
            note(4343)
            assert (directory / "r2.pid").read_text() == "4343"
        assert not (directory / "r2.pid").exists()
    finally:
        orphans._runtime_path.cache_clear()
