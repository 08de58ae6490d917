"""The gRPC server: ``hydra.v1.Hydra``, the standard health service (``grpc.health.v1``) and
server reflection, on ``HYDRA_GRPC_BIND`` (default 127.0.0.1:50051, loopback).

With ``HYDRA_GRPC_TLS_CERT`` and ``HYDRA_GRPC_TLS_KEY`` it speaks TLS only; without them it
is plaintext, which is fine on loopback or behind a TLS proxy, and logged as a warning on any
other address (bearer tokens would cross the network in the clear).

Health: the overall service ("") and ``hydra.v1.Hydra`` are SERVING while Redis, MongoDB and
a controller are up (``hydra.control.health``, looked at every :data:`HEALTH_EVERY` s) and
NOT_SERVING otherwise; on shutdown every service turns NOT_SERVING before calls drain.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hydra.control import health as hydra_health
from hydra.dispatch import signing
from hydra.rpc.service import HydraService
from hydra.settings import Settings, get_settings
from hydra.v1 import hydra_pb2, hydra_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = hydra_pb2.DESCRIPTOR.services_by_name["Hydra"].full_name
HEALTH_EVERY = 2.0
#: Seconds calls in flight get to finish on shutdown (a WatchRun is cut after that).
GRACE = 10.0
#: The largest request accepted (a job body is at most about 2 MiB in REST too).
MAX_MESSAGE = 4 * 1024 * 1024


def is_loopback(bind: str) -> bool:
    host = bind.rpartition(":")[0].strip("[]") or "0.0.0.0"
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """A configured gRPC server (not started): ``start()``, ``port``, ``stop()``."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or get_settings()
        signing.require_signing()  # it signs what it submits, as the API does: without a key it must not start
        self.grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.settings.grpc_threads, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=self.settings.grpc_threads * 4,
        )
        hydra_pb2_grpc.add_HydraServicer_to_server(HydraService(), self.grpc)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.grpc,
        )
        self.port = self._bind(self.settings.grpc_bind)
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_health, name="grpc-health", daemon=True)

    def _bind(self, bind: str) -> int:
        cert, key = self.settings.grpc_tls_cert, self.settings.grpc_tls_key
        if bool(cert) != bool(key):
            raise ValueError("set both HYDRA_GRPC_TLS_CERT and HYDRA_GRPC_TLS_KEY, or neither")
        if cert and key:
            credentials = grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])
            port = self.grpc.add_secure_port(bind, credentials)
        else:
            if not is_loopback(bind):
                log.warning(
                    "gRPC on %s without TLS: tokens cross the network in the clear "
                    "(set HYDRA_GRPC_TLS_CERT/KEY, or put a TLS proxy in front)",
                    bind,
                    extra={"event": "grpc.plaintext"},
                )
            port = self.grpc.add_insecure_port(bind)
        if port == 0:
            raise OSError(f"cannot listen on {bind} (in use?)")
        return port

    def _set_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def _watch_health(self) -> None:
        while not self._stopping.is_set():
            try:
                down = hydra_health.check()["down"]
            except Exception as exc:  # noqa: BLE001 - a failed look counts as down
                down = [f"health check: {exc}"]
            self._set_health(not down)
            self._stopping.wait(HEALTH_EVERY)

    def start(self) -> Server:
        self._set_health(False)
        self.grpc.start()
        self._watch.start()
        log.info(
            "gRPC server listening on %s (port %d)",
            self.settings.grpc_bind,
            self.port,
            extra={"event": "grpc.started"},
        )
        return self

    def stop(self, grace: float = GRACE) -> None:
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.grpc.stop(grace).wait()
        log.info("gRPC server stopped", extra={"event": "grpc.stopped"})

    def wait(self) -> None:
        self.grpc.wait_for_termination()


def serve(settings: Settings | None = None) -> None:
    """Run the server until SIGTERM or SIGINT, then stop gracefully."""
    server = Server(settings).start()
    stopped = threading.Event()

    def on_signal(signum, frame) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopped.wait()
    server.stop()
