/// `D`: a row was deleted.
public struct Delete: Hashable, Sendable {
    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The OID of the table, described by an earlier ``Relation``.
    public var relationID: UInt32
    /// The deleted row's key columns (`K`) or the whole row (`O`, with `REPLICA IDENTITY FULL`).
    public var old: OldTuple

    /// Creates the message.
    public init(xid: UInt32? = nil, relationID: UInt32, old: OldTuple) {
        self.xid = xid
        self.relationID = relationID
        self.old = old
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> Delete {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let relationID = try reader.readUInt32("relation OID")
        let markerOffset = reader.offset
        let marker = try reader.readUInt8("tuple marker")
        let kind: OldTuple.Kind
        switch TupleMarker(rawValue: marker) {
        case .key: kind = .key
        case .old: kind = .full
        default:
            throw reader.error(.invalidValue, field: "tuple marker", at: markerOffset, detail: "byte \(marker), expected 'K' or 'O'")
        }
        return Delete(xid: xid, relationID: relationID, old: OldTuple(kind: kind, tuple: try TupleData.decode(from: &reader)))
    }
}
