/// The byte that says which tuple follows in Insert, Update and Delete messages.
public enum TupleMarker: UInt8, Hashable, Sendable {
    /// `N`: the new row.
    case new = 78
    /// `K`: the old row's replica-identity key columns (others are null).
    case key = 75
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    case old = 79

    /// Reads a marker and checks that it is `expected`.
    static func expect(_ expected: TupleMarker, in reader: inout WireReader) throws(PGOutputError) {
        let offset = reader.offset
        let byte = try reader.readUInt8("tuple marker")
        guard byte == expected.rawValue else {
            throw reader.error(.invalidValue, field: "tuple marker", at: offset,
                               detail: "byte \(byte), expected '\(Character(Unicode.Scalar(expected.rawValue)))'")
        }
    }
}
