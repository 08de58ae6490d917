"""Local TCP ports: is one free, pick free ones for a throw-away stack, who holds one."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import psutil


def local_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing (ephemeral) ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports below the kernel's ephemeral range.

    Ports inside the ephemeral range can be taken by outgoing connections; worse, a client
    reconnecting to a stopped server on such a port can connect to itself and hold it.
    """
    low, _ = local_port_range()
    lo, hi = (20000, low - 1) if low > 21000 else (10000, 19999)
    chosen: list[int] = []
    for _ in range(2000):
        if len(chosen) == count:
            return chosen
        port = random.randint(lo, hi)
        if port not in chosen and port_is_free(port, host):
            chosen.append(port)
    # Fallback: let the kernel choose.
    socks = []
    try:
        while len(chosen) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            socks.append(sock)
            port = sock.getsockname()[1]
            if port not in chosen:
                chosen.append(port)
    finally:
        for sock in socks:
            sock.close()
    return chosen


def port_owner(port: int) -> str | None:
    """'pid 123 (redis-server *:6379)' for the process listening on ``port``, if psutil can tell."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in conns:
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            if conn.pid is None:
                return None
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(" ".join(a for a in proc.cmdline() if a).split()) or proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return f"pid {conn.pid}"
            if len(cmd) > 120:
                cmd = cmd[:117] + "..."
            return f"pid {conn.pid} ({cmd})"
    return None
