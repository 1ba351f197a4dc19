import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client for tests of servers that must survive their clients: partial requests, resets, IPv6.
///
/// Reads give up after the timeout, so a server that never answers fails the test instead of hanging it. Every
/// read waits on a thread of its own, off the concurrency pool: a test blocked in `recv` on one of the pool's two
/// threads held back every other test's timers and replies (the pool watchdog's stacks showed it).
///
/// `@unchecked Sendable`: one test uses a socket at a time; reads hand it to a thread of their own and wait for it.
public final class TestSocket: @unchecked Sendable {
    /// The socket.
    public let descriptor: Int32
    private var isClosed = false

    /// Connects to `host` (an IPv4 or IPv6 literal) and `port`; `nil` when the connection is refused.
    public init?(host: String = "127.0.0.1", port: Int, timeout: Duration = .seconds(5)) {
        let isIPv6 = host.contains(":")
        descriptor = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let connected: Bool
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
        }
        guard connected else {
            // Through close(), so that deinit, which runs for a class whose failable init returns nil after every
            // property is set, does not close the descriptor a second time: by then the number may belong to another
            // thread's socket (a libpq connection failed with EBADF that way).
            close()
            return nil
        }
    }

    deinit { close() }

    /// Sends `text`; false when the server is gone (never raises SIGPIPE in the test process).
    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends `bytes`; false when the server is gone.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { return false }
            sent += count
        }
        return true
    }

    /// Reads up to `count` bytes (fewer when the server closes first, none on a timeout).
    public func read(upTo count: Int) async -> [UInt8] {
        (try? await offPool { self.readBlocking(upTo: count) }) ?? []
    }

    private func readBlocking(upTo count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + received, count - received, 0) }
            if got <= 0 { break }
            received += got
        }
        return Array(buffer[..<received])
    }

    /// Everything until the server closes the connection, or `nil` on a timeout or reset.
    public func readToEnd() async -> String? {
        (try? await offPool { self.readToEndBlocking() }) ?? nil
    }

    private func readToEndBlocking() -> String? {
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return String(decoding: response, as: UTF8.self) }
            if count < 0 { return nil }
            response += buffer[..<count]
        }
    }

    /// Waits for the server to close the connection (a FIN or a reset), discarding anything it sends; false when
    /// the connection is still open after the timeout.
    public func waitForClose() async -> Bool {
        (try? await offPool { self.waitForCloseBlocking() }) ?? false
    }

    private func waitForCloseBlocking() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return errno != EAGAIN && errno != EWOULDBLOCK }
        }
    }

    /// Closes with `SO_LINGER` 0: the kernel sends a reset (RST) instead of a FIN, as some load balancers and
    /// TCP health checks do.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// Closes normally.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(descriptor)
    }

    /// One `GET path` with HTTP/1.1; the status line and the body, or `nil` when nothing answered in time.
    public static func get(host: String = "127.0.0.1", port: Int, path: String) async -> (status: String, body: String)? {
        let answer = try? await offPool { getBlocking(host: host, port: port, path: path).map { HTTPAnswer(status: $0.status, body: $0.body) } }
        return answer.flatMap { $0 }.map { ($0.status, $0.body) }
    }

    /// ``get(host:port:path:)`` on the calling thread, for code already off the pool (a lab namespace's thread).
    public static func getBlocking(host: String = "127.0.0.1", port: Int, path: String) -> (status: String, body: String)? {
        guard let socket = TestSocket(host: host, port: port),
              socket.send("GET \(path) HTTP/1.1\r\nHost: tailgate\r\n\r\n"), let text = socket.readToEndBlocking(),
              let headerEnd = text.range(of: "\r\n\r\n") else { return nil }
        return (text[..<headerEnd.lowerBound].components(separatedBy: "\r\n")[0], String(text[headerEnd.upperBound...]))
    }
}
