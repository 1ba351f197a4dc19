/// `U`: a row was updated.
public struct Update: Hashable, Sendable {
    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The OID of the table, described by an earlier ``Relation``.
    public var relationID: UInt32
    /// The old row, sent when the key changed (`K`) or with `REPLICA IDENTITY FULL` (`O`).
    public var old: OldTuple?
    /// The new row; TOASTed columns that did not change are ``TupleData/Value/unchangedToast``.
    public var newTuple: TupleData

    /// Creates the message.
    public init(xid: UInt32? = nil, relationID: UInt32, old: OldTuple?, newTuple: TupleData) {
        self.xid = xid
        self.relationID = relationID
        self.old = old
        self.newTuple = newTuple
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> Update {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let relationID = try reader.readUInt32("relation OID")
        let markerOffset = reader.offset
        var marker = try reader.readUInt8("tuple marker")
        var old: OldTuple?
        if marker == TupleMarker.key.rawValue || marker == TupleMarker.old.rawValue {
            old = OldTuple(kind: marker == TupleMarker.key.rawValue ? .key : .full, tuple: try TupleData.decode(from: &reader))
            try TupleMarker.expect(.new, in: &reader)
            marker = TupleMarker.new.rawValue
        }
        guard marker == TupleMarker.new.rawValue else {
            throw reader.error(.invalidValue, field: "tuple marker", at: markerOffset,
                               detail: "byte \(marker), expected 'K', 'O' or 'N'")
        }
        return Update(xid: xid, relationID: relationID, old: old, newTuple: try TupleData.decode(from: &reader))
    }
}
