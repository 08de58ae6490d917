"""hydra.executor: argv and environment building, and real runs of real commands."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import threading
import time
from datetime import UTC

import psutil
import pytest

from hydra.execution.command import BASE_ENV_ALLOWLIST, available_shells, build_argv, default_shell, job_environment
from hydra.execution.process import _windows_command_line, execute
from hydra.model.outcome import Outcome
from hydra.model.platform import SHELLS

posix_only = pytest.mark.skipif(os.name == "nt", reason="runs POSIX shell commands")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs prctl")


def shell_argv(command: str) -> list[str]:
    return build_argv(command=command, args=None, shell="sh", os_name="linux")


def run(argv: list[str], **options) -> Outcome:
    options.setdefault("env", job_environment(None))
    options.setdefault("cwd", None)
    options.setdefault("timeout", 30)
    options.setdefault("output_limit", 64 * 1024)
    return execute(argv, **options)


_markers = itertools.count(1)


def marker() -> str:
    """A sleep duration no other process on this machine uses (pid makes it unique per run)."""
    return f"3{next(_markers):02d}.{os.getpid()}"


def sleepers(duration: str) -> list[psutil.Process]:
    """Running ``sleep <duration>`` processes (zombies have no cmdline, so they do not count)."""
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", duration]]


# --- shells and argv ---------------------------------------------------------------------


def test_default_shell_windows_is_cmd():
    assert default_shell("windows") == "cmd"
    assert default_shell("win32") == "cmd"


def test_default_shell_posix_prefers_bash(monkeypatch, tmp_path):
    assert default_shell("linux") == ("bash" if shutil.which("bash") else "sh")
    monkeypatch.setenv("PATH", str(tmp_path))  # no bash found
    assert default_shell("macos") == "sh"


def test_available_shells():
    shells = available_shells("linux")
    assert set(shells) <= set(SHELLS)
    assert "cmd" not in shells
    if os.name != "nt":
        assert "sh" in shells


def test_build_argv_shells():
    common = {"command": "echo hi", "args": None, "os_name": "linux"}
    assert build_argv(shell="bash", **common) == ["bash", "-c", "echo hi"]
    assert build_argv(shell="sh", **common) == ["sh", "-c", "echo hi"]
    assert build_argv(shell="cmd", **common) == ["cmd.exe", "/d", "/s", "/c", "echo hi"]
    program, *rest = build_argv(shell="powershell", **common)
    assert program in ("pwsh", "powershell")
    assert rest == ["-NoProfile", "-NonInteractive", "-Command", "echo hi"]


def test_build_argv_default_shell_follows_os():
    assert build_argv(command="dir", args=None, shell=None, os_name="windows")[0] == "cmd.exe"
    argv = build_argv(command="ls", args=None, shell=None, os_name="linux")
    assert argv == [default_shell("linux"), "-c", "ls"]


def test_build_argv_args_form_uses_no_shell():
    assert build_argv(command="printf", args=["%s", "a b"], shell=None, os_name="linux") == ["printf", "%s", "a b"]
    assert build_argv(command=None, args=["ls", "-l"], shell=None, os_name="linux") == ["ls", "-l"]
    assert build_argv(command="true", args=[], shell=None, os_name="linux") == ["true"]


def test_build_argv_rejects_unknown_shell_and_nothing_to_run():
    with pytest.raises(ValueError, match="unknown shell 'zsh'"):
        build_argv(command="ls", args=None, shell="zsh", os_name="linux")
    with pytest.raises(ValueError, match="nothing to run"):
        build_argv(command=None, args=None, shell=None, os_name="linux")
    with pytest.raises(ValueError, match="nothing to run"):
        build_argv(command="  ", args=None, shell="bash", os_name="linux")
    with pytest.raises(ValueError, match="nothing to run"):
        build_argv(command=None, args=[], shell=None, os_name="linux")


def test_windows_command_line_wraps_cmd_commands_in_quotes():
    argv = build_argv(command='echo "a b" & dir', args=None, shell="cmd", os_name="windows")
    assert _windows_command_line(argv) == 'cmd.exe /d /s /c "echo "a b" & dir"'
    assert _windows_command_line(["prog", "a b", 'q"x']) == 'prog "a b" q\\"x'


# --- environment -------------------------------------------------------------------------


def test_job_environment_drops_secrets_keeps_basics():
    base = {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "LC_ALL": "C.UTF-8",
        "LANG": "C",
        "TZ": "UTC",
        "HYDRA_MONGO_URL": "mongodb://u:p@db/",
        "REDIS_PASSWORD": "s3cret",
        "CELERY_BROKER_URL": "redis://:pw@r/0",
        "AWS_SECRET_ACCESS_KEY": "k",
        "SystemRoot": r"C:\Windows",  # Windows spelling
    }
    env = job_environment(None, base)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "LC_ALL": "C.UTF-8",
        "LANG": "C",
        "TZ": "UTC",
        "SystemRoot": r"C:\Windows",
    }


def test_job_environment_extra_on_top():
    env = job_environment({"HOME": "/job", "GREETING": "hi"}, {"HOME": "/home/w", "X": "1"})
    assert env == {"HOME": "/job", "GREETING": "hi"}


def test_job_environment_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("HYDRA_MONGO_URL", "mongodb://secret/")
    monkeypatch.setenv("LC_TIME", "C")
    env = job_environment(None)
    assert "HYDRA_MONGO_URL" not in env
    assert env["LC_TIME"] == "C"
    assert env["PATH"] == os.environ["PATH"]


def test_allowlist_names_are_upper_case():
    assert all(name == name.upper() for name in BASE_ENV_ALLOWLIST)


# --- execute: results --------------------------------------------------------------------


@posix_only
def test_success_with_stdout():
    outcome = run(shell_argv("echo hello"))
    assert outcome.status == "succeeded"
    assert outcome.returncode == 0
    assert outcome.stdout == "hello\n"
    assert outcome.stderr == ""
    assert outcome.stdout_bytes == 6 and not outcome.stdout_truncated
    assert outcome.error is None
    assert isinstance(outcome.pid, int)
    assert outcome.started_at.tzinfo == UTC
    assert outcome.started_at <= outcome.finished_at
    assert 0 <= outcome.duration < 5
    data = json.loads(json.dumps(outcome.as_dict()))
    assert data["started_at"].endswith("+00:00")
    assert data["stdout"] == "hello\n"


@posix_only
def test_nonzero_exit_fails_with_stderr():
    outcome = run(shell_argv("echo oops >&2; exit 3"))
    assert outcome.status == "failed"
    assert outcome.returncode == 3
    assert outcome.stderr == "oops\n"
    assert outcome.error is None


@posix_only
def test_killed_by_signal_says_so():
    outcome = run(shell_argv("kill -9 $$"))
    assert outcome.status == "failed"
    assert outcome.returncode == -9
    assert outcome.error == "killed by signal SIGKILL"


def test_missing_program():
    outcome = run(["hydra-no-such-program-xyz", "arg"])
    assert outcome.status == "failed"
    assert outcome.returncode is None and outcome.pid is None
    assert outcome.error == "command not found: hydra-no-such-program-xyz"


def test_missing_or_bad_cwd(tmp_path):
    missing = tmp_path / "missing"
    outcome = run([sys.executable, "-c", "pass"], cwd=str(missing))
    assert (outcome.status, outcome.returncode) == ("failed", None)
    assert outcome.error == f"cwd does not exist: {missing}"
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert run([sys.executable, "-c", "pass"], cwd=str(a_file)).error == (f"cwd is not a directory: {a_file}")


@posix_only
def test_permission_denied(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")  # not executable
    outcome = run([str(script)])
    assert (outcome.status, outcome.returncode) == ("failed", None)
    assert outcome.error == f"permission denied: {script}"


@posix_only
def test_env_reaches_the_command_and_nothing_else_does():
    env = job_environment({"HYDRA_TEST_VALUE": "xyz"}, {"PATH": os.environ["PATH"], "REDIS_PASSWORD": "s3cret"})
    outcome = run(shell_argv('printf "%s|%s" "$HYDRA_TEST_VALUE" "$REDIS_PASSWORD"'), env=env)
    assert outcome.stdout == "xyz|"


@posix_only
def test_cwd_is_honoured(tmp_path):
    outcome = run(["pwd", "-P"], cwd=str(tmp_path))
    assert outcome.stdout == f"{tmp_path.resolve()}\n"


@posix_only
def test_args_form_does_not_interpret_shell_syntax():
    argv = build_argv(command=None, args=["printf", "%s", "$HOME;echo x"], shell=None, os_name="linux")
    assert run(argv).stdout == "$HOME;echo x"


def test_output_cap_and_on_output_sees_everything():
    size = 3 * 1024 * 1024
    chunks: dict[str, int] = {"stdout": 0, "stderr": 0}

    def on_output(stream: str, chunk: bytes) -> None:
        chunks[stream] += len(chunk)

    code = f"import sys; sys.stdout.buffer.write(b'x' * {size}); sys.stderr.write('e')"
    outcome = run([sys.executable, "-c", code], output_limit=64 * 1024, on_output=on_output)
    assert outcome.status == "succeeded"
    assert outcome.stdout_truncated and not outcome.stderr_truncated
    assert outcome.stdout_bytes == size
    assert len(outcome.stdout) < 64 * 1024 + 100
    assert f"[... hydra: {size - 64 * 1024} bytes omitted ...]" in outcome.stdout
    assert chunks == {"stdout": size, "stderr": 1}


def test_failing_on_output_does_not_break_the_run():
    def on_output(stream: str, chunk: bytes) -> None:
        raise RuntimeError("broken sink")

    outcome = run([sys.executable, "-c", "print('still here')"], on_output=on_output)
    assert outcome.status == "succeeded"
    assert outcome.stdout.strip() == "still here"


# --- execute: ending the process tree (with a subreaper: tests/unit/test_reaper.py) ---------


@posix_only
def test_background_leftovers_end_with_the_command():
    duration = marker()
    began = time.monotonic()
    outcome = run(shell_argv(f"sleep {duration} & echo done"))
    assert outcome.status == "succeeded"
    assert outcome.stdout == "done\n"
    assert time.monotonic() - began < 5
    assert sleepers(duration) == []


@posix_only
def test_cancel_kills_the_tree_quickly():
    duration = marker()
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    began = time.monotonic()
    outcome = run(shell_argv(f"sleep {duration} & sleep {duration}"), cancel=cancel)
    assert outcome.status == "cancelled"
    assert outcome.error == "cancelled"
    assert time.monotonic() - began < 2
    assert sleepers(duration) == []


def test_cancel_before_start_never_starts(tmp_path):
    cancel = threading.Event()
    cancel.set()
    flag = tmp_path / "ran"
    outcome = run([sys.executable, "-c", f"open({str(flag)!r}, 'w')"], cancel=cancel)
    assert (outcome.status, outcome.returncode, outcome.pid) == ("cancelled", None, None)
    assert not flag.exists()


@posix_only
def test_sigterm_ignored_gets_sigkill_after_grace():
    duration = marker()
    began = time.monotonic()
    outcome = run(shell_argv(f"trap '' TERM; sleep {duration}"), timeout=0.3, kill_grace=0.3)
    assert outcome.status == "timed_out"
    assert outcome.returncode == -9
    assert time.monotonic() - began < 3
    assert sleepers(duration) == []


def test_cancel_kills_a_command_that_is_a_single_process():
    """bash -c 'sleep N' execs sleep in place: the command's own process is the whole tree."""
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    outcome = execute(
        ["bash", "-c", "sleep 61.25"],
        env=job_environment(None),
        cwd=None,
        timeout=None,
        output_limit=1024,
        cancel=cancel,
    )
    assert outcome.status == "cancelled" and time.monotonic() - started < 5


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs a pidfd (Linux)")
def test_a_run_starts_no_thread_and_its_exit_wakes_it():
    """Both pipes and the exit are read from the calling thread (a pidfd): a run starts no
    reader thread, and a command that outputs and exits is seen at its exit, not at a poll's tick."""
    seen: list[int] = []
    outcome = run(
        shell_argv("echo out; echo err >&2"), on_output=lambda stream, chunk: seen.append(threading.active_count())
    )
    assert (outcome.status, outcome.stdout, outcome.stderr) == ("succeeded", "out\n", "err\n")
    assert seen and set(seen) == {threading.active_count()}
