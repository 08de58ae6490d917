"""The stack's addresses and credentials (:class:`Credentials`, a part of ``Stack``).

Secrets are made by the first start and kept under the root (mode 0600, the root itself 0700),
passed to Hydra's processes in their environment and never to a job's (the executor's
allowlist): Redis's two users, MongoDB's user, Flower's basic auth, the metrics token, the
admin token ``up`` bootstraps, and the Ed25519 signing key, of which workers and Flower get
the public half only.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from hydrastack.config import MONGO_USER, REDIS_USER, WORKER_PREFIX


class Credentials:
    """Addresses and secrets of a stack (mixed into ``Stack``, which sets ``root``, ``host``,
    the ports, ``mongo_db`` and ``_external_mongo_url``)."""

    @property
    def broker_url(self) -> str:
        """Redis as Hydra's processes reach it: the ACL user ``hydra`` (no CONFIG, DEBUG,
        FLUSHALL or other dangerous commands)."""
        return f"redis://{REDIS_USER}:{self.redis_password}@{self.host}:{self.redis_port}/0"

    @property
    def admin_broker_url(self) -> str:
        """Redis as its operator reaches it (the stack's own checks, tests that flush it)."""
        return f"redis://default:{self.redis_admin_password}@{self.host}:{self.redis_port}/0"

    @property
    def mongo_url(self) -> str:
        """MongoDB as Hydra's processes reach it: the user ``hydra`` (an external MongoDB's URL
        is used as given)."""
        if self._external_mongo_url:
            return self._external_mongo_url
        source = "admin" if self.mongo_backend == "mongod" else self.mongo_db
        return f"mongodb://{MONGO_USER}:{self.mongo_password}@{self.host}:{self.mongo_port}/?authSource={source}"

    @property
    def redis_password(self) -> str:
        return self._secret("redis-hydra.password", lambda: secrets.token_urlsafe(24))

    @property
    def redis_admin_password(self) -> str:
        return self._secret("redis-admin.password", lambda: secrets.token_urlsafe(24))

    @property
    def mongo_password(self) -> str:
        return self._secret("mongo-hydra.password", lambda: secrets.token_urlsafe(24))

    def write_redis_acl(self) -> Path:
        """Redis's users: ``default`` (the operator: everything) and ``hydra`` (Hydra's
        processes: no dangerous command but INFO, which the controller reads Redis's run id from)."""
        path = self.root / "redis.acl"
        lines = [
            f"user default on >{self.redis_admin_password} ~* &* +@all",
            f"user {REDIS_USER} on >{self.redis_password} ~* &* +@all -@dangerous +info",
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    @property
    def grpc_address(self) -> str:
        """Where the gRPC server listens (``host:port``, for ``grpc.insecure_channel``)."""
        return f"127.0.0.1:{self.grpc_port}"

    def _secret(self, name: str, make) -> str:
        """A secret made once (``make()``) and kept in ``<root>/<name>``, mode 0600."""
        path = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # private: no job's OS user reads what the stack keeps
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
        return path.read_text().strip()

    @property
    def flower_auth(self) -> str:
        """``user:password`` for Flower's basic auth: HYDRA_FLOWER_AUTH, else a random
        password made once and kept in ``<root>/flower.auth``."""
        return os.environ.get("HYDRA_FLOWER_AUTH") or self._secret(
            "flower.auth", lambda: f"admin:{secrets.token_urlsafe(12)}"
        )

    @property
    def metrics_token(self) -> str:
        """The token that may read /metrics only (for Prometheus), kept in ``<root>/metrics.token``."""
        return self._secret("metrics.token", lambda: secrets.token_urlsafe(32))

    @property
    def admin_token_path(self) -> Path:
        """Where ``up`` keeps the admin token it bootstraps (``bootstrap_token``)."""
        return self.root / "admin.token"

    @property
    def admin_token(self) -> str:
        return self.admin_token_path.read_text().strip()

    @property
    def signing_key_path(self) -> Path:
        """The Ed25519 private key the stack's publishers (API, gRPC, controller, and the
        clients it hands ``env_for_clients`` to) sign task messages with
        (``hydra.dispatch.signing``): ``<root>/signing.pem``, made once, mode 0600; the root
        itself is made private (0700), so no job's OS user can read what the stack keeps.
        Workers and Flower are given its public half only (:meth:`env_for_verifiers`)."""
        from hydra.dispatch import signing

        self._secret("signing.pem", lambda: signing.private_pem(signing.generate()).strip())
        return self.root / "signing.pem"

    @property
    def verify_keys(self) -> str:
        """The public half of the signing key, as a worker's ``HYDRA_VERIFY_KEYS``."""
        from hydra.dispatch import signing

        keys = signing.parse_private_keys(self.signing_key_path.read_bytes(), str(self.signing_key_path))
        return ",".join(signing.public_text(key.public_key()) for key in keys)

    @property
    def mongo_backend(self) -> str:
        """'external' (HYDRA_MONGO_URL / mongo_url), 'mongod' (on PATH) or 'ferretdb'."""
        if self._external_mongo_url:
            return "external"
        if shutil.which("mongod"):
            return "mongod"
        return "ferretdb"

    def env_for_clients(self) -> dict[str, str]:
        return {
            "HYDRA_BROKER_URL": self.broker_url,
            "HYDRA_MONGO_URL": self.mongo_url,
            "HYDRA_MONGO_DB": self.mongo_db,
            "HYDRA_API_URL": self.api_url,
            "HYDRA_TOKEN_FILE": str(self.admin_token_path),
            "HYDRA_SIGNING_KEY_FILE": str(self.signing_key_path),
        }

    def env_for_verifiers(self) -> dict[str, str | None]:
        """What workers and Flower get: the clients' settings with the public keys instead of
        the private one (None: removed from the environment they would inherit)."""
        env: dict[str, str | None] = {**self.env_for_clients(), "HYDRA_VERIFY_KEYS": self.verify_keys}
        env.update(HYDRA_SIGNING_KEY_FILE=None, HYDRA_SIGNING_KEY=None)
        return env

    @staticmethod
    def publishes(name: str) -> bool:
        """Whether the process ``name`` is given the private key (workers and Flower are not)."""
        return not (name.startswith(WORKER_PREFIX) or name == "flower")
