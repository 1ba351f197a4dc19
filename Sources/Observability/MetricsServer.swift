import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.x server for `/metrics` (Prometheus text format) and `/healthz`, on a thread of its own.
///
/// ```swift
/// let server = try MetricsServer(listen: "[::1]:9464", metrics: { metrics.render() }, healthy: { metrics.isStreaming })
/// defer { server.stop() }
/// ```
///
/// Built to survive its clients, since load balancers, port scanners and stuck scrapers all reach it:
/// - SIGPIPE can never kill the process: it is ignored process-wide when a server starts, and every send uses
///   `MSG_NOSIGNAL`. A client that resets its connection before or after sending costs nothing but its socket.
/// - Clients are served concurrently by one `poll(2)` loop with non-blocking sockets, so one slow client never
///   delays another, or the caller's own work (the replication stream). At most ``Limits/maxConnections`` are
///   open; past that, the oldest connection still sending its request is dropped for the new one.
/// - The request must arrive within ``Limits/readTimeout`` (else 408) and the response be taken within
///   ``Limits/writeTimeout``; a request head above ``Limits/maxRequestBytes`` gets 413, a malformed one 400,
///   another method than GET 405. One request per connection (HTTP/1.0 answers, `Connection: close`).
/// - It listens on IPv4, IPv6 (`[::1]:9464`, `[::]:9464` for every interface) or `localhost` (see
///   ``ListenAddress``).
///
/// `metrics` and `healthy` run on the server's thread for each request and should return quickly (take a
/// snapshot under a lock, as ``PrometheusText`` users do).
public final class MetricsServer: Sendable {
    /// Bounds on what clients can cost.
    public struct Limits: Sendable {
        /// The most connections open at once.
        public var maxConnections: Int
        /// The largest request head accepted, in bytes.
        public var maxRequestBytes: Int
        /// How long a client has, from connecting, to send its whole request.
        public var readTimeout: Duration
        /// How long a client has to take the whole response.
        public var writeTimeout: Duration

        /// Creates limits; the defaults suit Prometheus scrapes and health probes.
        public init(maxConnections: Int = 64, maxRequestBytes: Int = 8192, readTimeout: Duration = .seconds(5),
                    writeTimeout: Duration = .seconds(10)) {
            self.maxConnections = max(1, maxConnections)
            self.maxRequestBytes = max(64, maxRequestBytes)
            self.readTimeout = readTimeout
            self.writeTimeout = writeTimeout
        }
    }

    /// The address listened on, as parsed.
    public let address: ListenAddress
    /// The port actually bound (useful with port 0).
    public let port: Int
    private let wakeDescriptor: Int32
    private let finished = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    /// Binds `listen` and starts serving.
    ///
    /// - Parameters:
    ///   - listen: `host:port`, see ``ListenAddress``.
    ///   - setting: The setting `listen` came from, named in errors (default `metrics.listen`).
    ///   - limits: Bounds on what clients can cost.
    ///   - metrics: Rendered at `GET /metrics`.
    ///   - healthy: Decides `GET /healthz`: 200 when true, 503 otherwise.
    ///   - status: Rendered at `GET /status` as `application/json`; `nil`: 404 there.
    /// - Throws: ``MetricsServerError`` naming `setting` and the fix when the address is invalid or cannot be bound.
    public init(listen: String, setting: String = "metrics.listen", limits: Limits = Limits(),
                metrics: @escaping @Sendable () -> String, healthy: @escaping @Sendable () -> Bool,
                status: (@Sendable () -> String)? = nil) throws(MetricsServerError) {
        address = try ListenAddress(parsing: listen, setting: setting)
        // A client that resets its connection must never kill the process: EPIPE is an error, not a signal.
        signal(SIGPIPE, SIG_IGN)
        let (listener, port) = try ListeningSocket.open(address, setting: setting)
        var wake: [Int32] = [-1, -1]
        guard pipe(&wake) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw MetricsServerError(.cannotListen, setting: setting, "cannot start the /metrics server: \(reason)", detail: reason)
        }
        wake.forEach(ListeningSocket.makeNonBlockingAndCloseOnExec)
        self.port = port
        self.wakeDescriptor = wake[1]
        let finished = self.finished
        let (wakeRead, name) = (wake[0], "tailgate.metrics.\(port)")
        let thread = Thread {
            let loop = ServerLoop(listener: listener, wake: wakeRead, limits: limits, metrics: metrics, healthy: healthy, status: status)
            loop.run()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops listening, closes every connection and returns once the port is free. Calling it again does nothing.
    ///
    /// Do not call it from `metrics` or `healthy` (they run on the server's thread, which this waits for).
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(wakeDescriptor, &byte, 1)
        finished.wait()
        close(wakeDescriptor)
    }

    deinit {
        stop()
    }
}
