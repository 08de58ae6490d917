"""Other machines, against the test stack: what `hydra worker-config` and `hydra client-config`
write works from nothing but the file; a missing or wrong credential stops a worker, the
controller and apply_async with one line naming the setting (never a driver's traceback);
`hydra export` works through the API with a token and no store credentials.

(A worker from the wheel, in a fresh venv, joining the stack: tests/integration/test_package.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hydra.dispatch import signing
from hydra.settings import read_file
from hydrastack import venv_bin
from tests.helpers import submit, unique, wait_run

HYDRA = str(venv_bin() / "hydra")


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with nothing of the stack's: no HYDRA_* variable, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA_") and k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture(scope="module")
def workdir():
    """A directory outside the repository (so nothing is found through the working directory)."""
    with tempfile.TemporaryDirectory(prefix="hydra-machine-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def control_file(stack, workdir) -> Path:
    """The control machine's settings, as `make up` writes them (.hydra/hydra.env)."""
    from hydrastack.__main__ import write_settings

    return write_settings(stack)


def make_config(control_file: Path, workdir: Path, command: str, *args: str) -> Path:
    out = workdir / f"{command}-{unique()}.env"
    done = subprocess.run(
        [HYDRA, "--config", str(control_file), command, "--out", str(out), *args],
        env=bare_env(),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return out


def with_value(path: Path, name: str, value: str) -> Path:
    """A copy of the settings file ``path`` with ``name`` set to ``value``."""
    values = {**read_file(path), name: value}
    copy = path.with_name(f"{unique()}.env")
    copy.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    copy.chmod(0o600)
    return copy


def refusal_of(command: list[str], workdir: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, env=bare_env(HYDRA_CONFIG=str(config)), cwd=workdir, capture_output=True, text=True, timeout=90
    )


def test_worker_config_holds_what_a_worker_needs(control_file, workdir, stack):
    values = read_file(make_config(control_file, workdir, "worker-config", "--namespaces", "team-a"))
    assert values["HYDRA_BROKER_URL"] == stack.broker_url and values["HYDRA_MONGO_URL"] == stack.mongo_url
    assert values["HYDRA_MONGO_DB"] == stack.mongo_db and values["HYDRA_NAMESPACES"] == "team-a"
    # A worker verifies and cannot sign: the public keys only, never a private one.
    assert values["HYDRA_VERIFY_KEYS"] == stack.verify_keys
    assert "HYDRA_SIGNING_KEY" not in values and "HYDRA_SIGNING_KEY_FILE" not in values
    client = read_file(make_config(control_file, workdir, "client-config", "--token", "hydra_x_y"))
    assert client["HYDRA_API_URL"] == stack.api_url and client["HYDRA_TOKEN"] == "hydra_x_y"
    # A trusted publisher signs with the stack's own private key.
    (key,) = signing.parse_private_keys(client["HYDRA_SIGNING_KEY"].encode(), "client-config")
    assert signing.public_text(key.public_key()) == stack.verify_keys == client["HYDRA_VERIFY_KEYS"]
    # Through the API only: the URL and the token, nothing a publisher or a worker holds.
    api_only = read_file(make_config(control_file, workdir, "client-config", "--api-only", "--token", "hydra_x_y"))
    assert api_only == {"HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": "hydra_x_y", "HYDRA_SUBMIT_VIA": "api"}


def wrong_password(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]+@", r"//\1:not-the-password@", url, count=1)


def without_credentials(url: str) -> str:
    return re.sub(r"//[^@/]+@", "//", url, count=1)


@pytest.mark.parametrize(
    ("setting", "spoil", "words"),
    [
        ("HYDRA_MONGO_URL", wrong_password, "MongoDB refused the credentials"),
        ("HYDRA_MONGO_URL", without_credentials, "MongoDB requires credentials and the URL has none"),
        ("HYDRA_BROKER_URL", wrong_password, "Redis refused the credentials"),
    ],
    ids=["mongo-wrong", "mongo-none", "redis-wrong"],
)
def test_a_worker_with_a_bad_credential_stops_in_one_line(control_file, workdir, setting, spoil, words):
    good = make_config(control_file, workdir, "worker-config")
    bad = with_value(good, setting, spoil(read_file(good)[setting]))
    done = refusal_of([HYDRA, "worker", "-Q", "os.linux", "-n", f"{unique('bad')}@%h", "-c", "1"], workdir, bad)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("hydra")]
    assert lines == [lines[0]] and lines[0].startswith(f"hydra: {setting}: {words}"), done.stderr
    assert "Traceback" not in done.stderr and "pymongo" not in done.stderr and "kombu" not in done.stderr


def test_the_controller_with_a_bad_credential_stops_in_one_line(control_file, workdir):
    good = make_config(control_file, workdir, "worker-config")
    bad = with_value(good, "HYDRA_MONGO_URL", wrong_password(read_file(good)["HYDRA_MONGO_URL"]))
    done = refusal_of([HYDRA, "controller"], workdir, bad)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("hydra: error: HYDRA_MONGO_URL: MongoDB refused the credentials")
    assert done.stderr.count("\n") == 1, done.stderr


def test_apply_async_with_a_bad_credential_raises_hydras_error_naming_the_setting(control_file, workdir):
    good = make_config(control_file, workdir, "client-config")
    bad = with_value(good, "HYDRA_MONGO_URL", wrong_password(read_file(good)["HYDRA_MONGO_URL"]))
    program = "from hydra import run_command; run_command.apply_async(kwargs={'command': 'true', 'user': 'x'})"
    done = refusal_of([sys.executable, "-c", program], workdir, bad)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hydra.errors.StoreCredentialsRefused: HYDRA_MONGO_URL: MongoDB refused"), done.stderr
    assert "pymongo" not in done.stderr  # the driver's own traceback is not chained in


def test_apply_async_from_a_client_settings_file_runs_a_job(control_file, workdir):
    config = make_config(control_file, workdir, "client-config")
    program = (
        "from hydra import run_command\n"
        "result = run_command.apply_async(kwargs={'command': 'echo from-afar', 'user': 'tester'})\n"
        "print(result.get(timeout=60)['stdout'], end='')\n"
    )
    done = refusal_of([sys.executable, "-c", program], workdir, config)
    assert done.returncode == 0 and done.stdout == "from-afar\n", done.stderr


def test_export_works_through_the_api_with_a_token_only(api, stack, workdir):
    stack.start_api()
    namespace = unique("export")
    job = submit(api, "echo archived", namespace=namespace)
    assert wait_run(job["run_id"]).status == "succeeded"
    out = workdir / "runs.jsonl"
    env = bare_env(HYDRA_API_URL=stack.api_url, HYDRA_TOKEN=stack.admin_token)
    argv = [HYDRA, "export", "--older-than", "0", "--namespace", namespace, "--out", str(out)]
    done = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [job["run_id"]]
    assert done.stderr.strip() == "exported 1 runs"

    operator = api.post("/tokens/", json={"name": unique("op"), "roles": {namespace: "operator"}}).json["token"]
    env["HYDRA_TOKEN"] = operator
    done = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and done.stderr.startswith("hydra: error: ") and "needs admin" in done.stderr
