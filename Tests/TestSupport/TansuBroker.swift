import Foundation
import RDKafka
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A Tansu broker in a child process: a Kafka-compatible broker written independently of librdkafka (Rust), so a
/// protocol mistake in librdkafka or in Tailgate's use of it is not mirrored by the broker, as it can be by
/// librdkafka's own mock cluster.
///
/// One broker, in memory (`memory://`), on a free port of 127.0.0.1; its output goes to a directory of its own under
/// `NSTemporaryDirectory()`. The executable is `TG_TANSU_BIN` (`scripts/lib/tansu.sh` downloads it); clients need
/// librdkafka 2.16 (`LD_LIBRARY_PATH=$TG_RDKAFKA_216_LIB`): 2.0.2 rejects Tansu's ApiVersions reply.
public final class TansuBroker: Sendable {
    /// The `bootstrap.servers` value for clients.
    public let bootstrapServers: String
    /// The broker's URL for Tansu's own CLI (`tcp://127.0.0.1:PORT`).
    private let url: String
    private let child: ChildProcess
    private let directory: String
    private let executable: String

    /// Brokers still running, killed when the test process exits (a test that failed before `close()`).
    private static let running = Mutex<Set<pid_t>>([])
    private static let registerExitHandler: Void = {
        atexit {
            for pid in TansuBroker.running.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
    }()

    /// `TG_TANSU_BIN`, or `nil` when it is not set.
    public static var executable: String? {
        ProcessInfo.processInfo.environment["TG_TANSU_BIN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Starts a broker and waits until it listens.
    ///
    /// - Throws: ``TestPostgresError`` when `TG_TANSU_BIN` is not set, this process runs a librdkafka older than
    ///   2.16, or the broker does not start (with its output).
    public init() async throws {
        let setup = "run `. scripts/lib/tansu.sh && tg_tansu` first, then the tests with LD_LIBRARY_PATH=$TG_RDKAFKA_216_LIB"
        guard let executable = Self.executable else {
            throw TestPostgresError(message: "TAILGATE_TEST_KAFKA=tansu needs TG_TANSU_BIN: \(setup)")
        }
        // 2.0.2 (Debian's) fails Tansu's ApiVersions reply ("Read underflow") and retries until each test's deadline.
        guard KafkaLibrary.majorMinor >= (2, 16) else {
            throw TestPostgresError(message: "TAILGATE_TEST_KAFKA=tansu needs librdkafka 2.16, this process loaded "
                                        + "\(KafkaLibrary.version) (2.0.2 cannot read Tansu's ApiVersions reply): \(setup)")
        }
        _ = Self.registerExitHandler
        self.executable = executable
        directory = NSTemporaryDirectory() + "tailgate-tansu-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        (child, url) = try await Self.launch(executable, outputPath: directory + "/tansu.log")
        bootstrapServers = String(url.dropFirst("tcp://".count))
    }

    /// Starts a broker on a free port and waits until it says "ready in …", which it prints once its listener is
    /// bound; a port taken in the meantime (Tansu then exits) is tried again with another, up to three times.
    private static func launch(_ executable: String, outputPath: String) async throws -> (ChildProcess, String) {
        for _ in 1...3 {
            let url = "tcp://127.0.0.1:\(try TestPostgres.freePort())"
            // Every setting explicit (each also has an environment variable, which would otherwise reach it).
            let child = try ChildProcess(executable, ["broker", "--cluster-id", "tailgate-test", "--listener-url", url,
                                                      "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                         outputPath: outputPath)
            running.withLock { _ = $0.insert(child.pid) }
            let ready = await eventually(timeout: .seconds(10), every: .milliseconds(20)) {
                child.hasExited || child.outputLines.contains { $0.hasPrefix("ready in") }
            }
            if ready && !child.hasExited { return (child, url) }
            child.signal(SIGKILL)
            child.wait()
            running.withLock { _ = $0.remove(child.pid) }
        }
        throw TestPostgresError(message: "Tansu did not start in three tries: \((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")")
    }

    /// Creates a topic with `partitions` partitions through Tansu's CLI (a CreateTopics request).
    ///
    /// - Throws: ``TestPostgresError`` with the CLI's output when it fails.
    public func createTopic(_ name: String, partitions: Int) throws {
        try ChildProcess.run(executable, ["topic", "create", name, "--broker", url, "--partitions", String(partitions)])
    }

    /// The broker's output so far (its log), for a failure message.
    public var output: String { child.output }

    /// Stops the broker and removes its directory.
    public func close() {
        child.signal(SIGKILL)
        child.wait()
        Self.running.withLock { _ = $0.remove(child.pid) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
