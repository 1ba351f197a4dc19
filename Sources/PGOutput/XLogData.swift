/// A `w` (XLogData) frame of the streaming replication protocol: a chunk of WAL, here one pgoutput message.
public struct XLogData: Hashable, Sendable {
    /// The WAL position where this data starts.
    public var walStart: LSN
    /// The server's current end of WAL.
    public var serverWALEnd: LSN
    /// The server's clock when it sent the frame.
    public var sendTime: PostgresTimestamp
    /// The payload: with a logical slot, one message of the output plugin.
    public var data: [UInt8]

    /// Creates a frame.
    public init(walStart: LSN, serverWALEnd: LSN, sendTime: PostgresTimestamp, data: [UInt8]) {
        self.walStart = walStart
        self.serverWALEnd = serverWALEnd
        self.sendTime = sendTime
        self.data = data
    }

    /// Decodes the frame body that follows the `w` byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> XLogData {
        XLogData(
            walStart: try reader.readLSN("WAL start"),
            serverWALEnd: try reader.readLSN("server WAL end"),
            sendTime: try reader.readTimestamp("send time"),
            data: reader.readRemainingBytes())
    }
}
