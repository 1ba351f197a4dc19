#if canImport(Glibc)
import Glibc
#endif

/// The ``MetricsServer``'s thread: one `poll(2)` loop over the listening socket, a wake pipe (stop) and every
/// client, all non-blocking. Each client moves reading → writing → draining → closed, each phase with a deadline.
final class ServerLoop {
    private enum Phase {
        /// Receiving the request head.
        case reading
        /// Sending `response` from `sent` on.
        case writing(response: [UInt8], sent: Int)
        /// Response sent and our side shut down: discard what the client still sends until it closes, so that
        /// closing with unread input does not reset the connection before the client read the response.
        case draining
    }

    private struct Client {
        let descriptor: Int32
        let connected: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant
        var input: [UInt8] = []
        var phase = Phase.reading
        var isOpen = true
    }

    private let listener: Int32
    private let wake: Int32
    private let limits: MetricsServer.Limits
    private let metrics: @Sendable () -> String
    private let healthy: @Sendable () -> Bool
    private let status: (@Sendable () -> String)?
    private var clients: [Client] = []
    /// Set when `accept` ran out of descriptors: the listener is left alone until then, instead of spinning.
    private var acceptPausedUntil: ContinuousClock.Instant?
    private var scratch = [UInt8](repeating: 0, count: 4096)

    init(listener: Int32, wake: Int32, limits: MetricsServer.Limits, metrics: @escaping @Sendable () -> String,
         healthy: @escaping @Sendable () -> Bool, status: (@Sendable () -> String)?) {
        self.listener = listener
        self.wake = wake
        self.limits = limits
        self.metrics = metrics
        self.healthy = healthy
        self.status = status
    }

    /// Serves until the wake pipe becomes readable, then closes everything.
    func run() {
        defer {
            for client in clients where client.isOpen { close(client.descriptor) }
            close(listener)
            close(wake)
        }
        while true {
            let now = ContinuousClock.now
            expireDeadlines(now)
            let listening = acceptPausedUntil.map { now >= $0 } ?? true
            if listening { acceptPausedUntil = nil }
            var descriptors = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            if listening { descriptors.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
            let firstClient = descriptors.count
            for client in clients {
                let events = if case .writing = client.phase { Int16(POLLOUT) } else { Int16(POLLIN) }
                descriptors.append(pollfd(fd: client.descriptor, events: events, revents: 0))
            }
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds(now))
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if descriptors[0].revents != 0 { return }
            let after = ContinuousClock.now
            for index in clients.indices where descriptors[firstClient + index].revents != 0 {
                serve(&clients[index], now: after)
            }
            clients.removeAll { !$0.isOpen }
            if listening && descriptors[1].revents != 0 { acceptClients(after) }
        }
    }

    /// Until the nearest deadline (a client's, or the end of an accept pause); -1 (none) when idle.
    private func timeoutMilliseconds(_ now: ContinuousClock.Instant) -> Int32 {
        var nearest = clients.map(\.deadline).min()
        if let paused = acceptPausedUntil { nearest = min(nearest ?? paused, paused) }
        guard let nearest else { return -1 }
        let remaining = nearest - now
        guard remaining > .zero else { return 0 }
        let (seconds, attoseconds) = remaining.components
        return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    private func expireDeadlines(_ now: ContinuousClock.Instant) {
        for index in clients.indices where clients[index].deadline <= now {
            if case .reading = clients[index].phase, !clients[index].input.isEmpty {
                respond(&clients[index], HTTPResponse.timedOut, now: now)
            } else {
                finish(&clients[index])
            }
        }
        clients.removeAll { !$0.isOpen }
    }

    private func acceptClients(_ now: ContinuousClock.Instant) {
        for _ in 0..<64 {
            let descriptor = accept(listener, nil, nil)
            if descriptor < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: acceptPausedUntil = now + .milliseconds(100)
                default: break
                }
                return
            }
            ListeningSocket.makeNonBlockingAndCloseOnExec(descriptor)
            if clients.count >= limits.maxConnections {
                // Full: the connection that has been sending its request the longest makes room. A scrape sends
                // its request at once, so slow or idle clients cannot lock scrapes out.
                guard let oldest = clients.indices.filter({ if case .reading = clients[$0].phase { true } else { false } })
                    .min(by: { clients[$0].connected < clients[$1].connected }) else {
                    close(descriptor)
                    continue
                }
                finish(&clients[oldest])
                clients.remove(at: oldest)
            }
            clients.append(Client(descriptor: descriptor, connected: now, deadline: now + limits.readTimeout))
        }
    }

    private func serve(_ client: inout Client, now: ContinuousClock.Instant) {
        switch client.phase {
        case .reading:
            let wanted = min(scratch.count, limits.maxRequestBytes + 1 - client.input.count)
            let count = scratch.withUnsafeMutableBytes { recv(client.descriptor, $0.baseAddress, wanted, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { finish(&client) }
                return
            }
            if count == 0 {
                // The client closed before finishing its request: nobody to answer.
                finish(&client)
                return
            }
            client.input += scratch[..<count]
            let parse = HTTPRequestHead.parse(client.input, limit: limits.maxRequestBytes)
            if let response = HTTPResponse.answer(parse, limit: limits.maxRequestBytes, metrics: metrics, healthy: healthy, status: status) {
                respond(&client, response, now: now)
            }
        case .writing:
            send(&client, now: now)
        case .draining:
            let count = scratch.withUnsafeMutableBytes { recv(client.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { finish(&client) }
        }
    }

    private func respond(_ client: inout Client, _ response: HTTPResponse, now: ContinuousClock.Instant) {
        client.input = []
        client.phase = .writing(response: response.bytes, sent: 0)
        client.deadline = now + limits.writeTimeout
        send(&client, now: now)
    }

    private func send(_ client: inout Client, now: ContinuousClock.Instant) {
        guard case .writing(let response, var sent) = client.phase else { return }
        while sent < response.count {
            let count = response.withUnsafeBytes {
                Glibc.send(client.descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    client.phase = .writing(response: response, sent: sent)
                } else {
                    finish(&client)  // EPIPE, ECONNRESET: the client is gone
                }
                return
            }
            sent += count
        }
        shutdown(client.descriptor, Int32(SHUT_WR))
        client.phase = .draining
        client.deadline = min(client.deadline, now + .seconds(2))
    }

    private func finish(_ client: inout Client) {
        guard client.isOpen else { return }
        close(client.descriptor)
        client.isOpen = false
    }
}
