/// One CopyData message the server sends during `START_REPLICATION`.
public enum ReplicationFrame: Hashable, Sendable {
    /// The first byte of each frame kind.
    public enum ID: UInt8, Sendable {
        case xLogData = 119 // 'w'
        case primaryKeepalive = 107 // 'k'
    }

    /// WAL data: one output-plugin message.
    case xLogData(XLogData)
    /// A keepalive, possibly asking for a reply.
    case primaryKeepalive(PrimaryKeepalive)

    /// Decodes one CopyData payload.
    ///
    /// - Throws: ``PGOutputError`` for an empty, truncated, overlong or unknown frame.
    public static func decode(_ bytes: [UInt8]) throws(PGOutputError) -> ReplicationFrame {
        var reader = WireReader(bytes, messageName: "replication frame")
        let tag = try reader.readUInt8("frame type")
        switch ID(rawValue: tag) {
        case .xLogData:
            var body = WireReader(bytes, offset: 1, messageName: "XLogData")
            return .xLogData(try XLogData.decode(from: &body))
        case .primaryKeepalive:
            var body = WireReader(bytes, offset: 1, messageName: "PrimaryKeepalive")
            return .primaryKeepalive(try PrimaryKeepalive.decode(from: &body))
        case nil:
            throw reader.error(.unknownMessageType, field: "frame type", at: 0, detail: "byte \(tag)")
        }
    }
}
