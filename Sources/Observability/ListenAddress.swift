#if canImport(Glibc)
import Glibc
#endif

/// A `host:port` to listen on: an IPv4 address, an IPv6 address in brackets, or `localhost`.
///
/// `127.0.0.1:9464`, `0.0.0.0:9464` (every IPv4 interface), `[::1]:9464`, `[::]:9464` (every interface, IPv6
/// and IPv4), `localhost:9464` (IPv4 loopback). Port 0 picks a free port. Host names are not resolved: a listen
/// address should not depend on DNS.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address family.
    public enum Family: Sendable, Hashable {
        /// IPv4.
        case ipv4
        /// IPv6 (for `::`, IPv4 clients too).
        case ipv6
    }

    /// The family.
    public let family: Family
    /// The numeric address (`127.0.0.1`, `::1`).
    public let host: String
    /// The port; 0 picks a free one.
    public let port: UInt16

    /// Parses `text`.
    ///
    /// - Parameters:
    ///   - text: `host:port`.
    ///   - setting: The setting's name, for the error (default `metrics.listen`).
    /// - Throws: ``MetricsServerError`` with code ``MetricsServerError/Code/invalidAddress`` saying how to write it.
    public init(parsing text: String, setting: String = "metrics.listen") throws(MetricsServerError) {
        let example = "write e.g. \"127.0.0.1:9464\", \"0.0.0.0:9464\", \"[::1]:9464\" or \"[::]:9464\""
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
              text[text.index(after: colon)...].allSatisfy(\.isASCII) else {
            throw MetricsServerError(.invalidAddress, setting: setting, "'\(text)' is not host:port; \(example)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 {
            host = String(host.dropFirst().dropLast())
            guard Self.isIPv6(host) else {
                throw MetricsServerError(.invalidAddress, setting: setting, "'\(host)' in '\(text)' is not an IPv6 address; \(example)")
            }
            self.family = .ipv6
        } else if host.contains(":") {
            throw MetricsServerError(.invalidAddress, setting: setting, "'\(text)' looks like an IPv6 address without brackets; write it as \"[\(host)]:\(port)\"")
        } else if host == "localhost" {
            host = "127.0.0.1"
            self.family = .ipv4
        } else if Self.isIPv4(host) {
            self.family = .ipv4
        } else if host.isEmpty {
            throw MetricsServerError(.invalidAddress, setting: setting, "'\(text)' has no host; \(example) (0.0.0.0 and [::] listen on every interface)")
        } else {
            throw MetricsServerError(.invalidAddress, setting: setting, "'\(host)' in '\(text)' is not an IP address or localhost (host names are not resolved); \(example)")
        }
        self.host = host
        self.port = port
    }

    /// `host:port`, with IPv6 hosts in brackets.
    public var description: String { family == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func isIPv4(_ host: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, host, &address) == 1
    }

    static func isIPv6(_ host: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, host, &address) == 1
    }
}
