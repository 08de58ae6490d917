"""Where a process's CPU goes during a burst: py-spy profiles for ``make bench --py-spy``.

``bench/run.py --py-spy PATH`` records every Python process of a system under test (API,
controller, worker main and pool processes; not FerretDB or Redis) while its throughput burst
runs, with ``py-spy record --gil`` (only the thread holding the GIL is sampled, so samples
approximate CPU spent in Python, the C code it calls included) in py-spy's raw format (one
collapsed stack and its count a line), into ``.hydra/profiles/<system>-<role>-<pid>.txt``,
and writes beside each a summary: the functions with the most samples of their own (self)
and on the stack (inclusive), with file:line. py-spy is not a dependency of the project: give
the path of a binary installed anywhere (``python -m venv /tmp/pyspy && /tmp/pyspy/bin/pip
install py-spy``). Profiling slows the processes it samples: read CPU per job from a run
without it.

``python bench/profile.py FILE...`` prints the summaries of recorded profiles again.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: "function (path:line)" as py-spy writes a frame.
FRAME = re.compile(r"^(?P<fn>.*?) \((?P<path>[^()]*?):(?P<line>\d+)\)$")


class Profiler:
    """py-spy recorders, one per process, from :meth:`start` to :meth:`stop`."""

    def __init__(self, binary: str, out_dir: Path):
        self.binary, self.out_dir = binary, out_dir
        self.running: dict[Path, subprocess.Popen] = {}

    def start(self, targets: dict[str, int]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in targets.items():
            out = self.out_dir / f"{name}.txt"
            argv = [
                self.binary,
                "record",
                "--pid",
                str(pid),
                "--gil",
                "--rate",
                "100",
                "--format",
                "raw",
                "-o",
                str(out),
            ]
            log = open(self.out_dir / f"{name}.log", "wb")  # noqa: SIM115 - py-spy's own messages
            self.running[out] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """Stop every recorder (py-spy writes its file on SIGINT) and summarise each profile."""
        for proc in self.running.values():
            proc.send_signal(signal.SIGINT)
        for out, proc in self.running.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if out.exists():
                out.with_suffix(".summary").write_text(summary(out))
        self.running.clear()


def short(frame: str) -> str:
    """``function (path:line)`` with the path from the repository or site-packages on."""
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["path"]
    for marker in ("site-packages/", "/hydra/", "/api/", "/bench/", "/lib/python3"):
        if marker in path:
            path = path[path.index(marker) + (len(marker) if marker == "site-packages/" else 1) :]
            break
    return f"{match['fn']} ({path}:{match['line']})"


def summary(path: Path, top: int = 25) -> str:
    """The top frames of a raw profile by self and by inclusive samples, in per cent."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [short(f) for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return f"{path.name}: no samples\n"
    lines = [f"{path.name}: {total} samples (100 Hz, GIL holder only)", "", "self:"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f} %  {frame}" for frame, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summary(Path(name)))
