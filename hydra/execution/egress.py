"""Where a webhook may go: public addresses only, unless the operator allow-lists more.

The ``http`` executor resolves the URL's host first and checks every address it resolves
to; it then connects to an address it checked (never resolving again, so DNS cannot hand
it another one in between), keeping the host name for TLS (SNI and certificate checks) and
the ``Host`` header. Refused, unless allow-listed: loopback, private (RFC 1918, unique
local), link-local (which holds the cloud metadata address 169.254.169.254), shared
(100.64.0.0/10), multicast, unspecified (``0.0.0.0``), reserved and documentation ranges -
whatever Python's ``ipaddress`` does not call global - in any spelling (``2130706433``,
``0x7f000001``, ``127.1`` and ``[::ffff:127.0.0.1]`` all resolve to loopback). Redirects are
never followed: a 3xx answer ends the run ``failed``, naming where it pointed. Proxies
from the environment are not used.

The knob: ``HYDRA_WEBHOOK_ALLOW``, comma-separated networks, each optionally with a port:
``10.1.0.0/16``, ``127.0.0.1:9000``, ``[fd00::/8]:443``. An allowed entry lets webhooks reach
those addresses (on that port only, when one is given).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(OSError):
    """The webhook's target is not an address this worker may reach."""


@dataclass(frozen=True)
class Allowed:
    network: Network
    port: int | None = None

    def admits(self, address: Address, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def parse_allow(text: str | None) -> tuple[Allowed, ...]:
    """``"10.0.0.0/8, 127.0.0.1:9000, [::1]:8080"`` -> entries; ValueError naming a bad one."""
    entries = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        port: int | None = None
        net = item
        if item.startswith("["):
            net, _, rest = item[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"HYDRA_WEBHOOK_ALLOW: {item!r} is not [network]:port")
                port = int(rest[1:])
        elif item.count(":") == 1:
            net, _, port_text = item.partition(":")
            port = int(port_text)
        try:
            network = ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ValueError(f"HYDRA_WEBHOOK_ALLOW: {item!r} is not a network (CIDR), optionally with :port") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"HYDRA_WEBHOOK_ALLOW: {item!r} has no valid port")
        entries.append(Allowed(network, port))
    return tuple(entries)


def why_internal(address: Address) -> str | None:
    """What kind of internal address this is (None: a public one)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    for test, kind in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local (cloud metadata lives there)"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, test):
            return kind
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    allowed: tuple[Allowed, ...] = field(default_factory=tuple)

    @classmethod
    def from_text(cls, text: str | None) -> EgressPolicy:
        return cls(parse_allow(text))

    def refusal(self, address: Address, port: int) -> str | None:
        """Why a webhook may not connect to ``address:port`` (None: it may)."""
        if any(entry.admits(address, port) for entry in self.allowed):
            return None
        kind = why_internal(address)
        if kind is None:
            return None
        return (
            f"{address} is a {kind} address; webhooks reach internal addresses only when HYDRA_WEBHOOK_ALLOW lists them"
        )

    def resolve(self, host: str, port: int) -> list:
        """``getaddrinfo`` for a TCP connection to ``host:port``, every answer checked; raises
        EgressRefused naming the first refused address (a host with any internal address is
        refused as a whole)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise EgressRefused(f"cannot resolve {host!r}: {exc}") from None
        if not infos:
            raise EgressRefused(f"{host!r} resolves to no address")
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            reason = self.refusal(address, port)
            if reason:
                raise EgressRefused(f"refused to connect to {host!r}: {reason}")
        return infos

    def connect(self, host: str, port: int, timeout: float | None, source_address=None, socket_options=None):
        """A TCP socket connected to ``host:port`` through a checked address."""
        last: OSError | None = None
        for family, kind, proto, _name, sockaddr in self.resolve(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                for option in socket_options or ():
                    sock.setsockopt(*option)
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                last = exc
                sock.close()
        raise last or EgressRefused(f"cannot connect to {host!r}")
