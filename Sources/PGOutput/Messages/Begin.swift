/// `B`: a transaction begins. Its changes follow, then a ``Commit``.
public struct Begin: Hashable, Sendable {
    /// The LSN of the transaction's commit record.
    public var finalLSN: LSN
    /// When the transaction committed.
    public var commitTime: PostgresTimestamp
    /// The transaction id.
    public var xid: UInt32

    /// Creates the message.
    public init(finalLSN: LSN, commitTime: PostgresTimestamp, xid: UInt32) {
        self.finalLSN = finalLSN
        self.commitTime = commitTime
        self.xid = xid
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> Begin {
        Begin(finalLSN: try reader.readLSN("final LSN"),
              commitTime: try reader.readTimestamp("commit time"),
              xid: try reader.readUInt32("xid"))
    }
}
