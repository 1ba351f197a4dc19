/// `I`: a row was inserted.
public struct Insert: Hashable, Sendable {
    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The OID of the table, described by an earlier ``Relation``.
    public var relationID: UInt32
    /// The new row.
    public var newTuple: TupleData

    /// Creates the message.
    public init(xid: UInt32? = nil, relationID: UInt32, newTuple: TupleData) {
        self.xid = xid
        self.relationID = relationID
        self.newTuple = newTuple
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> Insert {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let relationID = try reader.readUInt32("relation OID")
        try TupleMarker.expect(.new, in: &reader)
        return Insert(xid: xid, relationID: relationID, newTuple: try TupleData.decode(from: &reader))
    }
}
