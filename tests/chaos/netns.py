"""Test hosts in network namespaces, on a private subnet the test owns (``make chaos``).

:class:`FaultNet` makes a bridge in the root namespace with the subnet's first address (where
the stack's Redis and MongoDB server listen, beside loopback) and, per test host, a network
namespace joined to the bridge by a veth pair. Faults are made inside what it created: the
iptables rules live in the host's own namespace (they vanish with it). Every name starts with :data:`PREFIX`; :meth:`FaultNet.teardown` (and
:func:`sweep_leftovers`, for a run that was killed) removes exactly those.

Traffic stays inside: the hosts' only link is the bridge, and the servers they talk to listen
on the bridge's own address.
"""

from __future__ import annotations

import ipaddress
import random
import subprocess
from dataclasses import dataclass

PREFIX = "hydrachaos"
#: The pool the test's /24 is picked from (one not routed anywhere on this machine).
POOL = ipaddress.ip_network("10.213.0.0/16")


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


def in_use(subnet: ipaddress.IPv4Network) -> bool:
    routes = run("ip", "-4", "-o", "route", "show", "table", "all").stdout
    addrs = run("ip", "-4", "-o", "addr", "show").stdout
    for word in (routes + " " + addrs).split():
        try:
            net = ipaddress.ip_network(word, strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.prefixlen > 0 and net.overlaps(subnet):
            return True
    return False


def sweep_leftovers() -> None:
    """Remove namespaces and links a killed earlier run of this test left (by their prefix)."""
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX + "-"):
            run("ip", "netns", "del", name, check=False)
    for line in run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        if f"alias {PREFIX}" in line:
            name = line.split(":")[1].strip().split("@")[0]
            run("ip", "link", "del", name, check=False)


@dataclass
class FaultHost:
    name: str
    netns: str
    address: str
    veth_host: str
    veth_ns: str

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.netns, *argv, check=check)

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


class FaultNet:
    def __init__(self) -> None:
        self.tag = f"{random.randrange(16**4):04x}"
        self.bridge = f"hc{self.tag}br"
        self.hosts: dict[str, FaultHost] = {}
        subnets = list(POOL.subnets(new_prefix=24))
        random.shuffle(subnets)
        self.subnet = next(s for s in subnets if not in_use(s))
        self.gateway = str(self.subnet.network_address + 1)
        self._created = False

    def create(self) -> None:
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self._created = True
        run("ip", "link", "set", self.bridge, "alias", f"{PREFIX} test bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def add_host(self, name: str) -> FaultHost:
        index = len(self.hosts) + 2
        host = FaultHost(
            name=name,
            netns=f"{PREFIX}-{self.tag}-{name}",
            address=str(self.subnet.network_address + index),
            veth_host=f"hc{self.tag}{index}h",
            veth_ns=f"hc{self.tag}{index}n",
        )
        run("ip", "netns", "add", host.netns)
        self.hosts[name] = host
        run("ip", "link", "add", host.veth_host, "type", "veth", "peer", "name", host.veth_ns)
        run("ip", "link", "set", host.veth_host, "alias", f"{PREFIX} {name}")
        run("ip", "link", "set", host.veth_ns, "netns", host.netns)
        run("ip", "link", "set", host.veth_host, "master", self.bridge, "up")
        host.exec("ip", "link", "set", "lo", "up")
        host.exec("ip", "addr", "add", f"{host.address}/24", "dev", host.veth_ns)
        host.exec("ip", "link", "set", host.veth_ns, "up")
        return host

    # -- faults -------------------------------------------------------------------------------
    def cut(self, host: FaultHost, ports: list[int]) -> None:
        """Drop (silently, as a broken link does) every packet between ``host`` and the
        servers on ``ports``."""
        for port in ports:
            host.exec("iptables", "-A", "OUTPUT", "-d", self.gateway, "-p", "tcp", "--dport", str(port), "-j", "DROP")
            host.exec("iptables", "-A", "INPUT", "-s", self.gateway, "-p", "tcp", "--sport", str(port), "-j", "DROP")

    def lose(self, host: FaultHost, ports: list[int], loss: float) -> None:
        """Drop (silently: no reset, no ICMP) the fraction ``loss`` of the packets of the
        *established* connections between ``host`` and the servers on ``ports``, at random,
        in both directions: a lossy link, on which the connections a process holds neither
        break nor carry much, and a read waits out its timeout instead of failing."""
        lossy = ["-m", "conntrack", "--ctstate", "ESTABLISHED", "-m", "statistic", "--mode", "random"]
        lossy += ["--probability", f"{loss:.3f}", "-j", "DROP"]
        for port in ports:
            host.exec("iptables", "-A", "OUTPUT", "-d", self.gateway, "-p", "tcp", "--dport", str(port), *lossy)
            host.exec("iptables", "-A", "INPUT", "-s", self.gateway, "-p", "tcp", "--sport", str(port), *lossy)

    def heal(self, host: FaultHost) -> None:
        host.exec("iptables", "-F", "INPUT")
        host.exec("iptables", "-F", "OUTPUT")

    def rules(self, host: FaultHost) -> str:
        return host.exec("iptables", "-S").stdout

    # -- teardown -------------------------------------------------------------------------
    def teardown(self) -> None:
        for host in self.hosts.values():
            run("ip", "netns", "del", host.netns, check=False)  # takes its veth end and rules along
            run("ip", "link", "del", host.veth_host, check=False)
        if self._created:
            run("ip", "link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """What of this net still exists (empty after teardown)."""
        names = run("ip", "netns", "list", check=False).stdout
        links = run("ip", "-o", "link", "show", check=False).stdout
        left = [h.netns for h in self.hosts.values() if h.netns in names]
        left += [
            dev
            for dev in [self.bridge, *(h.veth_host for h in self.hosts.values())]
            if f" {dev}:" in links or f" {dev}@" in links
        ]
        return left
