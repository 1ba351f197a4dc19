/// `C`: the transaction that the last ``Begin`` opened has committed.
///
/// ``endLSN`` is the position to confirm once every change of the transaction has been durably handled: confirming
/// it tells PostgreSQL never to send this transaction again.
public struct Commit: Hashable, Sendable {
    /// Flags; currently always 0.
    public var flags: UInt8
    /// The LSN of the commit record.
    public var commitLSN: LSN
    /// The end of the commit record: the position to confirm.
    public var endLSN: LSN
    /// When the transaction committed.
    public var commitTime: PostgresTimestamp

    /// Creates the message.
    public init(flags: UInt8 = 0, commitLSN: LSN, endLSN: LSN, commitTime: PostgresTimestamp) {
        self.flags = flags
        self.commitLSN = commitLSN
        self.endLSN = endLSN
        self.commitTime = commitTime
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> Commit {
        Commit(flags: try reader.readUInt8("flags"),
               commitLSN: try reader.readLSN("commit LSN"),
               endLSN: try reader.readLSN("end LSN"),
               commitTime: try reader.readTimestamp("commit time"))
    }
}
