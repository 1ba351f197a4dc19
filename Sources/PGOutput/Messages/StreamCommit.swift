/// `c`: a streamed transaction committed; its blocks may now be applied.
public struct StreamCommit: Hashable, Sendable {
    /// The transaction id.
    public var xid: UInt32
    /// Flags; currently always 0.
    public var flags: UInt8
    /// The LSN of the commit record.
    public var commitLSN: LSN
    /// The end of the commit record: the position to confirm.
    public var endLSN: LSN
    /// When the transaction committed.
    public var commitTime: PostgresTimestamp

    /// Creates the message.
    public init(xid: UInt32, flags: UInt8 = 0, commitLSN: LSN, endLSN: LSN, commitTime: PostgresTimestamp) {
        self.xid = xid
        self.flags = flags
        self.commitLSN = commitLSN
        self.endLSN = endLSN
        self.commitTime = commitTime
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> StreamCommit {
        StreamCommit(xid: try reader.readUInt32("xid"),
                     flags: try reader.readUInt8("flags"),
                     commitLSN: try reader.readLSN("commit LSN"),
                     endLSN: try reader.readLSN("end LSN"),
                     commitTime: try reader.readTimestamp("commit time"))
    }
}
