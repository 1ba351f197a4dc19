import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a running connector says about itself on `/metrics`: whether it streams, and when it last wrote a
/// heartbeat (which PostgreSQL keeps no trace of).
package struct ConnectorProbe: Sendable, Hashable, Codable {
    /// The `metrics.listen` address asked.
    package var address: String
    /// Why the connector could not be asked (nothing listening, not Tailgate), if it could not.
    package var error: String?
    /// `tailgate_streaming`.
    package var streaming: Bool?
    /// `tailgate_last_heartbeat_timestamp_seconds`; `nil` before the first heartbeat.
    package var lastHeartbeat: Date?
    /// `heartbeatIntervalSeconds` from the connector file (0: heartbeats off).
    package var heartbeatIntervalSeconds: Int
    /// What `/status` answered; `nil` when it could not be read (an older connector has none).
    package var status: ConnectorStatus?

    /// Creates a value.
    package init(address: String, error: String? = nil, streaming: Bool? = nil, lastHeartbeat: Date? = nil, heartbeatIntervalSeconds: Int) {
        self.address = address
        self.error = error
        self.streaming = streaming
        self.lastHeartbeat = lastHeartbeat
        self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
    }

    /// Asks the connector listening on `address` (`host:port`; `0.0.0.0` is asked on loopback).
    ///
    /// The socket has a 3 s deadline for connecting, sending and receiving, and runs on a dispatch queue, never on
    /// the concurrency pool.
    package static func read(address: String, heartbeatIntervalSeconds: Int) async -> ConnectorProbe {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var probe = ConnectorProbe(address: address, heartbeatIntervalSeconds: heartbeatIntervalSeconds)
                switch get(address: address, path: "/metrics") {
                case .failure(let error):
                    probe.error = error.message
                case .success(let body):
                    probe.parse(body)
                    if case .success(let status) = get(address: address, path: "/status") { probe.status = try? ConnectorStatus(json: status) }
                }
                continuation.resume(returning: probe)
            }
        }
    }

    /// Reads the samples it needs from a Prometheus text exposition.
    mutating func parse(_ body: String) {
        var sawTailgate = false
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let name = line[..<(line.firstIndex(of: "{") ?? space)]
            let value = Double(line[line.index(after: space)...])
            switch name {
            case "tailgate_streaming":
                streaming = value == 1
                sawTailgate = true
            case "tailgate_last_heartbeat_timestamp_seconds":
                lastHeartbeat = value.map { Date(timeIntervalSince1970: $0) }
            default:
                break
            }
        }
        if !sawTailgate { error = "\(address)/metrics has no tailgate_streaming: is this a Tailgate connector?" }
    }

    private struct ProbeError: Error {
        var message: String
    }

    private static func get(address: String, path: String) -> Result<String, ProbeError> {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return .failure(ProbeError(message: "metrics address '\(address)' is not host:port"))
        }
        var host = String(address[..<colon])
        if host == "0.0.0.0" || host == "localhost" || host.isEmpty { host = "127.0.0.1" }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &socketAddress.sin_addr) == 1 else {
            return .failure(ProbeError(message: "metrics host '\(host)' is not an IPv4 address; pass --metrics 127.0.0.1:PORT"))
        }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return .failure(ProbeError(message: "socket() failed: errno \(errno)")) }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            return .failure(ProbeError(message: "nothing answers on \(host):\(port) (\(String(cString: strerror(errno)))): the connector is not running there"))
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while response.count < 16 << 20 {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += buffer[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n"), text.hasPrefix("HTTP/1.") else {
            return .failure(ProbeError(message: "\(host):\(port) did not answer HTTP within 3 s"))
        }
        guard text.prefix(while: { $0 != "\r" }).contains(" 200") else {
            return .failure(ProbeError(message: "\(host):\(port)\(path) answered \(text.prefix(while: { $0 != "\r" }))"))
        }
        return .success(String(text[headerEnd.upperBound...]))
    }
}
