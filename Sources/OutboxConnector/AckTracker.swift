import PGOutput

/// Decides which WAL position may be confirmed to PostgreSQL: the one place that guarantee lives.
///
/// Transactions are tracked in commit order. A transaction's Commit end LSN becomes confirmable once it has
/// committed, every record produced from it was acknowledged by Kafka, **and** so was every earlier transaction's.
/// A keepalive's WAL end is confirmable only when nothing is in flight and no transaction is open, so an idle slot
/// does not hold WAL while a stale echo never skips an unacknowledged record. After ``fail()`` nothing more is
/// confirmable. Pure state, no I/O.
///
/// A message order the server should never send (a Begin inside a transaction, a record or Commit outside one) is
/// an ``AckTracker/ProtocolViolation``, thrown, never a crash: the connector stops without confirming past it.
struct AckTracker: Sendable {
    /// A replication message arrived where the protocol allows none; the tracker is unchanged.
    struct ProtocolViolation: Error, Hashable, Sendable, CustomStringConvertible {
        /// What arrived where.
        var message: String
        var description: String { message }
    }

    private struct Transaction: Sendable {
        var endLSN: LSN?
        var outstanding: Int
        /// When the transaction committed at the source (from its Begin), for commit-to-acknowledgement times.
        var commitTime: PostgresTimestamp
    }

    /// Transactions not yet confirmable, oldest first; `firstSequence` numbers `pending[0]`.
    private var pending: [Transaction] = []
    private var head = 0
    private var firstSequence: UInt64 = 0
    private var tokenTransaction: [UInt64: UInt64] = [:]
    private var nextToken: UInt64 = 0
    private var openTransaction: UInt64?

    /// The newest position that may be confirmed.
    private(set) var confirmable: LSN
    /// Records produced and not yet acknowledged.
    private(set) var inFlightRecords = 0
    /// A delivery failed or the session broke: nothing further is confirmable (see ``fail()``).
    private(set) var isFailed = false

    /// Creates a tracker that starts at `position` (the slot's confirmed position).
    ///
    /// - Parameter firstToken: The first token handed out. Give each replication session its own range, so that a
    ///   late acknowledgement of a record from an earlier session can never be mistaken for one of this session's.
    init(startingAt position: LSN = .invalid, firstToken: UInt64 = 0) {
        confirmable = position
        nextToken = firstToken
    }

    /// Whether a transaction is open (Begin seen, Commit not yet).
    var hasOpenTransaction: Bool { openTransaction != nil }

    /// Transactions committed or open whose records are not all acknowledged.
    var pendingTransactions: Int { pending.count - head }

    /// A Begin arrived; `commitTime` is the transaction's, returned with each of its acknowledgements.
    ///
    /// - Throws: ``ProtocolViolation`` when a transaction is already open.
    mutating func begin(commitTime: PostgresTimestamp = PostgresTimestamp(rawValue: 0)) throws(ProtocolViolation) {
        guard openTransaction == nil else { throw ProtocolViolation(message: "a Begin arrived inside an open transaction") }
        openTransaction = firstSequence + UInt64(pending.count - head)
        pending.append(Transaction(endLSN: nil, outstanding: 0, commitTime: commitTime))
    }

    /// A record of the open transaction is being produced; returns the token its delivery report will carry.
    ///
    /// - Throws: ``ProtocolViolation`` when no transaction is open.
    mutating func recordProduced() throws(ProtocolViolation) -> UInt64 {
        guard let sequence = openTransaction else { throw ProtocolViolation(message: "a row arrived outside a transaction (no Begin before it)") }
        pending[index(of: sequence)].outstanding += 1
        let token = nextToken
        nextToken += 1
        tokenTransaction[token] = sequence
        inFlightRecords += 1
        return token
    }

    /// The open transaction committed; returns the new confirmable position if it moved.
    ///
    /// - Throws: ``ProtocolViolation`` when no transaction is open.
    mutating func commit(endLSN: LSN) throws(ProtocolViolation) -> LSN? {
        guard let sequence = openTransaction else { throw ProtocolViolation(message: "a Commit arrived without a Begin") }
        pending[index(of: sequence)].endLSN = endLSN
        openTransaction = nil
        return advance()
    }

    /// Something went wrong that may leave a record unacknowledged for good (a delivery failed, a fatal producer,
    /// an invalidated slot): from now on no position is confirmable, whatever is acknowledged later. The next
    /// session starts again from the last confirmed position and replays the rest.
    mutating func fail() {
        isFailed = true
    }

    /// Kafka acknowledged the record with `token`; returns the new confirmable position if it moved, and the commit
    /// time of the record's transaction (`nil` for a token this tracker does not know).
    mutating func acknowledged(token: UInt64) -> (moved: LSN?, commitTime: PostgresTimestamp?) {
        guard let sequence = tokenTransaction.removeValue(forKey: token) else { return (nil, nil) }
        let index = index(of: sequence)
        pending[index].outstanding -= 1
        let commitTime = pending[index].commitTime
        inFlightRecords -= 1
        return (advance(), commitTime)
    }

    /// The server reported its WAL end in a keepalive; returns it as the new confirmable position when nothing is
    /// in flight and no transaction is open.
    mutating func keepalive(serverWALEnd: LSN) -> LSN? {
        guard !isFailed, openTransaction == nil, pendingTransactions == 0, serverWALEnd > confirmable else { return nil }
        confirmable = serverWALEnd
        return serverWALEnd
    }

    private func index(of sequence: UInt64) -> Int {
        head + Int(sequence - firstSequence)
    }

    private mutating func advance() -> LSN? {
        guard !isFailed else { return nil }
        var moved: LSN?
        while head < pending.count, let end = pending[head].endLSN, pending[head].outstanding == 0 {
            if end > confirmable {
                confirmable = end
                moved = end
            }
            head += 1
            firstSequence += 1
        }
        if head > 1024 && head * 2 > pending.count {
            pending.removeFirst(head)
            head = 0
        }
        return moved
    }
}
