"""``make chaos`` only: these tests need root (network namespaces, iptables, tc) and take
minutes, so the default run (``make test``) does not collect them; ``make chaos`` sets
HYDRA_CHAOS=1."""

from __future__ import annotations

import os

if not os.environ.get("HYDRA_CHAOS"):
    collect_ignore_glob = ["test_*.py"]
