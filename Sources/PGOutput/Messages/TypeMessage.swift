/// `Y`: a user-defined type used by a following Relation, so its OID can be named.
public struct TypeMessage: Hashable, Sendable {
    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The type's OID.
    public var id: UInt32
    /// The schema name (`pg_catalog` is sent as an empty string).
    public var namespace: String
    /// The type name.
    public var name: String

    /// Creates the message.
    public init(xid: UInt32? = nil, id: UInt32, namespace: String, name: String) {
        self.xid = xid
        self.id = id
        self.namespace = namespace
        self.name = name
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> TypeMessage {
        TypeMessage(xid: inStream ? try reader.readUInt32("xid") : nil,
                    id: try reader.readUInt32("type OID"),
                    namespace: try reader.readCString("namespace"),
                    name: try reader.readCString("type name"))
    }
}
