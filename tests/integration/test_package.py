"""The installable package: `python -m build` makes a wheel of hydra-jobs that carries the
console's assets and the generated gRPC code; installed without the server extra into a fresh
venv outside the repository, it says its version, and a worker started from it with nothing but
a settings file from `hydra worker-config` (no environment of the stack, no repository, no
Flask) joins the test stack and runs a job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from hydra import names
from hydrastack import REPO, venv_bin
from tests.helpers import submit, unique, wait_run, wait_workers_online

pytestmark = pytest.mark.slow


def bare_env(**extra: str) -> dict[str, str]:
    """Nothing of the stack's or the repository's: no HYDRA_* variable, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA_", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
    return {**env, **extra}


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def place():
    with tempfile.TemporaryDirectory(prefix="hydra-package-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def wheel(place) -> Path:
    out = place / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)], timeout=300)
    (found,) = out.glob("hydra_jobs-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(place, wheel) -> Path:
    """A fresh venv with the wheel, its base dependencies held to requirements.txt's pins."""
    path = place / "venv"
    run([sys.executable, "-m", "venv", str(path)], timeout=120)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", str(wheel), "-c", str(REPO / "requirements.txt")], timeout=600, env=bare_env(), cwd=place)
    return path


def test_the_wheel_carries_the_console_assets_and_the_grpc_code(wheel):
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        entry_points = archive.read(f"hydra_jobs-{names.VERSION}.dist-info/entry_points.txt").decode()
    console = REPO / "api" / "console"
    for folder in ("templates", "static"):
        for path in (console / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert str(path.relative_to(REPO)) in files, f"{path} is not in the wheel"
    assert {"hydra/v1/hydra_pb2.py", "hydra/v1/hydra_pb2_grpc.py", "celeryconfig.py"} <= files
    assert "hydra = hydra.cli:main" in entry_points


def test_an_installed_wheel_says_its_version_and_has_no_server_parts(venv, place):
    done = run([str(venv / "bin" / "hydra"), "--version"], env=bare_env(), cwd=place)
    assert done.stdout == f"hydra {names.VERSION}\n"
    probe = "import importlib.util as u; print([m for m in ('flask', 'gunicorn', 'jwt', 'flower') if u.find_spec(m)])"
    assert run([str(venv / "bin" / "python"), "-c", probe], env=bare_env(), cwd=place).stdout == "[]\n"


def test_a_worker_from_the_wheel_and_a_settings_file_runs_a_job(stack, api, venv, place):
    from hydrastack.__main__ import write_settings

    config = place / "worker.env"
    control = write_settings(stack)
    run([str(venv_bin() / "hydra"), "--config", str(control), "worker-config", "--out", str(config)], env=bare_env())
    tag = unique("pkg")
    name = f"{tag}@{os.uname().nodename}"
    work = place / "work"
    work.mkdir()
    # The one line of the docs (Operating: joining a worker machine), from the venv's bin.
    argv = [str(venv / "bin" / "hydra"), "worker", "--config", str(config), "-Q", f"os.linux,tag.{tag}", "-n", name]
    log = open(place / "worker.log", "w")  # noqa: SIM115 - closed below, after the worker
    worker = subprocess.Popen(
        [*argv, "-c", "1"], env=bare_env(), cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_workers_online([name], timeout=90)
        job = submit(api, "echo from-the-wheel", affinity={"os": ["linux"], "tags": [tag]})
        ran = wait_run(job["run_id"], timeout=60)
        assert (ran.status, ran.worker_id, ran.stdout) == ("succeeded", name, "from-the-wheel\n")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe worker's log:\n{(place / 'worker.log').read_text()[-4000:]}") from None
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
