import Foundation
import RDKafka
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, its output going to a file.
///
/// Foundation's `Process` waits through a run loop, which can stall when the concurrency pool is busy; tests
/// start servers, kill them and restart them, so they use plain `posix_spawn` and `waitpid`.
public final class ChildProcess: @unchecked Sendable {
    /// The process id.
    public let pid: pid_t
    /// Where standard output and standard error go.
    public let outputPath: String
    private let lock = NSLock()
    private var exitStatus: Int32?
    private let inputDescriptor: Int32?

    /// Starts `executable` with `arguments`; output is appended to `outputPath`.
    ///
    /// - Parameter environment: Extra variables, added to this process's environment.
    /// - Parameter withInput: Give the child a pipe as standard input, written with ``send(_:)``; otherwise `/dev/null`.
    public init(_ executable: String, _ arguments: [String], outputPath: String, environment: [String: String] = [:],
                withInput: Bool = false) throws {
        self.outputPath = outputPath
        // posix_spawn reports a failed file action with the same errno as a missing executable ("cannot start
        // …/LedgerConsumer: No such file or directory" when the output file's directory was missing): check each
        // path first, so the error names the one that failed.
        guard access(executable, X_OK) == 0 else {
            throw TestPostgresError(message: "cannot start \(executable): the executable: \(String(cString: strerror(errno)))")
        }
        let output = open(outputPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard output >= 0 else {
            throw TestPostgresError(message: "cannot start \(executable): its output file \(outputPath): \(String(cString: strerror(errno)))")
        }
        defer { close(output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeEnds: [Int32] = [-1, -1]
        if withInput {
            guard pipe(&pipeEnds) == 0 else { throw TestPostgresError(message: "pipe() failed") }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[0], 0)
            posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
            inputDescriptor = pipeEnds[1]
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            inputDescriptor = nil
        }
        defer { if withInput { close(pipeEnds[0]) } }
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        // Nothing else of ours reaches the child. Sockets librdkafka's mock broker accepted are not close-on-exec:
        // a child holding one keeps a "down" broker's connections open, and a child between fork and exec holds
        // the listener, so the broker cannot re-bind its port (librdkafka then aborts the whole test process).
        _ = Self.closeFrom?(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a kill reaches the whole child and nothing of ours.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        // Never while a mock broker re-binds its port (see KafkaMockCluster.listenerGate).
        KafkaMockCluster.listenerGate.lock()
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        KafkaMockCluster.listenerGate.unlock()
        guard status == 0 else { throw TestPostgresError(message: "cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not import.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Writes `line` and a newline to the child's standard input (see `withInput`).
    public func send(_ line: String) {
        guard let inputDescriptor else { return }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(inputDescriptor, $0.baseAddress, $0.count) }
    }

    /// The lines of output so far.
    /// The complete lines of output so far (the empty piece after the last newline is not a line: counting it made
    /// "the lines after line N" skip the next line written).
    public var outputLines: [String] {
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// Waits until a line of output satisfies `matching`, up to `timeout`; returns it.
    public func waitForLine(timeout: Duration = .seconds(30), _ matching: (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = outputLines.first(where: matching) { return line }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    deinit {
        if let inputDescriptor { close(inputDescriptor) }
    }

    /// The directory holding the package's built products (`tailgate`, …), beside the test bundle.
    public static var productsDirectory: String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }

    /// Sends `signal` to the process.
    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the process to exit and returns its exit status (128 + signal number when killed).
    @discardableResult
    public func wait() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        exitStatus = code
        return code
    }

    /// Waits for the process to exit without blocking the concurrency pool (a blocked pool on two cores stalls
    /// every other test); returns the exit status. A process still running after `timeout` is killed (status
    /// 137), so a hung child fails its test instead of hanging the run.
    public func exitStatus(timeout: Duration = .seconds(60)) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatusIfExited() { return status }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        return await withCheckedContinuation { continuation in
            // A serial queue of its own gets its own thread, outside the width-limited global pool.
            DispatchQueue(label: "tailgate.test.wait.\(pid)").async { continuation.resume(returning: self.wait()) }
        }
    }

    /// Whether the process has exited, without waiting (a zombie counts as exited, unlike `kill(pid, 0)`).
    public var hasExited: Bool { exitStatusIfExited() != nil }

    /// The exit status if the process has exited, without waiting.
    private func exitStatusIfExited() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        exitStatus = code
        return code
    }

    /// The output so far.
    public var output: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }

    /// Runs a command to completion and returns its output.
    ///
    /// - Throws: ``TestPostgresError`` with the output when it exits non-zero.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let path = NSTemporaryDirectory() + "tailgate-run-\(getpid())-\(UUID().uuidString).log"
        defer { unlink(path) }
        let child = try ChildProcess(executable, arguments, outputPath: path)
        let status = child.wait()
        let output = child.output
        guard status == 0 else {
            throw TestPostgresError(message: "\(executable) \(arguments.joined(separator: " ")) exited \(status): \(output)")
        }
        return output
    }
}
