"""The table ``make bench`` prints from its results (bench/run.py), CPU per job beside throughput."""

from __future__ import annotations

from bench import cpu

NA = "n/a"


def _rows(results: dict) -> list[tuple[str, ...]]:
    h = results["hydra_throughput"]
    bare = results["peer_throughput"]["bare"]
    mongo = results["peer_throughput"].get("mongo")
    per_job = results.get("cpu_ms_per_job") or {}
    rows = [
        ("metric", "Hydra", "bare Celery", "Celery + MongoDB backend", "goal"),
        (
            f"throughput, {h['jobs']} echo jobs (jobs/s)",
            f"{h['per_second']:.1f}",
            f"{bare['per_second']:.1f}",
            f"{mongo['per_second']:.1f}" if mongo else NA,
            "",
        ),
        (
            "  Hydra / peer",
            "",
            f"{h['per_second'] / bare['per_second']:.2f}",
            f"{h['per_second'] / mongo['per_second']:.2f}" if mongo else NA,
            ">= 0.5 x bare, >= 3 x MongoDB backend",
        ),
    ]
    if per_job:
        rows.append(
            (
                "  server CPU per job (ms)",
                *(f"{per_job[s]['total']:.2f}" if s in per_job else NA for s in ("hydra", "bare", "mongo")),
                "Hydra <= 11",
            )
        )
    rows += [
        (
            "  jobs succeeded",
            f"{h['succeeded']}/{h['jobs']}",
            f"{bare['succeeded']}/{bare['jobs']}",
            f"{mongo['succeeded']}/{mongo['jobs']}" if mongo else NA,
            "",
        ),
        ("  REST submissions/s (8 clients)", f"{h['submit_per_second']:.1f}", "", "", ">= 300"),
    ]
    for k, rnd in enumerate(results["latency"], 1):
        hl, bl = rnd["hydra"], rnd["bare"]
        rows.append(
            (
                f"submit->start p50 / p99 at {hl['rate']:g} jobs/s, round {k} (ms)",
                f"{hl['p50_ms']:.1f} / {hl['p99_ms']:.1f}",
                f"{bl['p50_ms']:.1f} / {bl['p99_ms']:.1f}",
                "",
                "p99 <= 50 in each round",
            )
        )
    running = results.get("command_latency")
    if running:
        hl, bl = running["hydra"], running["bare"]
        rows.append(
            (
                f"submit->command running p50 / p99 at {hl['rate']:g} jobs/s (ms)",
                f"{hl['p50_ms']:.1f} / {hl['p99_ms']:.1f}",
                f"{bl['p50_ms']:.1f} / {bl['p99_ms']:.1f}",
                "",
                "p99 <= 50",
            )
        )
    failover = results.get("failover")
    if failover:
        rows.append(
            (
                f"failover kill->next attempt p50 / p99 ({failover['kills']} kills, s)",
                f"{failover['p50_s']:.2f} / {failover['p99_s']:.2f}",
                NA,
                NA,
                "p99 <= 8",
            )
        )
    return rows


def table(results: dict) -> str:
    rows = _rows(results)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    hydra_running = (results.get("command_latency") or {}).get("hydra") or {}
    if "to_started_p50_p99_ms" in hydra_running:
        a, b = hydra_running["to_started_p50_p99_ms"], hydra_running["started_to_running_p50_p99_ms"]
        lines.append(
            f"submit->command running, Hydra, p50 / p99: POST -> started_at {a[0]:.1f} / {a[1]:.1f} ms, "
            f"started_at -> the command running {b[0]:.1f} / {b[1]:.1f} ms"
        )
    if results.get("cpu_ms_per_job"):
        lines += ["", cpu.table(results["cpu_ms_per_job"])]
        checks = {s: d["check"] for s, d in results.get("cpu_detail", {}).items() if "check" in d}
        if checks:
            lines.append(
                "check, workers' processes (main + pool + jobs), ms per job, /proc vs cpuacct: "
                + "; ".join(
                    f"{s} {c['workers_proc_ms_per_job']:.2f} vs {c['workers_cpuacct_ms_per_job']:.2f}"
                    for s, c in checks.items()
                )
            )
        others = {s: d.get("others_ms", {}) for s, d in results.get("cpu_detail", {}).items()}
        if any(others.values()):
            lines.append(
                "meanwhile, the other systems' own processes above their idle rate (ms, in all): "
                + "; ".join(
                    f"during {s}: " + ", ".join(f"{o} {v:.0f}" for o, v in spent.items()) for s, spent in others.items()
                )
            )
    m = results["machine"]
    lines.append(
        f"\n{results['when']}; {m['cpus']} CPUs; store: {m['store']}; workers: {m['workers']} "
        f"(Hydra and each peer alike); Python {m['python']}"
    )
    lines.append(
        "load average (1, 5, 15 min) before each phase: " + "; ".join(f"{k} {v}" for k, v in results["load"].items())
    )
    return "\n".join(lines)


def follow_table(f: dict) -> str:
    """The followers' part of ``make bench`` (bench/follow.py): ``f`` is its result."""
    ratio_goal = "met" if f["ratio_p99"] <= 2.0 else "MISSED"
    late_goal = "met" if f["lines_later_than_1s"] == 0 and f["lines_seen"] else "MISSED"
    whole = f["followers_missing_or_repeating_lines"] == 0 and f["followers_without_lines"] == 0
    rows = [
        ("metric", "value", "goal"),
        (
            "GET /health p50 / p99 without followers (ms)",
            f"{f['health_p50_alone_ms']} / {f['health_p99_alone_ms']}",
            "",
        ),
        (
            f"GET /health p50 / p99 with {f['followers']} followers (ms)",
            f"{f['health_p50_followed_ms']} / {f['health_p99_followed_ms']}",
            "",
        ),
        ("  follower /health p99 ratio", f"{f['ratio_p99']} ({ratio_goal})", "<= 2"),
        (
            "line written -> seen by a follower p50 / p99 / max (ms)",
            f"{f['line_delay_p50_ms']} / {f['line_delay_p99_ms']} / {f['line_delay_max_ms']}",
            "",
        ),
        ("  lines seen later than 1 s", f"{f['lines_later_than_1s']} of {f['lines_seen']} ({late_goal})", "0"),
        (
            "  followers that missed or repeated a line / saw none",
            f"{f['followers_missing_or_repeating_lines']} / {f['followers_without_lines']} "
            f"({'met' if whole else 'MISSED'})",
            "0 / 0",
        ),
        ("follower requests refused or told to retry", f"{f['follower_answers_told_to_wait']}", "0"),
        ("follower streams broken off", f"{f['follower_errors']}", ""),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append(f"\n{f['when']}; {f['cpus']} CPUs; store: {f['store']}; Python {f['python']}")
    return "\n".join(lines)
