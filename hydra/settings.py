"""Hydra's settings, read from the environment (and a settings file) once per process.

Every component (API, controller, workers, CLI) reads its configuration through
:func:`get_settings`; ``celeryconfig.py`` only maps these values onto Celery's names.
Each field is read from the variable ``HYDRA_<FIELD NAME>`` (``broker_url`` from
``HYDRA_BROKER_URL``; the log settings from ``LOG_LEVEL`` and ``LOG_FORMAT``) and parsed as
the field's type; unset or empty means the default.

``HYDRA_CONFIG`` may name a settings file of ``HYDRA_<NAME>=value`` lines (what ``hydra
worker-config`` and ``hydra client-config`` write; the same syntax as a systemd
``EnvironmentFile``): its values count as if they were in the environment, and a variable
that is in the environment wins over the file. The file holds passwords, so others (neither its owner
nor its group: the OS user jobs run as) may not read it, and it may name only known settings (a misspelt name would
otherwise be silently ignored).
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

PREFIX = "HYDRA_"
#: The variable naming a settings file (see the module docstring).
CONFIG_VARIABLE = "HYDRA_CONFIG"


class SettingsError(ValueError):
    """A setting (a variable, or a line of the settings file) that cannot be used; the
    message is one line naming it."""


def setting(default, doc: str):
    """A settings field: its default and what it means (``hydra.settings`` documents each)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Typed configuration; each field is read from ``HYDRA_<NAME>``."""

    broker_url: str = setting("redis://127.0.0.1:6379/0", "The Redis broker (also holds the live worker registry).")
    broker_master_name: str | None = setting(
        None, "With a sentinel:// HYDRA_BROKER_URL: the name of the master the sentinels watch."
    )
    broker_sentinel_password: str | None = setting(
        None, "With a sentinel:// HYDRA_BROKER_URL: the sentinels' own password, when they require one."
    )
    mongo_url: str = setting("mongodb://127.0.0.1:27017/", "The MongoDB server (or FerretDB) holding jobs and runs.")
    mongo_db: str = setting("hydra", "Database name.")
    mongo_timeout: float = setting(5.0, "Seconds before a MongoDB call gives up (server selection).")
    output_limit: int = setting(256 * 1024, "Bytes of stdout and of stderr kept per run.")
    output_dir: str | None = setting(
        None,
        "A directory (shared by the workers, the API and the controller) where each run's full output "
        "is kept as <run_id>.log; unset: only the head and tail are kept, in MongoDB.",
    )
    output_dir_limit: int = setting(1024**3, "Bytes of one run's output kept in HYDRA_OUTPUT_DIR at most.")
    offline_after: float = setting(2.5, "Heartbeat intervals without a heartbeat before a worker is offline.")
    controller_tick: float = setting(0.5, "Seconds between the controller's housekeeping passes.")
    leader_ttl: float = setting(5.0, "Seconds a controller's leader lease lasts without renewal.")
    forget_after: float = setting(86400.0, "Seconds a worker stays listed after it went offline.")
    visibility_timeout: float = setting(3600.0, "Seconds before Redis hands an unacknowledged message out again.")
    router_cache: float = setting(0.5, "Seconds the router may reuse the registry it read.")
    default_timeout: float = setting(3600.0, "Command timeout (seconds) when a job gives none.")
    api_url: str = setting("http://127.0.0.1:8000", "Where clients (CLI, examples) find the API.")
    scheduler_lock_ttl: float = setting(10.0, "Seconds the cron scheduler's leader lock lives unless renewed.")
    misfire_grace: float = setting(60.0, "Seconds a cron tick may be late and still count as on time.")
    allowed_users: str | None = setting(None, "A worker's allowed users, comma separated (unset or '*': any).")
    retention_days: float = setting(
        30.0,
        "Days of history kept: runs that ended longer ago are pruned with their fences and output, and a job "
        "with its last run unless it has a cron schedule (0: keep everything; otherwise at least 1).",
    )
    retention_batch: int = setting(200, "Runs the leading controller prunes per pass (one pass every few seconds).")
    retention_export: str | None = setting(
        None, "A directory: runs are appended there as JSON Lines (hydra-runs-<date>.jsonl) before they are pruned."
    )
    namespaces: str | None = setting(None, "A worker's namespaces, comma separated (unset or '*': any).")
    token: str | None = setting(None, "The API token clients (CLI, client, examples) send.")
    token_file: str = setting(".hydra/admin.token", "Where clients read the token when HYDRA_TOKEN is unset.")
    metrics_token: str | None = setting(None, "A token that may only read /metrics (for Prometheus).")
    oidc_issuer: str | None = setting(None, "An OpenID Connect issuer whose JWTs the API accepts.")
    oidc_audience: str | None = setting(None, "The audience those JWTs must name.")
    oidc_jwks_url: str | None = setting(None, "The issuer's JWKS (default: from its discovery document).")
    oidc_user_claim: str = setting("preferred_username", "The claim holding the user's name (else sub).")
    oidc_roles_claim: str = setting("hydra_roles", "The claim holding namespace=role grants.")
    oidc_client_id: str | None = setting(
        None, "The web console's client id at the issuer: enables its 'Sign in with OIDC' (code flow, PKCE)."
    )
    oidc_client_secret: str | None = setting(None, "That client's secret, for a confidential client (else PKCE only).")
    default_max_running: int | None = setting(None, "A namespace's in-flight runs at most, unless it sets its own.")
    default_max_queued: int | None = setting(
        None, "A namespace's runs waiting on workers at most, unless it sets its own."
    )
    # -- message authenticity (hydra.dispatch.signing) ------------------------------------------
    signing_key: str | None = setting(
        None, "Publishers' Ed25519 private key(s) inline: base64 of the 32 raw bytes, comma separated; the first signs."
    )
    signing_key_file: str | None = setting(
        None, "A file (mode 0600) of Ed25519 private keys (PEM): the first signs task messages, all verify."
    )
    verify_keys: str | None = setting(
        None,
        "Public keys that verify task messages (base64 of the 32 raw bytes, comma separated): what a worker holds.",
    )
    verify_key_file: str | None = setting(None, "A file of such public keys, one per line, or PEM PUBLIC KEY blocks.")
    submit_via: str = setting(
        "auto",
        "How run_command.apply_async submits: broker (with this process's signing key), api (through the REST API "
        "as HYDRA_TOKEN's principal), or auto: the API when this process has HYDRA_TOKEN and no signing key.",
    )
    # -- isolation of commands (hydra.execution.isolation) --------------------------------------
    run_as: str = setting("hydra-job", "The OS user commands run as when the worker runs as root.")
    user_map: str | None = setting(None, "Hydra user -> OS user, e.g. 'alice=alice,bob=svc-bob' (others: run_as).")
    allow_root: bool = setting(False, "Allow commands to run as root (run_as or user_map naming root).")
    cwd_roots: str | None = setting(None, "Directories (comma separated) under which a job's cwd may be.")
    work_root: str | None = setting(
        None, "Where each run's fresh working directory is made (default: <tmp>/hydra-runs)."
    )
    sandbox: str = setting("auto", "auto | bwrap | none: run commands in a bubblewrap sandbox (own pid namespace).")
    cgroup: str = setting("auto", "auto | v2 | v1 | none: one cgroup per run (v1: the freezer and pids controllers).")
    # -- egress of webhooks (hydra.execution.egress) --------------------------------------------
    webhook_allow: str | None = setting(
        None,
        "Addresses webhooks may reach although internal: CIDRs, optionally with :port (e.g. 10.1.0.0/16,127.0.0.1:9000).",
    )
    # -- notifications (hydra.control.notifier) --------------------------------------------------
    notify_attempts: int = setting(8, "Attempts at delivering one notification before it is recorded failed.")
    notify_backoff: float = setting(
        5.0, "Seconds before a notification's second attempt; doubling each time (max 1 h)."
    )
    notify_timeout: float = setting(10.0, "Seconds one notification attempt may take (connect and answer).")
    # -- sweeps and serving ---------------------------------------------------------------------
    queued_bound: float = setting(300.0, "Seconds a queued run may wait before the controller looks for its message.")
    max_followers: int = setting(
        2, "Page requests (GET /runs/<id>/output) one API process serves at once (followers: no limit)."
    )
    grpc_bind: str = setting("127.0.0.1:50051", "Where the gRPC server listens (host:port; loopback by default).")
    grpc_threads: int = setting(16, "Calls the gRPC server serves at once (a WatchRun holds one while it streams).")
    grpc_tls_cert: str | None = setting(None, "PEM certificate chain: the gRPC server then speaks TLS only.")
    grpc_tls_key: str | None = setting(None, "PEM private key of that certificate.")
    # -- logs (hydra.logs; read from the variables without the prefix: LOG_LEVEL, LOG_FORMAT) -------
    log_level: str | None = setting(
        None, "DEBUG, INFO, WARNING or ERROR (unset: INFO, or the level `hydra --log-level` gives)."
    )
    log_format: str = setting("text", "text (one line per record, fields as key=value) or json (one object per line).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from its ``HYDRA_*`` variable, or else from the settings file
        ``HYDRA_CONFIG`` names; raises SettingsError naming a bad variable or file line."""
        environ = os.environ if environ is None else environ
        path = environ.get(CONFIG_VARIABLE)
        if path:
            environ = {**read_file(path), **{k: v for k, v in environ.items() if v != ""}}
        types = typing.get_type_hints(cls)
        values = {}
        for item in fields(cls):
            name = env_name(item.name)
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            values[item.name] = _parse(types[item.name], raw, name)
        return cls(**values)

    def as_dict(self) -> dict:
        return {item.name: getattr(self, item.name) for item in fields(self)}


def known_names() -> frozenset[str]:
    """Every variable a settings file may set (``HYDRA_BROKER_URL``, ...)."""
    return frozenset(env_name(item.name) for item in fields(Settings))


def read_file(path: str | os.PathLike) -> dict[str, str]:
    """The ``NAME=value`` lines of a settings file (``#`` comments, blank lines and an
    ``export`` prefix allowed; a value may be quoted). Raises SettingsError naming the file and
    what is wrong: unreadable, readable by others, a line that is no setting."""
    where = f"{CONFIG_VARIABLE}={os.fspath(path)}"
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read the settings file ({exc.strerror or exc})") from None
    if os.name == "posix" and info.st_mode & 0o007:
        raise SettingsError(f"{where}: a settings file holds passwords: make it unreadable to others (chmod 600)")
    known = known_names()
    values: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, equals, value = text.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not equals or name not in known:
            what = f"unknown setting {name!r}" if equals else "not a NAME=value line"
            raise SettingsError(f"{where}, line {number}: {what}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


#: Settings read from the usual variable, without the prefix.
UNPREFIXED = {"log_level": "LOG_LEVEL", "log_format": "LOG_FORMAT"}


def env_name(field_name: str) -> str:
    """The environment variable of a settings field: ``broker_url`` -> ``HYDRA_BROKER_URL``
    (``log_level`` -> ``LOG_LEVEL``: :data:`UNPREFIXED`)."""
    return UNPREFIXED.get(field_name) or PREFIX + field_name.upper()


def _parse(kind, raw: str, name: str):
    base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
    if base is str:
        return raw
    if base is bool:
        word = raw.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    try:
        return base(raw)
    except ValueError:
        article = "an integer" if base is int else "a number"
        raise SettingsError(f"{name} must be {article}, got {raw!r}") from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()``).
    Raises SettingsError naming a bad variable or settings file line."""
    return Settings.from_env()
