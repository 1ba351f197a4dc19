import Dispatch
import PGOutput
import Synchronization

/// The CopyBoth stream of a started logical replication: frames in, standby status updates out.
///
/// Read frames with ``next(timeout:)``. Tell the stream how far your work is durable with ``confirm(_:)``; it
/// reports that position in every standby status update: at least every `statusInterval`, whether or not you are
/// reading (so back-pressure never trips `wal_sender_timeout`), within about a second of a new confirmed
/// position, and at once when a keepalive asks for a reply.
/// The server's WAL end from every frame is in ``serverWALEnd``.
///
/// Like PostgreSQL's own `wal_receiver_timeout`, a stream with a `receiveTimeout` does not wait on a silent
/// server forever: after half of it without a message while reading, it asks the server for a reply; after all of
/// it, reading throws `connectionLost`. Time the caller spends away from reading (back-pressure) does not count.
/// A status update the background timer could not send (the connection broke while nobody was reading) is thrown
/// by the next read.
///
/// `@unchecked Sendable`: the libpq connection and the timer are only used on `queue` (and in `init`/`deinit`),
/// and the positions shared with other threads sit behind a `Mutex`.
public final class ReplicationStream: @unchecked Sendable {
    private struct Positions {
        var confirmed = LSN.invalid
        var received = LSN.invalid
        var serverWALEnd = LSN.invalid
        var lastStatusSent: ContinuousClock.Instant
        var lastSentFlushed = LSN.invalid
        var statusUpdatesSent = 0
        var closed = false
        /// Time spent reading without receiving a frame, since the last frame.
        var silence = Duration.zero
        /// A reply was asked for in the current silence.
        var pinged = false
        /// What the background timer's last status update failed with.
        var timerError: PostgresError?
    }

    private let connection: PQConnection
    private let queue: DispatchQueue
    private let statusInterval: Duration
    private let receiveTimeout: Duration?
    private let positions: Mutex<Positions>
    private let timer: any DispatchSourceTimer

    init(connection: PQConnection, queue: DispatchQueue, start: LSN, statusInterval: Duration, receiveTimeout: Duration?) {
        self.connection = connection
        self.queue = queue
        self.statusInterval = statusInterval
        self.receiveTimeout = receiveTimeout
        self.positions = Mutex(Positions(confirmed: .invalid, received: start, lastStatusSent: .now))
        self.timer = DispatchSource.makeTimerSource(queue: queue)
        let nanoseconds = Int(statusInterval.components.seconds) * 1_000_000_000
            + Int(statusInterval.components.attoseconds / 1_000_000_000)
        let tick = DispatchTimeInterval.nanoseconds(max(1_000_000, min(250_000_000, nanoseconds / 4)))
        timer.schedule(deadline: .now() + tick, repeating: tick)
        // While nobody reads (the caller applies back-pressure), this keeps status updates flowing.
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            do throws(PostgresError) {
                try self.sendStatusIfDue()
            } catch {
                self.positions.withLock { if $0.timerError == nil { $0.timerError = error } }
            }
        }
        timer.resume()
    }

    deinit {
        timer.cancel()
    }

    /// The latest WAL end the server reported (in XLogData or keepalive frames).
    public var serverWALEnd: LSN { positions.withLock { $0.serverWALEnd } }

    /// The position last passed to ``confirm(_:)``.
    public var confirmedPosition: LSN { positions.withLock { $0.confirmed } }

    /// The flushed position of the last standby status update sent (what the slot's `confirmed_flush_lsn` follows).
    public var flushedPositionSent: LSN { positions.withLock { $0.lastSentFlushed } }

    /// How many standby status updates have been sent.
    public var statusUpdatesSent: Int { positions.withLock { $0.statusUpdatesSent } }

    /// Records that everything before `position` is durably handled; it goes out with the next status update.
    ///
    /// A position older than one already confirmed is ignored: the confirmed position never moves backwards.
    /// Callable from any thread.
    public func confirm(_ position: LSN) {
        positions.withLock { $0.confirmed = max($0.confirmed, position) }
    }

    /// Waits for the next frame, up to `timeout`.
    ///
    /// Keepalives are returned too (after a reply was sent, if one was asked for), so the caller sees the server's
    /// WAL end even when no data flows.
    ///
    /// - Returns: The frame, or `nil` when `timeout` passed without one.
    /// - Throws: ``PostgresError`` with code `connectionLost` when the connection breaks or the server ends the
    ///   stream, `protocolViolation` for a frame that does not decode.
    public func next(timeout: Duration) async throws(PostgresError) -> ReplicationFrame? {
        try await Connection.run(on: queue) { () throws(PostgresError) in try self.receive(timeout: timeout) }
    }

    /// ``next(timeout:)`` for a caller on a thread of its own: blocks that thread, never the concurrency pool's.
    package func nextBlocking(timeout: Duration) throws(PostgresError) -> ReplicationFrame? {
        let result: Result<ReplicationFrame?, PostgresError> = queue.sync {
            do throws(PostgresError) { return .success(try self.receive(timeout: timeout)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Reads frames and hands each to `handle` on the connection's own thread, without coming back to the caller
    /// between frames or between bursts: a busy stream is read, decoded and passed on by one thread, with no hand-over
    /// per batch (the hop to the queue and back costs two thread wake-ups, more than a small burst's work).
    ///
    /// `batchDone` runs after each burst (when no further frame is buffered, and before returning): the place for work
    /// done once per batch. The call returns after `maxFrames` frames, when `handle` or `batchDone` returns `false` (the
    /// caller has something to wait for, or to stop), or at the end of the first burst after `timeout` (at once when
    /// no frame is coming then): the caller gets control back at least that often, even while keepalives or data keep
    /// arriving. Status updates keep flowing meanwhile, as with ``next(timeout:)``.
    ///
    /// Under load the server sends a frame at a time, and a reader that wakes for each pays a wake-up per frame for
    /// little work. So when the wait for the last burst was short (frames arrive less than a millisecond apart, or
    /// less than `coalescing` when that is longer) and the burst was small, the thread pauses `coalescing` before it
    /// reads again, and takes what arrived meanwhile as one burst. A quiet stream (a transaction every few
    /// milliseconds, with the connector's 250 µs) is never delayed.
    ///
    /// - Returns: How many frames `handle` received.
    /// - Throws: ``PostgresError`` as ``next(timeout:)``, or what `handle` or `batchDone` threw (the frame that
    ///   `handle` threw for is consumed).
    @discardableResult
    public func receive(maxFrames: Int, timeout: Duration, coalescing: Duration = .microseconds(250),
                        handle: @escaping @Sendable (ReplicationFrame) throws -> Bool,
                        batchDone: @escaping @Sendable () throws -> Bool) async throws -> Int {
        try await Connection.run(on: queue) { () throws(any Error) -> Int in
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            var handled = 0
            var inBurst = 0
            var busy = false
            while handled < maxFrames {
                var next = try self.receive(timeout: .zero)
                if next == nil {
                    if inBurst > 0 {
                        let small = inBurst < Self.smallBurst
                        inBurst = 0
                        guard try batchDone(), clock.now < deadline else { return handled }
                        if busy && small && coalescing > .zero {
                            PQConnection.pause(coalescing)
                            next = try self.receive(timeout: .zero)
                        }
                    }
                    if next == nil {
                        let waitStarted = clock.now
                        guard waitStarted < deadline else { return handled }
                        next = try self.receive(timeout: deadline - waitStarted)
                        busy = clock.now - waitStarted < max(.milliseconds(1), coalescing)
                    }
                }
                guard let frame = next else { return handled }
                handled += 1
                inBurst += 1
                guard try handle(frame) else { break }
            }
            if inBurst > 0 { _ = try batchDone() }
            return handled
        }
    }

    /// Fewer frames than this in a burst under load, and ``receive(maxFrames:timeout:coalescing:handle:batchDone:)``
    /// waits a moment for more.
    static let smallBurst = 64

    /// Sends a standby status update now with the current positions.
    ///
    /// - Parameter replyRequested: Ask the server to answer with a keepalive.
    /// - Throws: ``PostgresError`` when the connection is broken.
    public func sendStatus(replyRequested: Bool = false) async throws(PostgresError) {
        try await Connection.run(on: queue) { () throws(PostgresError) in try self.sendStatusNow(replyRequested: replyRequested) }
    }

    /// Sends a final status update, ends the stream and closes the connection.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.timer.cancel()
                if !self.positions.withLock({ $0.closed }) {
                    try? self.sendStatusNow(replyRequested: false)
                    self.connection.endCopy()
                    self.connection.close()
                    self.positions.withLock { $0.closed = true }
                }
                continuation.resume()
            }
        }
    }

    // MARK: On the queue

    private func receive(timeout: Duration) throws(PostgresError) -> ReplicationFrame? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var readSocket = false
        while true {
            if let failed = positions.withLock({ $0.timerError }) { throw failed }
            try sendStatusIfDue()
            switch try connection.readCopyData() {
            case .data(let bytes):
                positions.withLock {
                    $0.silence = .zero
                    $0.pinged = false
                }
                let frame: ReplicationFrame
                do {
                    frame = try ReplicationFrame.decode(bytes)
                } catch {
                    throw PostgresError(code: .protocolViolation, message: error.description)
                }
                switch frame {
                case .xLogData(let data):
                    positions.withLock {
                        $0.received = max($0.received, data.walStart)
                        $0.serverWALEnd = max($0.serverWALEnd, data.serverWALEnd)
                    }
                case .primaryKeepalive(let keepalive):
                    positions.withLock { $0.serverWALEnd = max($0.serverWALEnd, keepalive.serverWALEnd) }
                    if keepalive.replyRequested { try sendStatusNow(replyRequested: false) }
                }
                return frame
            case .wouldBlock:
                let now = clock.now
                if now >= deadline {
                    // Take what the socket already holds before giving up (for a zero timeout).
                    if readSocket { return nil }
                    readSocket = true
                    try connection.consumeInput()
                    continue
                }
                var wakeUp = min(deadline, max(positions.withLock { $0.lastStatusSent } + statusInterval, now))
                if let receiveTimeout {
                    let (silence, pinged) = positions.withLock { ($0.silence, $0.pinged) }
                    if silence >= receiveTimeout {
                        throw PostgresError(code: .connectionLost, message: "no message from the server for \(Self.seconds(silence)) s (receive timeout \(Self.seconds(receiveTimeout)) s): the network or the server is gone")
                    }
                    if !pinged && silence >= receiveTimeout / 2 {
                        try sendStatusNow(replyRequested: true)
                        positions.withLock { $0.pinged = true }
                    }
                    wakeUp = min(wakeUp, now + (pinged ? receiveTimeout : receiveTimeout / 2) - silence)
                }
                try connection.waitReadable(timeout: wakeUp - now)
                let waited = clock.now - now
                positions.withLock { $0.silence += waited }
                try connection.consumeInput()
            case .done(let error):
                positions.withLock { $0.closed = true }
                throw error
            }
        }
    }

    /// A new confirmed position goes out within about a second (so a crash replays little); otherwise an update
    /// goes out every `statusInterval`.
    private func sendStatusIfDue() throws(PostgresError) {
        let (due, closed) = positions.withLock { state in
            let now = ContinuousClock.now
            let periodic = state.lastStatusSent + statusInterval <= now
            let progress = state.confirmed != state.lastSentFlushed && state.lastStatusSent + min(.seconds(1), statusInterval) <= now
            return (periodic || progress, state.closed)
        }
        if due && !closed { try sendStatusNow(replyRequested: false) }
    }

    private static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.1f", value)
    }

    private func sendStatusNow(replyRequested: Bool) throws(PostgresError) {
        let update = positions.withLock { state -> StandbyStatusUpdate in
            state.lastStatusSent = .now
            state.lastSentFlushed = state.confirmed
            state.statusUpdatesSent += 1
            return StandbyStatusUpdate(written: max(state.received, state.confirmed), flushed: state.confirmed,
                                       applied: state.confirmed, clock: .now, replyRequested: replyRequested)
        }
        try connection.putCopyData(update.encode())
    }
}
