/// `O`: the current transaction came from another node through a replication origin.
public struct Origin: Hashable, Sendable {
    /// The commit LSN on the origin server.
    public var commitLSN: LSN
    /// The origin's name.
    public var name: String

    /// Creates the message.
    public init(commitLSN: LSN, name: String) {
        self.commitLSN = commitLSN
        self.name = name
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> Origin {
        Origin(commitLSN: try reader.readLSN("origin commit LSN"), name: try reader.readCString("origin name"))
    }
}
