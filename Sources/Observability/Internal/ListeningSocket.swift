#if canImport(Glibc)
import Glibc
#endif

/// Opens the non-blocking listening socket for a ``ListenAddress``.
enum ListeningSocket {
    /// Binds and listens; returns the descriptor and the port actually bound (useful with port 0).
    ///
    /// - Throws: ``MetricsServerError`` with code ``MetricsServerError/Code/cannotListen``, naming `setting` and the fix.
    static func open(_ address: ListenAddress, setting: String, backlog: Int32 = 128) throws(MetricsServerError) -> (descriptor: Int32, port: Int) {
        let domain = address.family == .ipv4 ? AF_INET : AF_INET6
        let descriptor = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure(address, setting: setting, errno: errno) }
        var on: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let result: Int32
        switch address.family {
        case .ipv4:
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = address.port.bigEndian
            inet_pton(AF_INET, address.host, &socketAddress.sin_addr)
            result = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6:
            // `[::]` serves IPv4 clients too, whatever the system's bindv6only default.
            var v6Only: Int32 = address.host == "::" ? 0 : 1
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6Only, socklen_t(MemoryLayout<Int32>.size))
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = address.port.bigEndian
            inet_pton(AF_INET6, address.host, &socketAddress.sin6_addr)
            result = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard result == 0, listen(descriptor, backlog) == 0 else {
            let error = errno
            close(descriptor)
            throw failure(address, setting: setting, errno: error)
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let port: UInt16 = withUnsafeMutablePointer(to: &bound) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
            return address.family == .ipv4
                ? pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
                : pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
        }
        return (descriptor, Int(port))
    }

    /// Sets `O_NONBLOCK` and `FD_CLOEXEC` (Glibc's `accept4` and `pipe2` are not imported into Swift).
    static func makeNonBlockingAndCloseOnExec(_ descriptor: Int32) {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        _ = fcntl(descriptor, F_SETFD, fcntl(descriptor, F_GETFD) | FD_CLOEXEC)
    }

    private static func failure(_ address: ListenAddress, setting: String, errno error: Int32) -> MetricsServerError {
        let reason = String(cString: strerror(error))
        let fix = switch error {
        case EADDRINUSE: "another process listens there; choose another port in \(setting), or set it to null to turn /metrics off"
        case EADDRNOTAVAIL: "\(address.host) is not an address of this machine; use 127.0.0.1, [::1], 0.0.0.0 or [::]"
        case EACCES: "ports below 1024 need privileges; choose a port above 1024 in \(setting)"
        case EAFNOSUPPORT: "IPv6 is not available here; use an IPv4 address such as 127.0.0.1 in \(setting)"
        default: "check \(setting)"
        }
        return MetricsServerError(.cannotListen, setting: setting, "cannot listen on \(address) for /metrics: \(reason); \(fix)", detail: reason)
    }
}
