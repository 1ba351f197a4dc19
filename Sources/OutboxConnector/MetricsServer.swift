import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 server for `/metrics` (Prometheus text format) and `/healthz`, on its own thread.
///
/// It serves one request per connection, reads at most 8 KiB of request, and answers GET only. It listens on
/// loopback by default (`metrics.listen`); put a proxy in front of it to expose it further.
public final class MetricsServer: @unchecked Sendable {
    // `@unchecked Sendable`: the socket is written once in `init` and closed once in `stop()`; the accept thread
    // only reads it.
    private let socketDescriptor: Int32
    /// The port actually bound (useful with port 0).
    public let port: Int
    private let stopped = NSLock()
    private var isStopped = false

    /// Binds `listen` (`host:port`) and starts serving.
    ///
    /// - Parameters:
    ///   - metrics: Rendered at `/metrics`.
    ///   - healthy: Decides `/healthz`: 200 when true, 503 otherwise.
    /// - Throws: ``ConnectorError`` with code `setup` when the address cannot be bound.
    public init(listen: String, metrics: @escaping @Sendable () -> String, healthy: @escaping @Sendable () -> Bool) throws {
        guard let colon = listen.lastIndex(of: ":"), let requestedPort = UInt16(listen[listen.index(after: colon)...]) else {
            throw ConnectorError(.setup, "metrics.listen '\(listen)' is not host:port")
        }
        let host = String(listen[..<colon])
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = requestedPort.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            close(descriptor)
            throw ConnectorError(.setup, "metrics.listen host '\(host)' is not an IPv4 address; write e.g. 127.0.0.1 or 0.0.0.0")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && Glibc.listen(descriptor, 16) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ConnectorError(.setup, "cannot listen on \(listen) for /metrics: \(reason); choose another metrics.listen port")
        }
        socketDescriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [descriptor] in
            while true {
                let client = accept(descriptor, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Self.serve(client, metrics: metrics, healthy: healthy)
            }
        }
        thread.name = "tailgate.metrics"
        thread.start()
    }

    /// Stops listening.
    public func stop() {
        stopped.lock()
        defer { stopped.unlock() }
        guard !isStopped else { return }
        isStopped = true
        shutdown(socketDescriptor, Int32(SHUT_RDWR))
        close(socketDescriptor)
    }

    deinit {
        stop()
    }

    private static func serve(_ client: Int32, metrics: () -> String, healthy: () -> Bool) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 8192)
        var received = 0
        while received < buffer.count {
            let count = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress! + received, $0.count - received) }
            if count <= 0 { break }
            received += count
            if buffer[..<received].contains(UInt8(ascii: "\n")) { break }
        }
        let requestLine = String(decoding: buffer[..<received].prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        let (status, contentType, body): (String, String, String)
        if parts.count >= 2, parts[0] == "GET" {
            switch parts[1] {
            case "/metrics": (status, contentType, body) = ("200 OK", "text/plain; version=0.0.4", metrics())
            case "/healthz":
                (status, contentType, body) = healthy() ? ("200 OK", "text/plain", "ok\n") : ("503 Service Unavailable", "text/plain", "not streaming\n")
            default: (status, contentType, body) = ("404 Not Found", "text/plain", "try /metrics or /healthz\n")
            }
        } else {
            (status, contentType, body) = ("405 Method Not Allowed", "text/plain", "GET only\n")
        }
        let response = Array("HTTP/1.0 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
        var sent = 0
        while sent < response.count {
            let count = response.withUnsafeBytes { write(client, $0.baseAddress! + sent, $0.count - sent) }
            if count <= 0 { break }
            sent += count
        }
    }
}
