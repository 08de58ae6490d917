"""What every benchmark script here shares: percentiles and the load average (waiting for a
condition: ``hydrastack.waiting.wait_until``, shared with the tests)."""

from __future__ import annotations

import os


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (nan when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def load() -> str:
    """The load averages (1, 5, 15 min), as `uptime` prints them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())
