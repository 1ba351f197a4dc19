/// `A`: a streamed transaction, or one of its subtransactions, aborted; discard its changes.
public struct StreamAbort: Hashable, Sendable {
    /// The top-level transaction id.
    public var xid: UInt32
    /// The aborted subtransaction's id; equal to ``xid`` when the whole transaction aborted.
    public var subtransactionXID: UInt32

    /// Creates the message.
    public init(xid: UInt32, subtransactionXID: UInt32) {
        self.xid = xid
        self.subtransactionXID = subtransactionXID
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> StreamAbort {
        StreamAbort(xid: try reader.readUInt32("xid"), subtransactionXID: try reader.readUInt32("subtransaction xid"))
    }
}
