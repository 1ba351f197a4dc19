"""Network namespaces joined through a router namespace, for silent network partitions in scripts/chaos --netns.

The same layout as Tests/TestSupport/NetworkLab.swift: each host is a namespace with one veth link `eth0` to the
router namespace, address 198.18.N.2/24 (router side 198.18.N.1). cut(a, b) adds `ip rule ... blackhole` rules in
the router: packets between the two hosts are dropped without any answer, as a pulled cable does; heal(a, b)
removes them. librdkafka's mock brokers (tailgate dev-kafka) listen on 127.0.0.1 only and advertise that address,
so expose_loopback routes a client's connections to those ports through the router to the Kafka host's loopback
(route_localnet): the client's own sockets cross the cut. Needs root and iproute2.

Every namespace name is appended to WORK/netns as it is created, so that scripts/chaos's cleanup removes them even
when this harness dies.
"""
import os
import subprocess

IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"


def ip(*args, check=True):
    result = subprocess.run([IP, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def unavailable_reason():
    """Why a lab cannot be built here, or None."""
    if os.getuid() != 0:
        return "--netns needs root (network namespaces)"
    if not os.path.exists(IP):
        return "--netns needs iproute2 (apt-get install iproute2)"
    probe = f"tgchaos-{os.getpid()}-probe"
    result = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"network namespaces are not available here: {result.stderr.strip()}"
    ip("netns", "del", probe)
    return None


class NetLab:
    def __init__(self, hosts, registry):
        prefix = f"tgchaos-{os.getpid()}"
        self.router = f"{prefix}-router"
        self.namespaces = {host: f"{prefix}-{host}" for host in hosts}
        self.index = {host: number + 1 for number, host in enumerate(hosts)}
        self.loopback = {}  # (client, server) -> ports
        self.moved_local_rule = set()
        self.registry = registry
        self._add_namespace(self.router)
        self.sysctl(self.router, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1")
        for host, namespace in self.namespaces.items():
            n = self.index[host]
            self._add_namespace(namespace)
            ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", f"to-{host}", "netns", self.router)
            ip("-n", namespace, "addr", "add", f"198.18.{n}.2/24", "dev", "eth0")
            ip("-n", self.router, "addr", "add", f"198.18.{n}.1/24", "dev", f"to-{host}")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", self.router, "link", "set", f"to-{host}", "up")
            ip("-n", namespace, "route", "add", "default", "via", f"198.18.{n}.1")
            self.sysctl(namespace, "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1")
            self.sysctl(self.router, f"net.ipv4.conf.to-{host}.route_localnet=1")

    def _add_namespace(self, namespace):
        with open(self.registry, "a") as handle:
            handle.write(namespace + "\n")
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")

    @staticmethod
    def sysctl(namespace, *settings):
        subprocess.run([IP, "netns", "exec", namespace, "sysctl", "-q", "-w", *settings], check=True)

    def address(self, host):
        return f"198.18.{self.index[host]}.2"

    def exec_prefix(self, host):
        """argv prefix that runs a command inside `host`'s namespace."""
        return [IP, "netns", "exec", self.namespaces[host]]

    def _move_local_rule(self, namespace):
        # The `local` table (rule 0) says all of 127.0.0.0/8 is here: put it behind the port rules.
        if namespace in self.moved_local_rule:
            return
        self.moved_local_rule.add(namespace)
        ip("-n", namespace, "rule", "add", "pref", "100", "lookup", "local")
        ip("-n", namespace, "rule", "del", "pref", "0", "lookup", "local")

    def expose_loopback(self, ports, server, client):
        """Routes `client`'s TCP connections to 127.0.0.1:PORT through the router to `server`'s loopback."""
        namespace, s, c = self.namespaces[client], self.index[server], self.index[client]
        self._move_local_rule(namespace)
        self._move_local_rule(self.router)
        ip("-n", namespace, "route", "replace", "127.0.0.1/32", "via", f"198.18.{c}.1", "dev", "eth0", "src", f"198.18.{c}.2",
           "table", "100")
        ip("-n", self.router, "route", "replace", "127.0.0.1/32", "via", f"198.18.{s}.2", "dev", f"to-{server}", "table", str(100 + s))
        for port in ports:
            ip("-n", namespace, "rule", "add", "pref", "10", "ipproto", "tcp", "dport", str(port), "lookup", "100")
            ip("-n", self.router, "rule", "add", "pref", "10", "iif", f"to-{client}", "ipproto", "tcp", "dport", str(port),
               "lookup", str(100 + s))
        self.loopback.setdefault((client, server), []).extend(ports)

    def _rules(self, a, b):
        rules = [["iif", f"to-{a}", "to", f"{self.address(b)}/32"], ["iif", f"to-{b}", "to", f"{self.address(a)}/32"]]
        for client, server in ((a, b), (b, a)):
            for port in self.loopback.get((client, server), []):
                rules.append(["iif", f"to-{client}", "to", "127.0.0.1/32", "ipproto", "tcp", "dport", str(port)])
        return rules

    def cut(self, a, b):
        for rule in self._rules(a, b):
            ip("-n", self.router, "rule", "add", "pref", "5", *rule, "blackhole")

    def heal(self, a, b):
        for rule in self._rules(a, b):
            ip("-n", self.router, "rule", "del", "pref", "5", *rule, "blackhole", check=False)

    def close(self):
        for namespace in list(self.namespaces.values()) + [self.router]:
            remove_namespace(namespace)


def remove_namespace(namespace):
    result = subprocess.run([IP, "netns", "pids", namespace], capture_output=True, text=True)
    for pid in result.stdout.split():
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run([IP, "netns", "del", namespace], capture_output=True)
