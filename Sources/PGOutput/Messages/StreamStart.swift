/// `S`: a block of changes of an in-progress transaction follows (protocol 2, `streaming 'on'`).
///
/// Changes inside the block carry their transaction id. The transaction may still abort: see ``StreamAbort``.
public struct StreamStart: Hashable, Sendable {
    /// The transaction id.
    public var xid: UInt32
    /// This is the transaction's first block.
    public var isFirstSegment: Bool

    /// Creates the message.
    public init(xid: UInt32, isFirstSegment: Bool) {
        self.xid = xid
        self.isFirstSegment = isFirstSegment
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> StreamStart {
        StreamStart(xid: try reader.readUInt32("xid"), isFirstSegment: try reader.readUInt8("first segment flag") == 1)
    }
}
