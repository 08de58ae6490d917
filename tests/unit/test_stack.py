"""hydrastack: ports, command lines, pidfiles, stopping process groups (no Redis/MongoDB needed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hydrastack import (
    DEFAULT_WORKERS,
    Stack,
    StackError,
    WorkerSpec,
    cmdline_matches,
    ferretdb,
    local_port_range,
    pick_free_ports,
    port_is_free,
    read_pidfile,
    start_ticks,
    venv_bin,
)
from hydrastack import services as services_mod
from hydrastack.waiting import wait_until

SLEEP = shutil.which("sleep") or "/bin/sleep"
SH = shutil.which("sh") or "/bin/sh"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("HYDRA_MONGO_URL", "HYDRA_REDIS_PORT", "HYDRA_MONGO_PORT", "HYDRA_API_PORT", "HYDRA_FLOWER_PORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def stk(tmp_path):
    s = Stack(tmp_path / "root", redis_port=1, mongo_port=2, api_port=3, flower_port=4)
    yield s
    s.down()


def group_alive(pgid: int) -> list[int]:
    pids = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return pids


# --- ports and addresses ------------------------------------------------------------------


def test_default_ports(tmp_path):
    s = Stack(tmp_path)
    assert (s.redis_port, s.mongo_port, s.api_port, s.flower_port) == (6379, 27017, 8000, 5555)
    assert s.broker_url == f"redis://hydra:{s.redis_password}@127.0.0.1:6379/0"
    assert s.admin_broker_url == f"redis://default:{s.redis_admin_password}@127.0.0.1:6379/0"
    assert s.mongo_url == f"mongodb://hydra:{s.mongo_password}@127.0.0.1:27017/?authSource=hydra"
    assert s.api_url == "http://127.0.0.1:8000"
    assert s.flower_url == "http://127.0.0.1:5555"


def test_env_overrides_ports_and_arguments_override_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HYDRA_REDIS_PORT", "7001")
    monkeypatch.setenv("HYDRA_API_PORT", "7002")
    s = Stack(tmp_path, api_port=9000)
    assert s.redis_port == 7001
    assert s.api_port == 9000
    monkeypatch.setenv("HYDRA_FLOWER_PORT", "abc")
    with pytest.raises(StackError, match="HYDRA_FLOWER_PORT"):
        Stack(tmp_path)


def test_env_for_clients(tmp_path):
    s = Stack(tmp_path, redis_port=7001, mongo_port=7002, api_port=7003, mongo_db="t1")
    assert s.env_for_clients() == {
        "HYDRA_BROKER_URL": f"redis://hydra:{s.redis_password}@127.0.0.1:7001/0",
        "HYDRA_MONGO_URL": f"mongodb://hydra:{s.mongo_password}@127.0.0.1:7002/?authSource=t1",
        "HYDRA_MONGO_DB": "t1",
        "HYDRA_API_URL": "http://127.0.0.1:7003",
        "HYDRA_TOKEN_FILE": str(tmp_path / "admin.token"),
        "HYDRA_SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
    }
    key = tmp_path / "signing.pem"
    assert key.stat().st_mode & 0o777 == 0o600 and "BEGIN PRIVATE KEY" in key.read_text()
    assert tmp_path.stat().st_mode & 0o777 == 0o700


def test_workers_and_flower_get_the_public_key_only(tmp_path):
    from hydra.dispatch import signing

    s = Stack(tmp_path, redis_port=7001, mongo_port=7002, api_port=7003, mongo_db="t1")
    [private] = signing.parse_private_keys(s.signing_key_path.read_bytes(), "k")
    for name, publisher in (
        ("api", True),
        ("controller", True),
        ("grpc", True),
        ("worker-cpu1", False),
        ("flower", False),
    ):
        env = s.process_env(publisher=s.publishes(name))
        assert (env["HYDRA_SIGNING_KEY_FILE"] is not None) is publisher, name
        if not publisher:  # removed from what it inherits, and given the public half
            assert env["HYDRA_SIGNING_KEY"] is None
            assert env["HYDRA_VERIFY_KEYS"] == signing.public_text(private.public_key())


def test_external_mongo(tmp_path, monkeypatch):
    s = Stack(tmp_path, mongo_url="mongodb://db.example:27017/")
    assert s.mongo_backend == "external"
    assert s.mongo_url == "mongodb://db.example:27017/"
    assert s.mongo_command() is None
    monkeypatch.setenv("HYDRA_MONGO_URL", "mongodb://other:1/")
    assert Stack(tmp_path).mongo_url == "mongodb://other:1/"


def test_pick_free_ports_are_distinct_free_and_not_ephemeral():
    ports = pick_free_ports(6)
    assert len(set(ports)) == 6
    low, _ = local_port_range()
    for port in ports:
        assert port < low
        assert port_is_free(port)


def test_ephemeral_picks_all_ports_except_given(tmp_path):
    s = Stack.ephemeral(tmp_path, api_port=12345)
    ports = [s.redis_port, s.mongo_port, s.flower_port]
    assert s.api_port == 12345
    assert len(set(ports)) == 3 and 12345 not in ports
    assert all(port_is_free(p) for p in ports)


def test_port_in_use_names_the_owner(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free(port)
        s = Stack(tmp_path, api_port=port)
        with pytest.raises(StackError) as info:
            s._check_port("api", port)
        message = str(info.value)
        assert str(port) in message and "HYDRA_API_PORT" in message
        if os.geteuid() == 0:  # psutil sees every socket's owner as root
            assert f"pid {os.getpid()}" in message


def test_from_root_reads_saved_ports(tmp_path):
    s = Stack.ephemeral(tmp_path)
    s._save_config()
    again = Stack.from_root(tmp_path)
    assert (again.redis_port, again.mongo_port, again.api_port, again.flower_port) == (
        s.redis_port, s.mongo_port, s.api_port, s.flower_port,
    )  # fmt: skip
    assert Stack.from_root(tmp_path / "nothing").api_port == 8000


# --- command lines ------------------------------------------------------------------------


def test_venv_bin(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "prefix", "/venv")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.setattr(sys, "executable", "/venv/bin/python")
    assert venv_bin(tmp_path) == Path("/venv/bin")
    monkeypatch.setattr(sys, "prefix", "/usr")
    assert venv_bin(tmp_path) == tmp_path / ".venv" / "bin"


def test_redis_command(stk, monkeypatch):
    monkeypatch.setattr(services_mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert stk.redis_command() == [
        "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", "1",
        "--dir", str(stk.root / "data" / "redis"),
        "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
        "--aclfile", str(stk.root / "redis.acl"),
    ]  # fmt: skip


def test_credentials_are_made_once_kept_private_and_differ(stk):
    made = (stk.redis_password, stk.redis_admin_password, stk.mongo_password)
    assert len(set(made)) == 3 and all(len(p) >= 24 for p in made)
    assert (stk.redis_password, stk.redis_admin_password, stk.mongo_password) == made  # kept
    acl = stk.write_redis_acl()
    assert acl.stat().st_mode & 0o777 == 0o600
    assert f"user hydra on >{stk.redis_password} ~* &* +@all -@dangerous +info" in acl.read_text()
    for name in ("redis-hydra.password", "redis-admin.password", "mongo-hydra.password"):
        assert (stk.root / name).stat().st_mode & 0o777 == 0o600


def test_mongod_command_when_on_path(stk, monkeypatch):
    monkeypatch.setattr(
        services_mod.shutil, "which", lambda name: "/opt/mongo/bin/mongod" if name == "mongod" else None
    )
    assert stk.mongo_backend == "mongod"
    assert stk.mongo_command() == [
        "/opt/mongo/bin/mongod", "--dbpath", str(stk.root / "data" / "mongo"),
        "--port", "2", "--bind_ip", "127.0.0.1", "--auth",
    ]  # fmt: skip


def test_ferretdb_command_otherwise(stk, monkeypatch):
    monkeypatch.setattr(services_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(ferretdb, "find_binary", lambda: Path("/go/bin/ferretdb"))
    assert stk.mongo_backend == "ferretdb"
    data = stk.root / "data"
    assert stk.mongo_command() == [
        "/go/bin/ferretdb", "--handler=sqlite", f"--sqlite-url=file:{data / 'ferretdb'}/?_pragma=synchronous(normal)",
        "--listen-addr=127.0.0.1:2", f"--state-dir={data / 'ferretdb-state'}",
        "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
        "--setup-username=hydra", f"--setup-database={stk.mongo_db}", "--test-enable-new-auth",
    ]  # fmt: skip
    monkeypatch.setattr(ferretdb, "find_binary", lambda: None)
    with pytest.raises(StackError, match="make install"):
        stk.mongo_command()


def test_start_mongo_gives_ferretdb_its_environment(stk, monkeypatch):
    monkeypatch.setattr(services_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(ferretdb, "find_binary", lambda: Path("/go/bin/ferretdb"))
    started = {}
    monkeypatch.setattr(stk, "_ensure", lambda name, argv, **kw: started.setdefault(name, (argv, kw)))
    stk.start_mongo(wait=False)
    argv, kw = started["mongo"]
    assert argv == stk.mongo_command()
    assert kw["env"] == ferretdb.environment(stk.mongo_password)
    assert kw["env"]["GOMAXPROCS"] == "1" and kw["env"]["GOGC"] == "400"


def test_hydra_commands_use_the_venv(stk):
    b = str(stk.bin)
    assert stk.api_command() == [
        f"{b}/gunicorn", "--bind", "127.0.0.1:3", "--workers", "2", "--worker-class", "gevent",
        "--timeout", "60", "--access-logfile", "-", "--no-control-socket", "api:create_app()",
    ]  # fmt: skip
    assert stk.controller_command() == [f"{b}/python", "-m", "hydra", "controller"]
    assert stk.flower_command() == [f"{b}/celery", "-A", "hydra", "flower", "--address=127.0.0.1", "--port=4"]
    spec = WorkerSpec("gpu1", "os.linux,tag.gpu", 3, extra_args=["--prefetch-multiplier", "1"])
    assert stk.worker_command(spec) == [
        f"{b}/celery", "-A", "hydra", "worker", "-Q", "os.linux,tag.gpu", "-n", "gpu1@%h",
        "-c", "3", "-E", "--loglevel", "INFO", "--prefetch-multiplier", "1",
    ]  # fmt: skip
    assert spec.node == f"gpu1@{socket.gethostname()}"
    assert spec.process_name == "worker-gpu1"


def test_default_workers():
    assert [(w.name, w.queues, w.concurrency) for w in DEFAULT_WORKERS] == [
        ("gpu1", "os.linux,tag.gpu", 2),
        ("cpu1", "os.linux", 2),
    ]


# --- pidfiles -----------------------------------------------------------------------------


def test_cmdline_matches():
    argv = ["/v/bin/celery", "-A", "hydra", "worker"]
    assert cmdline_matches(argv, argv)
    assert cmdline_matches(argv, ["/v/bin/python3", *argv])  # shebang script
    assert cmdline_matches(["/usr/bin/redis-server", "--port", "1"], ["redis-server 127.0.0.1:1", "", ""])
    assert not cmdline_matches(argv, ["/usr/bin/vim", "notes.txt"])
    assert not cmdline_matches(argv, [])


def test_read_pidfile(tmp_path):
    path = tmp_path / "x.pid"
    assert read_pidfile(path) is None
    path.write_text("123\n")
    assert read_pidfile(path) == 123
    path.write_text("garbage")
    assert read_pidfile(path) is None


def test_spawn_writes_pidfile_log_and_environment(stk):
    proc = stk.spawn("thing", [SLEEP, "30"], env={"HYDRA_ALLOWED_USERS": "alice"}, port=1234)
    assert read_pidfile(stk.pidfile("thing")) == proc.pid
    meta = json.loads((stk.run_dir / "thing.json").read_text())
    assert meta["argv"] == [SLEEP, "30"] and meta["port"] == 1234
    assert meta["start_ticks"] == start_ticks(proc.pid)
    assert stk.is_running("thing") and stk.pid("thing") == proc.pid
    assert os.getpgid(proc.pid) == proc.pid  # own session / process group
    # /proc/<pid>/environ reads empty while the child is between fork and exec (a loaded machine)

    def written() -> list[bytes] | None:  # right after exec the kernel may not have set it up yet
        values = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        return values if values[0] else None

    environ = wait_until(written, 10, interval=0.05, message="the process's environment")
    assert f"HYDRA_BROKER_URL={stk.broker_url}".encode() in environ
    assert f"HYDRA_MONGO_URL={stk.mongo_url}".encode() in environ
    assert b"HYDRA_MONGO_DB=hydra" in environ
    assert b"HYDRA_ALLOWED_USERS=alice" in environ
    assert "starting thing" in stk.log_tail("thing")
    stk.stop("thing")
    assert not stk.is_running("thing")
    assert not stk.pidfile("thing").exists()
    assert not psutil.pid_exists(proc.pid) or psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE


def test_stale_pidfile_of_a_dead_process(stk):
    dead = subprocess.Popen([SLEEP, "0"])
    dead.wait()
    stk.run_dir.mkdir(parents=True)
    stk.pidfile("redis").write_text(f"{dead.pid}\n")
    assert not stk.is_running("redis")
    assert stk.pid("redis") is None
    stk.stop("redis")
    assert not stk.pidfile("redis").exists()


def test_pidfile_naming_a_reused_pid_is_not_ours(stk):
    me = os.getpid()  # a live process that is certainly not the one recorded
    stk.run_dir.mkdir(parents=True)
    stk.pidfile("redis").write_text(f"{me}\n")  # bare pidfile: command line decides
    assert not stk.is_running("redis")
    stk.pidfile("api").write_text(f"{me}\n")
    (stk.run_dir / "api.json").write_text(json.dumps({"pid": me, "argv": sys.argv, "start_ticks": 1}))
    assert not stk.is_running("api")  # same command line, other start time
    stk.down()  # must not signal us
    assert not stk.pidfile("redis").exists() and not stk.pidfile("api").exists()


def test_stop_kills_the_whole_group(stk):
    # sh dies on SIGTERM; its two sleeps would be left behind without the group sweep.
    proc = stk.spawn("grp", [SH, "-c", f"{SLEEP} 60 & {SLEEP} 60 & wait"])
    wait_until(lambda: len(group_alive(proc.pid)) == 3, message="the group's three processes")
    stk.stop("grp", timeout=5)
    assert group_alive(proc.pid) == []


def test_stop_sigkills_after_timeout(stk):
    proc = stk.spawn("stubborn", [SH, "-c", f"trap '' TERM; {SLEEP} 60 & wait"])
    wait_until(lambda: len(group_alive(proc.pid)) == 2, message="the group's two processes")
    started = time.monotonic()
    stk.stop("stubborn", timeout=0.5)
    assert time.monotonic() - started < 5
    assert group_alive(proc.pid) == []


def test_kill_signals_the_group_and_leaves_a_stale_pidfile(stk):
    proc = stk.spawn("w", [SH, "-c", f"{SLEEP} 60 & wait"])
    wait_until(lambda: len(group_alive(proc.pid)) == 2, message="the group's two processes")
    stk.kill("w")
    assert group_alive(proc.pid) == []
    assert not stk.is_running("w")
    assert stk.pidfile("w").exists()
    again = stk.spawn("w", [SLEEP, "30"])  # restart after a crash
    assert stk.pid("w") == again.pid


def test_ensure_is_idempotent_and_restarts_on_changed_config(stk):
    first = stk._ensure("svc", [SLEEP, "30"])
    assert not first.reused
    second = stk._ensure("svc", [SLEEP, "30"])
    assert second.reused and second.pid == first.pid
    third = stk._ensure("svc", [SLEEP, "31"])
    assert not third.reused and third.pid != first.pid
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE


def test_down_stops_in_reverse_order_and_keeps_data(stk):
    said = []
    stk.echo = said.append
    for name in ("redis", "mongo", "controller", "worker-a", "api", "flower"):
        stk.spawn(name, [SLEEP, "30"])
    (stk.data_dir / "keep.txt").write_text("x")
    stk.down()
    order = [m.split(":")[0] for m in said if "stopping" in m]
    assert order.index("flower") < order.index("worker-a") < order.index("controller")
    assert order.index("controller") < order.index("mongo") < order.index("redis")
    assert stk.names() == []
    assert (stk.data_dir / "keep.txt").exists()


def test_worker_ready_is_read_after_this_start_only(stk):
    log = stk.log_path("worker-x")
    log.parent.mkdir(parents=True)
    log.write_text("[old run] x@host ready.\n")
    stk.spawn("worker-x", [SH, "-c", f"{SLEEP} 0.3; echo '[INFO/MainProcess] x@host ready.'; {SLEEP} 30"])
    assert not stk.check("worker-x").healthy
    wait_until(lambda: stk.check("worker-x").healthy, message="worker-x healthy")


def test_log_tail(stk):
    log = stk.log_path("x")
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert stk.log_tail("x", 3) == "line 997\nline 998\nline 999\n"
    assert stk.log_tail("missing") == ""


def test_wait_healthy_reports_a_process_that_exits(stk):
    stk.spawn("worker-bad", [SH, "-c", "echo boom; exit 3"])
    with pytest.raises(StackError) as info:
        stk.wait_healthy(["worker-bad"], timeout=5)
    assert "exited" in str(info.value) and "boom" in str(info.value)


def test_start_refuses_a_port_taken_by_someone_else(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        s = Stack(tmp_path, flower_port=sock.getsockname()[1])
        with pytest.raises(StackError, match=f"port {s.flower_port}"):
            s.start_flower(wait=False)
        assert not s.pidfile("flower").exists()


def test_signal_default_is_sigterm():
    import inspect

    assert inspect.signature(Stack.stop).parameters["sig"].default == signal.SIGTERM
    assert inspect.signature(Stack.kill).parameters["sig"].default == signal.SIGKILL


def test_make_up_prints_store_urls_without_their_passwords():
    from hydrastack.__main__ import _masked

    assert _masked("redis://hydra:s3cret@127.0.0.1:6379/0") == "redis://hydra:***@127.0.0.1:6379/0"
    assert _masked("mongodb://hydra:a%40b@h:1/?authSource=hydra") == "mongodb://hydra:***@h:1/?authSource=hydra"
    assert _masked("mongodb://127.0.0.1:27017/") == "mongodb://127.0.0.1:27017/"


def test_make_up_writes_the_stacks_settings_file_and_prints_how_to_join_a_worker(tmp_path, capsys):
    from hydra.settings import read_file
    from hydrastack.__main__ import _print_up, write_settings

    stack = Stack(tmp_path / "root", redis_port=1, mongo_port=2, api_port=3, grpc_port=4, flower_port=5)
    path = write_settings(stack)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_file(path) == stack.env_for_clients()
    _print_up(stack, [], flower=False)
    printed = capsys.readouterr().out
    assert f"--config {path} worker-config --out worker.env" in printed
    assert "hydra worker --config worker.env -Q os.linux" in printed
