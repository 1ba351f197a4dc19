/// A `k` (primary keepalive) frame: the server's WAL end, its clock, and whether it wants a status reply now.
public struct PrimaryKeepalive: Hashable, Sendable {
    /// The server's current end of WAL.
    public var serverWALEnd: LSN
    /// The server's clock when it sent the frame.
    public var sendTime: PostgresTimestamp
    /// The server asks for a standby status update at once (it is close to `wal_sender_timeout`).
    public var replyRequested: Bool

    /// Creates a frame.
    public init(serverWALEnd: LSN, sendTime: PostgresTimestamp, replyRequested: Bool) {
        self.serverWALEnd = serverWALEnd
        self.sendTime = sendTime
        self.replyRequested = replyRequested
    }

    /// Decodes the frame body that follows the `k` byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> PrimaryKeepalive {
        let walEnd = try reader.readLSN("server WAL end")
        let sendTime = try reader.readTimestamp("send time")
        let replyOffset = reader.offset
        let reply = try reader.readUInt8("reply requested")
        guard reply <= 1 else {
            throw reader.error(.invalidValue, field: "reply requested", at: replyOffset, detail: "byte \(reply), expected 0 or 1")
        }
        try reader.expectEnd()
        return PrimaryKeepalive(serverWALEnd: walEnd, sendTime: sendTime, replyRequested: reply == 1)
    }
}
