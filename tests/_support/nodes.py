"""Network namespaces as the hosts of a small cluster, for the multi-node launcher tests.

:class:`Nodes` builds N nodes. Each is a network namespace with its own host
name (``node1``, ``node2``, ...; every command run on a node starts in a fresh
UTS namespace named so) and one address on a private /24 the fixture picks.
The nodes meet on a bridge that lives in a namespace of its own (the
"switch"), so nothing is added to this machine's own network: the nodes have
loopback and the test subnet and no route anywhere else. Names resolve through
``/etc/netns/<namespace>/hosts``, which every command on the node sees as
``/etc/hosts`` (bound over it in a mount namespace of its own). The file system is shared, as on
a cluster with a shared home.

Everything is named ``prtest-<pid>-<n>-*``: :meth:`Nodes.stop` (also run after a
failed start) kills what runs in the namespaces and deletes them by name, and a
later start removes what a killed test run left behind (a namespace whose PID
is no longer alive).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests._support.clusters import Unavailable

PREFIX = "prtest"
NETNS_ETC = Path("/etc/netns")
_counter = itertools.count()


@dataclass(frozen=True)
class Node:
    index: int  # 0-based
    name: str  # its host name
    address: str
    netns: str
    port: str  # the switch's end of its cable


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _namespaces() -> list[str]:
    out = _ip("-j", "netns", "list", check=False).stdout.strip()
    return [entry["name"] for entry in json.loads(out or "[]")]


def _kill_namespace(netns: str) -> None:
    """SIGKILL every process in the namespace, then delete it and its /etc/netns files."""
    for _ in range(50):
        pids = _ip("netns", "pids", netns, check=False).stdout.split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.1)
    _ip("netns", "delete", netns, check=False)
    shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete the namespaces of test runs whose process is gone; returns their names."""
    stale = []
    for name in _namespaces():
        parts = name.split("-")
        ours = parts[0] == PREFIX and len(parts) > 2 and parts[1].isdigit()
        if ours and not _alive(int(parts[1])):
            _kill_namespace(name)
            stale.append(name)
    return stale


def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Networks this machine routes, and those of other namespaces of ours."""
    taken = []
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(dst, strict=False))
    for name in _namespaces():
        if name.startswith(PREFIX + "-"):
            addrs = json.loads(_ip("-n", name, "-j", "-4", "addr").stdout or "[]")
            for link in addrs:
                for info in link.get("addr_info", []):
                    taken.append(
                        ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                    )
    return [n for n in taken if n.version == 4]


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that overlaps nothing routed here or used by another run."""
    taken = _taken_networks()
    rng = random.Random(os.getpid() ^ time.time_ns())
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{rng.randrange(100, 250)}.{rng.randrange(256)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise Unavailable("no free /24 in 10.0.0.0/8 for the test nodes")


class Nodes:
    """``count`` hosts as network namespaces; scripts to run commands on them in ``directory``.

    ``directory/bin/on-node HOST COMMAND...`` runs a command on a node (as a
    scheduler's remote shell would); ``directory/bin/rsh HOST 'COMMAND LINE'`` is
    the same with the command as one shell line, for ``plm_rsh_agent``.
    """

    def __init__(self, count: int, directory: Path, prefix: str = "node") -> None:
        if os.geteuid() != 0:
            raise Unavailable("network namespaces are made as root, and this is not root")
        missing = [p for p in ("ip", "unshare", "nsenter") if shutil.which(p) is None]
        if missing:
            raise Unavailable(f"not installed: {', '.join(missing)} (iproute2, util-linux)")
        self.count = count
        self.dir = directory
        self.tag = f"{PREFIX}-{os.getpid()}-{next(_counter)}"
        self.switch = f"{self.tag}-switch"
        self.prefix = prefix
        self.nodes: list[Node] = []
        self.subnet: ipaddress.IPv4Network | None = None
        self.bin = directory / "bin"

    # -- building -------------------------------------------------------------------

    def start(self) -> None:
        """Build the nodes; a failure half-way removes what was made, then raises."""
        remove_stale()
        try:
            self._build()
        except BaseException:
            self.stop()
            raise

    def _build(self) -> None:
        probe = _ip("netns", "add", self.switch, check=False)
        if probe.returncode != 0:
            raise Unavailable(f"cannot make a network namespace: {probe.stderr.strip()}")
        self.subnet = pick_subnet()
        hosts = list(self.subnet.hosts())
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(self.count):
            node = Node(
                index=i,
                name=f"{self.prefix}{i + 1}",
                address=str(hosts[i]),
                netns=f"{self.tag}-{self.prefix}{i + 1}",
                port=f"p{i + 1}",
            )
            self.nodes.append(node)
            _ip("netns", "add", node.netns)
            _ip(
                "link", "add", "eth0", "netns", node.netns, "type", "veth",
                "peer", "name", node.port, "netns", self.switch,
            )  # fmt: skip
            _ip("-n", self.switch, "link", "set", node.port, "master", "br0")
            _ip("-n", self.switch, "link", "set", node.port, "up")
            _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _ip("-n", node.netns, "link", "set", "eth0", "up")
            _ip("-n", node.netns, "link", "set", "lo", "up")
        hosts_text = "127.0.0.1 localhost\n" + "".join(
            f"{n.address} {n.name}\n" for n in self.nodes
        )
        for node in self.nodes:
            (NETNS_ETC / node.netns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / node.netns / "hosts").write_text(hosts_text)
        self._write_scripts()
        self._wait_until_connected()

    def _write_scripts(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        cases = "".join(f"    {n.name}) ns={shlex.quote(n.netns)} ;;\n" for n in self.nodes)
        on_node = self.bin / "on-node"
        on_node.write_text(
            "#!/bin/sh\n"
            "# on-node HOST COMMAND...: run COMMAND on a test node, named HOST there.\n"
            'host="$1"; shift\n'
            'case "$host" in\n'
            f"{cases}"
            '    *) echo "on-node: no test node named $host" >&2; exit 255 ;;\n'
            "esac\n"
            # Not `ip netns exec`: it mounts a new /sys, without the cgroup mounts slurmd
            # needs. A private mount namespace shows the node's hosts file as /etc/hosts.
            'exec nsenter --net="/run/netns/$ns" -- unshare --uts --mount -- sh -c '
            '\'mount --bind "/etc/netns/$0/hosts" /etc/hosts && hostname "$1" && shift '
            '&& exec "$@"\' "$ns" "$host" "$@"\n'
        )
        rsh = self.bin / "rsh"
        rsh.write_text(
            "#!/bin/sh\n"
            "# rsh [-x] HOST COMMAND LINE: what ssh would do, on a test node.\n"
            'while [ "${1#-}" != "$1" ]; do shift; done\n'
            'host="$1"; shift\n'
            f'exec {shlex.quote(str(on_node))} "$host" sh -c "$*"\n'
        )
        for script in (on_node, rsh):
            script.chmod(0o755)

    def _wait_until_connected(self) -> None:
        """Until every node reaches node 1 by name (the bridge learns its ports)."""
        first = self.nodes[0]
        listener = subprocess.Popen(
            self.command(first, sys.executable, "-c", _ECHO_SERVER, str(self.count - 1)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for node in self.nodes[1:]:
                self.run(node, sys.executable, "-c", _CONNECT, first.name, timeout=30)
            listener.wait(timeout=30)
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()

    # -- using ----------------------------------------------------------------------

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    def command(self, node: Node, *cmd: str) -> list[str]:
        return [str(self.bin / "on-node"), node.name, *cmd]

    def popen(
        self, node: Node, *cmd: str, env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            self.command(node, *cmd), env=env, text=True, **kwargs
        )

    def run(
        self, node: Node, *cmd: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(node, *cmd), env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"on {node.name}: {' '.join(cmd)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def pids(self, node: Node) -> list[int]:
        return [int(p) for p in _ip("netns", "pids", node.netns, check=False).stdout.split()]

    def lose(self, node: Node) -> None:
        """The node is gone: its cable is pulled first (no reset reaches the others),
        then everything on it is killed."""
        _ip("-n", self.switch, "link", "set", node.port, "down")
        for pid in self.pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reconnect(self, node: Node) -> None:
        _ip("-n", self.switch, "link", "set", node.port, "up")

    def namespaces(self) -> list[str]:
        """This cluster's namespaces that exist now."""
        return [n for n in _namespaces() if n.startswith(self.tag + "-")]

    def stop(self) -> None:
        for name in [*(n.netns for n in self.nodes), self.switch]:
            _kill_namespace(name)
        for name in self.namespaces():  # made before a failure recorded it
            _kill_namespace(name)


_ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7))
s.listen()
for _ in range(int(sys.argv[1])):
    c, _ = s.accept()
    c.sendall(socket.gethostname().encode())
    c.close()
"""

_CONNECT = """
import socket, sys, time
deadline = time.time() + 20
while True:
    try:
        c = socket.create_connection((sys.argv[1], 7), timeout=2)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
assert c.recv(100).decode() == sys.argv[1]
"""
