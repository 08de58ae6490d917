"""Settings files (HYDRA_CONFIG): what `hydra worker-config` writes, every settings reader
reads, the environment wins over, and a bad one is refused in one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hydra import names
from hydra.cli import main
from hydra.cli.machines import reachable_from, render
from hydra.dispatch import signing
from hydra.errors import BrokerCredentialsRefused, StoreCredentialsRefused
from hydra.settings import CONFIG_VARIABLE, Settings, SettingsError, read_file


def settings_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "worker.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_settings_file_counts_as_the_environment_and_the_environment_wins(tmp_path):
    path = settings_file(
        tmp_path,
        "# a comment\n\nHYDRA_MONGO_DB=from_file\nexport HYDRA_CONTROLLER_TICK=0.75\n"
        "HYDRA_BROKER_URL='redis://hydra:p w@h:1/0'\nHYDRA_NAMESPACES=\"a,b\"\n",
    )
    settings = Settings.from_env({CONFIG_VARIABLE: str(path), "HYDRA_MONGO_DB": "from_env", "HYDRA_NAMESPACES": ""})
    assert settings.mongo_db == "from_env"  # the environment wins
    assert settings.namespaces == "a,b"  # an empty variable does not hide the file's value
    assert settings.controller_tick == 0.75  # parsed by type, as from the environment
    assert settings.broker_url == "redis://hydra:p w@h:1/0"  # quotes are taken off


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ("HYDRA_BROKR_URL=redis://x\n", 0o600, r"line 1: unknown setting 'HYDRA_BROKR_URL'"),
        ("HYDRA_MONGO_DB=x\njust words\n", 0o600, r"line 2: not a NAME=value line"),
        ("HYDRA_MONGO_DB=x\n", 0o644, r"unreadable to others \(chmod 600\)"),
        ("HYDRA_OUTPUT_LIMIT=lots\n", 0o600, r"HYDRA_OUTPUT_LIMIT must be an integer"),
    ],
)
def test_a_bad_settings_file_is_refused_naming_the_file_and_the_line(tmp_path, text, mode, message):
    path = settings_file(tmp_path, text, mode)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({CONFIG_VARIABLE: str(path)})


def test_a_missing_settings_file_is_named():
    with pytest.raises(SettingsError, match=r"HYDRA_CONFIG=/nonexistent/worker.env: cannot read the settings file"):
        read_file("/nonexistent/worker.env")


def test_loopback_hosts_become_the_address_other_machines_reach():
    assert reachable_from("redis://hydra:pw@127.0.0.1:6379/0", "10.0.0.5") == "redis://hydra:pw@10.0.0.5:6379/0"
    assert (
        reachable_from("mongodb://u:p@localhost:27017/?authSource=hydra", "db.example")
        == "mongodb://u:p@db.example:27017/?authSource=hydra"
    )
    assert reachable_from("sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380", "h") == (
        "sentinel://h:26379;sentinel://h:26380"
    )
    assert reachable_from("redis://127.0.0.1.example:1/0", "h") == "redis://127.0.0.1.example:1/0"  # not loopback
    assert reachable_from("redis://127.0.0.1:1/0", None) == "redis://127.0.0.1:1/0"


def test_what_is_rendered_reads_back_the_same(tmp_path):
    values = {"HYDRA_BROKER_URL": "redis://hydra:a#b@h:1/0", "HYDRA_MONGO_DB": "hydra", "HYDRA_NAMESPACES": "x y"}
    path = settings_file(tmp_path, render(values, what="a worker machine", command="worker-config", use=["use it"]))
    assert read_file(path) == values


def test_hydra_version_is_the_package_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"hydra {names.VERSION}\n"


def test_worker_config_writes_a_private_file_a_worker_can_start_from(tmp_path):
    key = signing.generate()
    control = settings_file(
        tmp_path,
        "HYDRA_BROKER_URL=redis://hydra:pw@127.0.0.1:6379/0\nHYDRA_MONGO_URL=mongodb://hydra:pw@127.0.0.1:27017/\n"
        f"HYDRA_MONGO_DB=prod\nHYDRA_SIGNING_KEY={signing.private_text(key)}\nHYDRA_API_URL=http://127.0.0.1:8000\n",
    )
    out = tmp_path / "out" / "worker.env"
    out.parent.mkdir()
    code = (
        "import sys; from hydra.cli import main; "
        f"main(['--config', {str(control)!r}, 'worker-config', '--no-check', '--host', '10.0.0.5', "
        f"'--namespaces', 'team-a', '--out', {str(out)!r}])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert read_file(out) == {
        "HYDRA_BROKER_URL": "redis://hydra:pw@10.0.0.5:6379/0",
        "HYDRA_MONGO_URL": "mongodb://hydra:pw@10.0.0.5:27017/",
        "HYDRA_MONGO_DB": "prod",
        "HYDRA_VERIFY_KEYS": signing.public_text(key.public_key()),  # the public key only
        "HYDRA_NAMESPACES": "team-a",
    }
    assert "hydra worker --config" in out.read_text()


@pytest.mark.parametrize(
    ("error", "setting"),
    [
        (StoreCredentialsRefused.because("MongoDB", "Authentication failed", anonymous=False), "HYDRA_MONGO_URL"),
        (BrokerCredentialsRefused.because("Redis", "", anonymous=True), "HYDRA_BROKER_URL"),
        (SettingsError("HYDRA_CONFIG=/x: cannot read the settings file (No such file)"), "HYDRA_CONFIG"),
    ],
)
def test_a_command_ends_with_one_line_naming_the_setting(monkeypatch, error, setting):
    import hydra.store.schema

    def refuse():
        raise error

    monkeypatch.setattr(hydra.store.schema, "ensure_schema", refuse)
    result = CliRunner().invoke(main, ["init-db"])
    assert result.exit_code == 3
    assert result.output.count("\n") == 1 and result.output.startswith(f"hydra: error: {setting}")
