/// The options `START_REPLICATION` passes to the `pgoutput` plugin.
public struct PGOutputOptions: Hashable, Sendable {
    /// The protocol version: 1, or 2 for streaming of in-progress transactions.
    public var protocolVersion: Int
    /// The publications whose tables are sent.
    public var publications: [String]
    /// Send logical decoding messages (`pg_logical_emit_message`).
    public var messages: Bool
    /// Send values in binary form.
    public var binary: Bool
    /// Stream large in-progress transactions (protocol 2 or later).
    public var streaming: Bool

    /// Creates options.
    public init(protocolVersion: Int = 1, publications: [String], messages: Bool = false, binary: Bool = false, streaming: Bool = false) {
        self.protocolVersion = protocolVersion
        self.publications = publications
        self.messages = messages
        self.binary = binary
        self.streaming = streaming
    }

    /// The option list as name/value pairs.
    public var commandOptions: [(String, String)] {
        var options = [("proto_version", String(protocolVersion)),
                       ("publication_names", publications.map(SQLIdentifier.quote).joined(separator: ","))]
        if messages { options.append(("messages", "true")) }
        if binary { options.append(("binary", "true")) }
        if streaming { options.append(("streaming", "on")) }
        return options
    }
}
