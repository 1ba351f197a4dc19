/// `R`: the shape of a table, sent before the first change to it in a session and again after it changes.
public struct Relation: Hashable, Sendable {
    /// One column of the table.
    public struct Column: Hashable, Sendable {
        /// The column is part of the replica identity (usually the primary key).
        public var isKey: Bool
        /// The column name.
        public var name: String
        /// The OID of the column's type (see `pg_type`).
        public var typeOID: UInt32
        /// The type modifier (`atttypmod`), -1 when none.
        public var typeModifier: Int32

        /// Creates a column.
        public init(isKey: Bool, name: String, typeOID: UInt32, typeModifier: Int32) {
            self.isKey = isKey
            self.name = name
            self.typeOID = typeOID
            self.typeModifier = typeModifier
        }
    }

    /// The table's `REPLICA IDENTITY` setting.
    public enum ReplicaIdentity: UInt8, Hashable, Sendable {
        case `default` = 100 // 'd'
        case nothing = 110 // 'n'
        case full = 102 // 'f'
        case index = 105 // 'i'
    }

    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The table's OID, which row messages refer to.
    public var id: UInt32
    /// The schema name (`pg_catalog` is sent as an empty string).
    public var namespace: String
    /// The table name.
    public var name: String
    /// The replica identity setting.
    public var replicaIdentity: ReplicaIdentity
    /// The columns in attribute order, without dropped or generated columns.
    public var columns: [Column]

    /// Creates the message.
    public init(xid: UInt32? = nil, id: UInt32, namespace: String, name: String, replicaIdentity: ReplicaIdentity, columns: [Column]) {
        self.xid = xid
        self.id = id
        self.namespace = namespace
        self.name = name
        self.replicaIdentity = replicaIdentity
        self.columns = columns
    }

    /// The index of the column named `name`, if any.
    public func columnIndex(named name: String) -> Int? {
        columns.firstIndex { $0.name == name }
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> Relation {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let id = try reader.readUInt32("relation OID")
        let namespace = try reader.readCString("namespace")
        let name = try reader.readCString("relation name")
        let identityOffset = reader.offset
        let identityByte = try reader.readUInt8("replica identity")
        guard let identity = ReplicaIdentity(rawValue: identityByte) else {
            throw reader.error(.invalidValue, field: "replica identity", at: identityOffset,
                               detail: "byte \(identityByte), expected 'd', 'n', 'f' or 'i'")
        }
        let countOffset = reader.offset
        let count = try reader.readInt16("column count")
        guard count >= 0 else {
            throw reader.error(.invalidValue, field: "column count", at: countOffset, detail: "\(count)")
        }
        var columns: [Column] = []
        columns.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            let flags = try reader.readUInt8("column \(index) flags")
            columns.append(Column(
                isKey: flags & 1 == 1,
                name: try reader.readCString("column \(index) name"),
                typeOID: try reader.readUInt32("column \(index) type OID"),
                typeModifier: try reader.readInt32("column \(index) type modifier")))
        }
        return Relation(xid: xid, id: id, namespace: namespace, name: name, replicaIdentity: identity, columns: columns)
    }
}
