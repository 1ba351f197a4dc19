import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Network namespaces joined through a router namespace, for silent network partitions in tests.
///
/// ```
///   pg (198.18.1.2) ──┐
///   kafka (198.18.2.2) ─┼── router ── blackhole rules = a pulled cable between two hosts
///   app (198.18.3.2) ──┘
/// ```
///
/// Each host is a network namespace with one veth link `eth0` to the router namespace and the address
/// `198.18.N.2/24` (RFC 2544's benchmarking range; the router's side is `198.18.N.1`). Labs never touch this
/// process's own namespace, so any number of them can run at once with the same addresses.
///
/// ``cut(_:_:)`` adds `blackhole` rules in the router: every packet between the two hosts is dropped without an
/// answer (no RST, no ICMP), exactly what a pulled cable, a changed firewall or a flushed NAT table look like to
/// both ends; ``heal(_:_:)`` removes them. A `blackhole` route on an endpoint, or a link set down, would answer
/// the sender with an error instead.
///
/// librdkafka's mock brokers listen on 127.0.0.1 only and advertise that address (`rdkafka_mock.c` binds
/// `INADDR_LOOPBACK`), so ``exposeLoopback(ports:of:to:)`` routes a client's TCP connections to those ports through
/// the router to the server namespace's loopback (`route_localnet`): the client's own sockets cross the router,
/// with no relay between them that would answer for a peer that is gone.
///
/// Requires root and iproute2 (``unavailableReason``). Everything is removed by ``close()`` and at process exit;
/// namespace names carry the creating process's pid, and a lab whose process died without cleaning up (a crash,
/// SIGKILL) is removed by the next lab created on the machine.
public final class NetworkLab: Sendable {
    /// Where iproute2's `ip` lives.
    public static let ipTool = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
    static let namePrefix = "tglab-"
    private static let counter = Atomic<Int>(0)
    private static let openLabs = Mutex<[NetworkLab]>([])

    /// The namespace name of each host, and of the router.
    private let namespaces: [String: String]
    /// Each host's number N in its subnet `198.18.N.0/24`.
    private let indexes: [String: Int]
    private let routerNamespace: String
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var children: [ChildProcess] = []
        var postgres: [TestPostgres] = []
        /// Ports of a server's loopback reachable from a client: (client, server) → ports.
        var loopbackPorts: [Pair: [Int]] = [:]
        var cuts: Set<Pair> = []
        var localRuleMoved: Set<String> = []
    }

    private struct Pair: Hashable {
        var client: String
        var server: String
    }

    /// Why labs cannot be built here, or `nil` when they can: not root, no `ip`, or namespaces refused.
    public static let unavailableReason: String? = {
        guard getuid() == 0 else { return "network partition tests need root (ip netns); run them as root, as CI does" }
        guard FileManager.default.isExecutableFile(atPath: ipTool) else {
            return "network partition tests need iproute2 (\(ipTool) is missing): apt-get install iproute2"
        }
        let probe = "\(namePrefix)\(getpid())-probe"
        do {
            try ChildProcess.run(ipTool, ["netns", "add", probe])
            try ChildProcess.run(ipTool, ["netns", "del", probe])
        } catch {
            return "network namespaces are not available here (ip netns add failed: \(error))"
        }
        return nil
    }()

    /// Builds the router and one namespace per host, each linked to the router.
    ///
    /// - Parameter hosts: Short host names (up to 10 characters, letters and digits), e.g. `["pg", "kafka", "app"]`.
    /// - Throws: ``TestPostgresError`` with `ip`'s output when a step fails (whatever was built is removed).
    public init(hosts: [String]) async throws {
        if let reason = Self.unavailableReason { throw TestPostgresError(message: reason) }
        let id = "\(Self.namePrefix)\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        routerNamespace = "\(id)-router"
        var namespaces: [String: String] = [:]
        var indexes: [String: Int] = [:]
        for (offset, host) in hosts.enumerated() {
            precondition(host.count <= 10 && host.allSatisfy { $0.isLetter || $0.isNumber }, "host name \(host): up to 10 letters or digits")
            namespaces[host] = "\(id)-\(host)"
            indexes[host] = offset + 1
        }
        self.namespaces = namespaces
        self.indexes = indexes
        Self.registerExitHandler
        Self.openLabs.withLock { $0.append(self) }
        let router = routerNamespace, hostNamespaces = namespaces, hostIndexes = indexes
        do {
            try await offPool {
                Self.removeStaleLabs()
                try Self.build(router: router, namespaces: hostNamespaces, indexes: hostIndexes)
            }
        } catch {
            close()
            throw error
        }
    }

    private static func build(router: String, namespaces: [String: String], indexes: [String: Int]) throws {
        try ip(["netns", "add", router])
        try ip(["-n", router, "link", "set", "lo", "up"])
        try sysctl(router, ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.default.route_localnet=1"])
        for (host, namespace) in namespaces.sorted(by: { $0.key < $1.key }) {
            let index = indexes[host]!
            try ip(["netns", "add", namespace])
            try ip(["-n", namespace, "link", "set", "lo", "up"])
            try ip(["link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", "to-\(host)", "netns", router])
            try ip(["-n", namespace, "addr", "add", "198.18.\(index).2/24", "dev", "eth0"])
            try ip(["-n", router, "addr", "add", "198.18.\(index).1/24", "dev", "to-\(host)"])
            try ip(["-n", namespace, "link", "set", "eth0", "up"])
            try ip(["-n", router, "link", "set", "to-\(host)", "up"])
            try ip(["-n", namespace, "route", "add", "default", "via", "198.18.\(index).1"])
            try sysctl(namespace, ["net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1"])
            try sysctl(router, ["net.ipv4.conf.to-\(host).route_localnet=1"])
        }
    }

    /// The namespace `host` runs in (for `ip netns exec`).
    public func namespace(_ host: String) -> String {
        guard let namespace = namespaces[host] else { preconditionFailure("no host \(host) in this lab") }
        return namespace
    }

    /// The address of `host` on its link to the router.
    public func address(_ host: String) -> String {
        guard let index = indexes[host] else { preconditionFailure("no host \(host) in this lab") }
        return "198.18.\(index).2"
    }

    /// Routes `client`'s TCP connections to `127.0.0.1:port` (each of `ports`) through the router to `server`'s
    /// loopback, where a service bound to 127.0.0.1 answers them. ``cut(_:_:)`` drops these too.
    public func exposeLoopback(ports: [Int], of server: String, to client: String) async throws {
        let clientNamespace = namespace(client), serverIndex = indexes[server]!, clientIndex = indexes[client]!
        let router = routerNamespace
        // One routing table per server in the router, one (100) in the client: 127.0.0.1 via the link.
        let table = "\(100 + serverIndex)"
        let (moveClient, moveRouter) = state.withLock { state in
            state.loopbackPorts[Pair(client: client, server: server), default: []] += ports
            return (state.localRuleMoved.insert(clientNamespace).inserted, state.localRuleMoved.insert(router).inserted)
        }
        try await offPool {
            // The `local` table is consulted first (rule 0), and it says 127.0.0.0/8 is here: move it behind the
            // port rules, so that only the chosen ports leave.
            for namespace in [moveClient ? clientNamespace : nil, moveRouter ? router : nil].compactMap({ $0 }) {
                try Self.ip(["-n", namespace, "rule", "add", "pref", "100", "lookup", "local"])
                try Self.ip(["-n", namespace, "rule", "del", "pref", "0", "lookup", "local"])
            }
            _ = try? Self.ip(["-n", clientNamespace, "route", "add", "127.0.0.1/32", "via", "198.18.\(clientIndex).1", "dev", "eth0",
                              "src", "198.18.\(clientIndex).2", "table", "100"])
            _ = try? Self.ip(["-n", router, "route", "add", "127.0.0.1/32", "via", "198.18.\(serverIndex).2", "dev", "to-\(server)",
                              "table", table])
            for port in ports {
                try Self.ip(["-n", clientNamespace, "rule", "add", "pref", "10", "ipproto", "tcp", "dport", "\(port)", "lookup", "100"])
                try Self.ip(["-n", router, "rule", "add", "pref", "10", "iif", "to-\(client)", "ipproto", "tcp", "dport", "\(port)",
                             "lookup", table])
            }
        }
    }

    /// Silently drops every packet between `a` and `b` in the router, both ways, until ``heal(_:_:)``.
    public func cut(_ a: String, _ b: String) async throws {
        let rules = blackholeRules(a, b)
        let router = routerNamespace
        let added = state.withLock { $0.cuts.insert(Pair(client: min(a, b), server: max(a, b))).inserted }
        guard added else { return }
        try await offPool {
            for rule in rules { try Self.ip(["-n", router, "rule", "add", "pref", "5"] + rule + ["blackhole"]) }
        }
    }

    /// Removes the cut between `a` and `b`: packets flow again (TCP retransmits what was lost).
    public func heal(_ a: String, _ b: String) async throws {
        let rules = blackholeRules(a, b)
        let router = routerNamespace
        let removed = state.withLock { $0.cuts.remove(Pair(client: min(a, b), server: max(a, b))) != nil }
        guard removed else { return }
        try await offPool {
            for rule in rules { try Self.ip(["-n", router, "rule", "del", "pref", "5"] + rule + ["blackhole"]) }
        }
    }

    /// The router rule selectors for all traffic between `a` and `b`: addressed to each other's link address, or
    /// to an exposed loopback port.
    private func blackholeRules(_ a: String, _ b: String) -> [[String]] {
        var rules = [["iif", "to-\(a)", "to", "\(address(b))/32"], ["iif", "to-\(b)", "to", "\(address(a))/32"]]
        let exposed = state.withLock { $0.loopbackPorts }
        for (client, server) in [(a, b), (b, a)] {
            for port in exposed[Pair(client: client, server: server)] ?? [] {
                rules.append(["iif", "to-\(client)", "to", "127.0.0.1/32", "ipproto", "tcp", "dport", "\(port)"])
            }
        }
        return rules
    }

    /// Starts `executable` inside `host`'s namespace (see ``ChildProcess``); ``close()`` kills it if still running.
    public func spawn(in host: String, _ executable: String, _ arguments: [String], outputPath: String,
                      environment: [String: String] = [:], withInput: Bool = false) throws -> ChildProcess {
        let child = try ChildProcess(Self.ipTool, ["netns", "exec", namespace(host), executable] + arguments, outputPath: outputPath,
                                     environment: environment, withInput: withInput)
        state.withLock { $0.children.append(child) }
        return child
    }

    /// Removes everything: kills the processes still running in the lab's namespaces (PostgreSQL with an
    /// immediate shutdown), then deletes the namespaces and with them their links. Safe to call more than once.
    public func close() {
        let (first, children, clusters) = state.withLock { state in
            defer { state.closed = true }
            return (!state.closed, state.children, state.postgres)
        }
        guard first else { return }
        for child in children {
            kill(-child.pid, SIGKILL)
            child.wait()
        }
        for cluster in clusters { Self.stopImmediately(cluster) }
        for namespace in namespaces.values.sorted() + [routerNamespace] { Self.removeNamespace(namespace) }
        Self.openLabs.withLock { $0.removeAll { $0 === self } }
    }

    func adopt(_ cluster: TestPostgres) {
        state.withLock { $0.postgres.append(cluster) }
    }

    /// SIGQUIT to the postmaster (immediate shutdown: it ends its backends and frees its shared memory), waited for
    /// up to 5 s.
    private static func stopImmediately(_ cluster: TestPostgres) {
        guard let text = try? String(contentsOfFile: "\(cluster.directory)/data/postmaster.pid", encoding: .utf8),
              let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }) else { return }
        kill(pid, SIGQUIT)
        let deadline = ContinuousClock.now + .seconds(5)
        // Not our child: nothing to wait on but its disappearance (a bounded teardown check, not a wait for work).
        while kill(pid, 0) == 0, ContinuousClock.now < deadline { usleep(20_000) }
    }

    private static func removeNamespace(_ namespace: String) {
        let pids = ((try? ip(["netns", "pids", namespace])) ?? "").split(separator: "\n").compactMap { pid_t($0) }
        for pid in pids { kill(pid, SIGKILL) }
        _ = try? ip(["netns", "del", namespace])
    }

    /// Removes labs left by test processes that no longer exist.
    private static func removeStaleLabs() {
        let names = ((try? ip(["netns", "list"])) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(namePrefix) }
        for name in names {
            let fields = name.dropFirst(namePrefix.count).split(separator: "-")
            guard let pid = fields.first.flatMap({ pid_t($0) }), pid != getpid(), kill(pid, 0) == -1, errno == ESRCH else { continue }
            removeNamespace(name)
        }
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        try ChildProcess.run(ipTool, arguments)
    }

    private static func sysctl(_ namespace: String, _ settings: [String]) throws {
        try ChildProcess.run(ipTool, ["netns", "exec", namespace, "/usr/sbin/sysctl", "-q", "-w"] + settings)
    }

    private static let registerExitHandler: Void = {
        atexit {
            for lab in NetworkLab.openLabs.withLock({ $0 }) { lab.close() }
        }
    }()
}
