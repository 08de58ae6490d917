"""Whether each of the stack's services is started and healthy (:class:`HealthChecks`, a part
of ``Stack``): cheap checks with short timeouts, for ``wait_healthy`` and ``status``."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from hydra import names
from hydrastack.config import WORKER_PREFIX
from hydrastack.processes import Health


class HealthChecks:
    """Health checks and ``status`` (mixed into ``Stack``)."""

    # --- health --------------------------------------------------------------------------

    def _redis(self):
        if self._redis_client is None:
            import redis

            self._redis_client = redis.Redis.from_url(self.admin_broker_url, socket_timeout=2, socket_connect_timeout=1)
        return self._redis_client

    def _mongo(self):
        if self._mongo_client is None:
            import pymongo

            # ping needs no credentials (mongod and FerretDB answer it before authentication)
            url = self._external_mongo_url or f"mongodb://{self.host}:{self.mongo_port}/"
            self._mongo_client = pymongo.MongoClient(
                url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, socketTimeoutMS=5000
            )
        return self._mongo_client

    def close(self) -> None:
        """Close the clients used for health checks."""
        if self._redis_client is not None:
            self._redis_client.close()
            self._redis_client = None
        if self._mongo_client is not None:
            self._mongo_client.close()
            self._mongo_client = None

    @staticmethod
    def _http_status(url: str, timeout: float = 2.0) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _grpc_health(self) -> Health:
        """The gRPC server's own health service: started once it answers, healthy when SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(self.grpc_address) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            return Health(False, False, f"no gRPC answer ({exc.code().name})")
        serving = answer.status == health_pb2.HealthCheckResponse.SERVING
        return Health(True, serving, health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))

    def _worker_ready(self, name: str) -> bool:
        meta = self._meta(name) or {}
        prefix = name[len(WORKER_PREFIX) :]
        pattern = re.compile(rf"\b{re.escape(prefix)}@\S+ ready\.".encode())
        try:
            with open(self.log_path(name), "rb") as fh:
                fh.seek(int(meta.get("log_offset", 0)))
                return pattern.search(fh.read(4 * 1024 * 1024)) is not None
        except OSError:
            return False

    def _external(self, name: str) -> bool:
        """An external MongoDB is no process of ours: nothing to watch, no log."""
        return name == "mongo" and self.mongo_backend == "external"

    def check(self, name: str) -> Health:
        """Is ``name`` started / healthy right now (cheap, short timeouts)?"""
        if self._external(name):
            running = True
        else:
            running = self.is_running(name)
            if not running:
                return Health(False, False, "not running")
        if name == "redis":
            try:
                self._redis().ping()
                return Health(True, True, "PING ok")
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                return Health(False, False, f"PING failed: {exc}")
        if name == "mongo":
            try:
                self._mongo().admin.command("ping")
                return Health(True, True, "ping ok")
            except Exception as exc:  # noqa: BLE001
                return Health(False, False, f"ping failed: {type(exc).__name__}")
        if name == "controller":
            try:
                alive = bool(self._redis().exists(names.CONTROLLER_ALIVE_KEY))
            except Exception as exc:  # noqa: BLE001
                return Health(True, False, f"cannot read {names.CONTROLLER_ALIVE_KEY}: {exc}")
            return Health(True, alive, "alive" if alive else f"{names.CONTROLLER_ALIVE_KEY} not set yet")
        if name == "api":
            code = self._http_status(self.api_url + "/health")
            if code is None:
                return Health(False, False, "no HTTP answer")
            return Health(True, code == 200, f"GET /health -> {code}")
        if name == "flower":
            code = self._http_status(self.flower_url + "/")
            if code is None:
                return Health(False, False, "no HTTP answer")
            return Health(code < 500, code < 500, f"GET / -> {code}")
        if name == "grpc":
            return self._grpc_health()
        if name.startswith(WORKER_PREFIX):
            ready = self._worker_ready(name)
            return Health(True, ready, "ready" if ready else "not ready yet")
        return Health(True, True, "running")

    def status(self) -> dict[str, dict]:
        """name -> {pid, running, healthy, port, log, detail, ...} for the services and every pidfile."""
        wanted = ["redis", "mongo", "controller"]
        wanted += [n for n in self.names() if n.startswith(WORKER_PREFIX)]
        wanted += ["api", "grpc", "flower"]
        wanted += [n for n in self.names() if n not in wanted]
        ports = {
            "redis": self.redis_port,
            "mongo": self.mongo_port,
            "api": self.api_port,
            "flower": self.flower_port,
            "grpc": self.grpc_port,
        }
        out: dict[str, dict] = {}
        for name in wanted:
            meta = self._meta(name) or {}
            pid = self.pid(name)
            entry: dict = {
                "pid": pid,
                "running": pid is not None,
                "port": ports.get(name, meta.get("port")),
                "log": str(self.log_path(name)),
            }
            if name == "mongo":
                entry["backend"] = self.mongo_backend
                entry["url"] = self.mongo_url
                if self.mongo_backend == "external":
                    entry["port"] = None
            if name.startswith(WORKER_PREFIX):
                entry["node"] = meta.get("node")
                entry["queues"] = meta.get("queues")
                entry["concurrency"] = meta.get("concurrency")
            if entry["running"] or (name == "mongo" and self.mongo_backend == "external"):
                health = self.check(name)
                entry["healthy"] = health.healthy
                entry["detail"] = health.detail
                if name == "mongo" and self.mongo_backend == "external":
                    entry["running"] = health.started
            else:
                entry["healthy"] = False
                entry["detail"] = "stale pidfile" if self.pidfile(name).exists() else "not running"
            out[name] = entry
        return out
