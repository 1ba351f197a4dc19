import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension NetworkLab {
    /// Runs `body` on a thread of this process that has entered `host`'s network namespace, and returns its result.
    ///
    /// A network namespace belongs to a thread, not to the process: sockets `body` creates, and threads it starts
    /// (librdkafka's broker threads, for a Kafka client created here), live in `host`'s namespace for good, while
    /// the rest of the process stays where it was. The thread ends when `body` returns.
    ///
    /// - Throws: What `body` throws, or ``TestPostgresError`` when the namespace cannot be entered.
    public func perform<T: Sendable>(in host: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let path = "/run/netns/\(namespace(host))"
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result {
                    try Self.enterNetworkNamespace(path)
                    return try body()
                })
            }
            thread.name = "tailgate.netlab.\(host)"
            thread.start()
        }
    }

    /// A plain HTTP GET to `127.0.0.1:port` inside `host`'s namespace (see ``httpGet(port:path:)``).
    public func httpGet(in host: String, port: Int, path: String) async -> (status: String, body: String)? {
        let result = try? await perform(in: host) { () -> HTTPAnswer? in
            TestSocket.getBlocking(port: port, path: path).map { HTTPAnswer(status: $0.status, body: $0.body) }
        }
        return (result ?? nil).map { ($0.status, $0.body) }
    }

    /// `CLONE_NEWNET` from `<sched.h>`, which Swift's Glibc module does not import (nor `setns`).
    private static let cloneNewNet: Int32 = 0x4000_0000

    private static let setns: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    private static func enterNetworkNamespace(_ path: String) throws {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TestPostgresError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(descriptor) }
        guard let setns = Self.setns else { throw TestPostgresError(message: "this C library has no setns()") }
        guard setns(descriptor, Self.cloneNewNet) == 0 else {
            throw TestPostgresError(message: "setns(\(path)) failed: \(String(cString: strerror(errno)))")
        }
    }
}
