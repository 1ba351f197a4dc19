/// The `r` (standby status update) frame a replication client sends to report its progress.
///
/// For a logical slot, ``flushed`` is what PostgreSQL records as `confirmed_flush_lsn`: WAL before it may be
/// recycled and will not be sent again after a reconnect.
public struct StandbyStatusUpdate: Hashable, Sendable {
    /// The first byte of the frame.
    public static let id: UInt8 = 114 // 'r'

    /// The position after the last WAL byte received and written.
    public var written: LSN
    /// The position after the last WAL byte durably processed: the slot may be advanced to it.
    public var flushed: LSN
    /// The position after the last WAL byte applied.
    public var applied: LSN
    /// The client's clock.
    public var clock: PostgresTimestamp
    /// Ask the server to answer with a keepalive at once.
    public var replyRequested: Bool

    /// Creates a status update.
    public init(written: LSN, flushed: LSN, applied: LSN, clock: PostgresTimestamp, replyRequested: Bool = false) {
        self.written = written
        self.flushed = flushed
        self.applied = applied
        self.clock = clock
        self.replyRequested = replyRequested
    }

    /// The 34-byte CopyData payload.
    public func encode() -> [UInt8] {
        var bytes: [UInt8] = [Self.id]
        bytes.reserveCapacity(34)
        for value in [written.rawValue, flushed.rawValue, applied.rawValue, UInt64(bitPattern: clock.rawValue)] {
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        bytes.append(replyRequested ? 1 : 0)
        return bytes
    }

    /// Decodes a payload produced by ``encode()`` (used by tests and by tools that inspect captures).
    public static func decode(_ bytes: [UInt8]) throws(PGOutputError) -> StandbyStatusUpdate {
        var reader = WireReader(bytes, messageName: "StandbyStatusUpdate")
        let tag = try reader.readUInt8("frame type")
        guard tag == id else {
            throw reader.error(.unknownMessageType, field: "frame type", at: 0, detail: "byte \(tag), expected 'r'")
        }
        let update = StandbyStatusUpdate(
            written: try reader.readLSN("written"),
            flushed: try reader.readLSN("flushed"),
            applied: try reader.readLSN("applied"),
            clock: try reader.readTimestamp("clock"),
            replyRequested: try reader.readUInt8("reply requested") != 0)
        try reader.expectEnd()
        return update
    }
}
