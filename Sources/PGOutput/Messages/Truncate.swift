/// `T`: one or more tables were truncated.
public struct Truncate: Hashable, Sendable {
    /// `TRUNCATE` options.
    public struct Options: OptionSet, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `CASCADE`.
        public static let cascade = Options(rawValue: 1)
        /// `RESTART IDENTITY`.
        public static let restartIdentity = Options(rawValue: 2)
    }

    /// The transaction id, present only inside a streamed transaction (protocol 2).
    public var xid: UInt32?
    /// The options given.
    public var options: Options
    /// The OIDs of the truncated tables.
    public var relationIDs: [UInt32]

    /// Creates the message.
    public init(xid: UInt32? = nil, options: Options, relationIDs: [UInt32]) {
        self.xid = xid
        self.options = options
        self.relationIDs = relationIDs
    }

    /// Decodes the body after the type byte.
    public static func decode(from reader: inout WireReader, inStream: Bool) throws(PGOutputError) -> Truncate {
        let xid = inStream ? try reader.readUInt32("xid") : nil
        let countOffset = reader.offset
        let count = try reader.readInt32("relation count")
        guard count >= 0, Int(count) <= reader.remaining / 4 else {
            throw reader.error(count < 0 ? .invalidValue : .truncated, field: "relation count", at: countOffset,
                               detail: "\(count) relations")
        }
        let options = Options(rawValue: try reader.readUInt8("options"))
        var ids: [UInt32] = []
        ids.reserveCapacity(Int(count))
        for index in 0..<Int(count) {
            ids.append(try reader.readUInt32("relation \(index) OID"))
        }
        return Truncate(xid: xid, options: options, relationIDs: ids)
    }
}
