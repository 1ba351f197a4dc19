/// `M`: a logical decoding message written with `pg_logical_emit_message` (needs the `messages 'true'` option).
public struct LogicalMessage: Hashable, Sendable {
    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The message was emitted as part of a transaction (sent at its commit) rather than at once.
    public var isTransactional: Bool
    /// The LSN of the message.
    public var lsn: LSN
    /// The prefix given to `pg_logical_emit_message`.
    public var prefix: String
    /// The content.
    public var content: [UInt8]

    /// Creates the message.
    public init(xid: UInt32? = nil, isTransactional: Bool, lsn: LSN, prefix: String, content: [UInt8]) {
        self.xid = xid
        self.isTransactional = isTransactional
        self.lsn = lsn
        self.prefix = prefix
        self.content = content
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> LogicalMessage {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let flags = try reader.readUInt8("flags")
        let lsn = try reader.readLSN("message LSN")
        let prefix = try reader.readCString("prefix")
        let lengthOffset = reader.offset
        let length = try reader.readInt32("content length")
        guard length >= 0 else {
            throw reader.error(.invalidValue, field: "content length", at: lengthOffset, detail: "\(length)")
        }
        return LogicalMessage(xid: xid, isTransactional: flags & 1 == 1, lsn: lsn, prefix: prefix,
                              content: try reader.readBytes(Int(length), "content"))
    }
}
