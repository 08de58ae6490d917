"""``python -m hydrastack up | down | status | logs``: the command line behind ``make up``/``make down``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hydrastack.processes import StackError
from hydrastack.services import DEFAULT_WORKERS, REPO, Stack, WorkerSpec


def _masked(url: str) -> str:
    """``url`` with its password shown as ``***`` (the passwords stay in their 0600 files)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


#: Where Redis and the MongoDB server also listen, besides loopback, so that workers on other
#: machines reach them (``HYDRA_STACK_HOST=10.0.0.5 make up``); unset: loopback only.
HOST_VARIABLE = "HYDRA_STACK_HOST"


def write_settings(stack: Stack) -> Path:
    """``<root>/hydra.env``: this stack's settings for Hydra's commands on this machine
    (``hydra --config .hydra/hydra.env ...``, ``HYDRA_CONFIG``), mode 0600 (it holds the
    passwords): what ``hydra worker-config`` and ``hydra client-config`` read."""
    path = stack.root / "hydra.env"
    lines = ["# This stack's settings (written by `make up`): hydra --config .hydra/hydra.env COMMAND"]
    lines += [f"{name}={value}" for name, value in stack.env_for_clients().items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write("\n".join(lines) + "\n")
    return path


def _print_up(stack: Stack, workers: Sequence[WorkerSpec], flower: bool) -> None:
    backend = stack.mongo_backend
    lines = [
        "",
        f"Hydra is up (root {stack.root})",
        f"  Console   {stack.api_url}/ui/   (sign in with the admin token below, or any API token)",
        f"  API       {stack.api_url}   (docs: {stack.api_url}/docs, metrics: {stack.api_url}/metrics)",
        f"  gRPC      {stack.grpc_address}   (hydra.v1.Hydra, health checking, reflection; same token)",
    ]
    if flower:
        user, _, password = stack.flower_auth.partition(":")
        lines.append(f"  Flower    {stack.flower_url}   (user {user!r}, password {password!r})")
    lines += [
        f"  Redis     {_masked(stack.broker_url)}   (password: {stack.root / 'redis-hydra.password'})",
        f"  MongoDB   {_masked(stack.mongo_url)}   ({backend}, database {stack.mongo_db!r};"
        f" password: {stack.root / 'mongo-hydra.password'})",
    ]
    for i, spec in enumerate(workers):
        label = "  Workers   " if i == 0 else "            "
        lines.append(f"{label}{spec.node:<28} queues {spec.queues}  (concurrency {spec.concurrency})")
    token = stack.admin_token_path
    settings = _shown(write_settings(stack))
    lines += [
        f"  Logs      {stack.log_dir}/",
        "",
        f"Every call needs a token. The admin token is in {token} (mode 0600; the CLI, the Python",
        "client and examples/ read it there, or from $HYDRA_TOKEN):",
        f'  curl -H "Authorization: Bearer $(cat {token})" {stack.api_url}/workers/',
        f"  export HYDRA_TOKEN=$(cat {token}); .venv/bin/hydra token create --name me --role default=operator",
        f"Prometheus scrapes /metrics with the token in {stack.root / 'metrics.token'}.",
        "",
        f"This stack's settings are in {settings} (mode 0600). Another machine joins as a worker with",
        "a settings file made from them (copy it there with scp -p, and the wheel from `make wheel`):",
        f"  .venv/bin/hydra --config {settings} worker-config --out worker.env",
        "  there: pip install hydra_jobs-*.whl && hydra worker --config worker.env -Q os.linux",
    ]
    if stack.host == "127.0.0.1":
        lines.append(f"  (Redis and MongoDB listen on loopback only: start with {HOST_VARIABLE}=<address> make up.)")
    lines += [
        "",
        "Run `make status` to check on it, `make logs` to read the logs, `make down` to stop.",
    ]
    print("\n".join(lines))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (``.hydra/hydra.env``)."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _print_status(status: dict[str, dict]) -> None:
    rows = [("NAME", "PID", "STATE", "PORT", "DETAIL")]
    for name, entry in status.items():
        if entry.get("running"):
            state = "healthy" if entry.get("healthy") else "starting"
        else:
            state = "stopped"
        if entry.get("backend") == "external":
            state += " (external)"
        detail = entry.get("detail", "")
        if entry.get("queues"):
            detail = f"{entry.get('node')} -Q {entry['queues']}; {detail}"
        if name == "mongo":
            detail = f"{entry.get('backend')}; {detail}"
        rows.append((name, str(entry.get("pid") or "-"), state, str(entry.get("port") or "-"), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hydrastack", description="Run a local Hydra stack.")
    parser.add_argument("--root", type=Path, default=REPO / ".hydra", help="state directory (default: .hydra)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything and wait until healthy")
    p_up.add_argument("--no-flower", action="store_true", help="do not start Flower")
    p_up.add_argument("--wait", type=float, default=90, help="seconds to wait for health (default 90)")
    sub.add_parser("down", help="stop everything this root started (data is kept)")
    p_status = sub.add_parser("status", help="show what runs")
    p_status.add_argument("--json", action="store_true")
    p_logs = sub.add_parser("logs", help="print the tail of the logs")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("names", nargs="*")
    args = parser.parse_args(argv)

    try:
        # `up` follows the environment (ports, HYDRA_MONGO_URL); the others look at what runs.
        if args.command == "up":
            stack = Stack(args.root, host=os.environ.get(HOST_VARIABLE) or "127.0.0.1")
        else:
            stack = Stack.from_root(args.root)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack.echo = lambda msg: print(f"  {msg}", flush=True)

    if args.command == "up":
        workers = list(DEFAULT_WORKERS)
        print(f"Starting Hydra (root {stack.root}) ...", flush=True)
        try:
            stack.up(workers=workers, flower=not args.no_flower, wait=args.wait)
        except StackError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            print("\nSome processes may still run: `make status`, `make logs`, `make down`.", file=sys.stderr)
            return 1
        finally:
            stack.close()
        _print_up(stack, workers, not args.no_flower)
        return 0
    if args.command == "down":
        if not stack.names():
            print(f"Nothing to stop (no pidfiles in {stack.run_dir}).")
            return 0
        stack.down()
        print(f"Stopped. Data kept in {stack.data_dir} (`make clean` deletes it).")
        return 0
    if args.command == "status":
        status = stack.status()
        stack.close()
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return 0
    if args.command == "logs":
        chosen = args.names or sorted(p.stem for p in stack.log_dir.glob("*.log"))
        if not chosen:
            print(f"No logs in {stack.log_dir}.")
        for name in chosen:
            print(f"==> {stack.log_path(name)} <==")
            print(stack.log_tail(name, args.lines), end="")
            print()
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
