"""Job priority 0-100 (higher first) -> kombu Redis levels 0-9 (lower served first)."""

from hydra import names
from hydra.model.priority import LEVELS, broker_level, level_keys


def test_bands_of_ten_reversed():
    assert [broker_level(p) for p in (100, 91, 90, 81, 51, 50, 41, 11, 10, 0)] == [0, 0, 1, 1, 4, 5, 5, 8, 9, 9]


def test_higher_priority_never_gets_a_later_level():
    levels = [broker_level(p) for p in range(101)]
    assert levels == sorted(levels, reverse=True)
    assert set(levels) == set(LEVELS)


def test_out_of_range_and_missing_values():
    assert broker_level(None) == broker_level(50) == 5
    assert broker_level(-5) == 9 and broker_level(1000) == 0 and broker_level("x") == 5


def test_level_keys_match_kombu_naming():
    queue = names.worker_queue("a@h")
    assert level_keys(queue)[:2] == [queue, f"{queue}:1"]
    assert len(level_keys("q")) == 10
