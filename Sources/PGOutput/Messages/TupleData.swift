/// The column values of one row in an Insert, Update or Delete message.
public struct TupleData: Hashable, Sendable {
    /// One column's value, in the form pgoutput sent it.
    public enum Value: Hashable, Sendable {
        /// SQL NULL (`n`).
        case null
        /// An unchanged TOASTed value that the server did not send (`u`); only in Update new tuples.
        case unchangedToast
        /// The value in the type's text output form (`t`), as UTF-8 bytes.
        case text([UInt8])
        /// The value in the type's binary send form (`b`), with the `binary 'true'` option.
        case binary([UInt8])

        /// The text form as a `String`, or `nil` for NULL, unchanged TOAST, binary, or invalid UTF-8.
        public var string: String? {
            guard case .text(let bytes) = self else { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
    }

    /// The tags that precede each column value.
    enum Kind: UInt8 {
        case null = 110 // 'n'
        case unchangedToast = 117 // 'u'
        case text = 116 // 't'
        case binary = 98 // 'b'
    }

    /// The values in column order (the order of the Relation message's columns).
    public var values: [Value]

    /// Creates tuple data.
    public init(values: [Value]) {
        self.values = values
    }

    /// Decodes `Int16 count` followed by that many tagged values.
    public static func decode(from reader: inout WireReader) throws(PGOutputError) -> TupleData {
        let countOffset = reader.offset
        let count = try reader.readInt16("tuple column count")
        guard count >= 0 else {
            throw reader.error(.invalidValue, field: "tuple column count", at: countOffset, detail: "\(count)")
        }
        var values: [Value] = []
        values.reserveCapacity(Int(count))
        for column in 0..<Int(count) {
            let tagOffset = reader.offset
            let tag = try reader.readUInt8("tuple column \(column) kind")
            switch Kind(rawValue: tag) {
            case .null: values.append(.null)
            case .unchangedToast: values.append(.unchangedToast)
            case .text, .binary:
                let lengthOffset = reader.offset
                let length = try reader.readInt32("tuple column \(column) length")
                guard length >= 0 else {
                    throw reader.error(.invalidValue, field: "tuple column \(column) length", at: lengthOffset, detail: "\(length)")
                }
                let bytes = try reader.readBytes(Int(length), "tuple column \(column) value")
                values.append(tag == Kind.text.rawValue ? .text(bytes) : .binary(bytes))
            case nil:
                throw reader.error(.invalidValue, field: "tuple column \(column) kind", at: tagOffset,
                                   detail: "byte \(tag), expected 'n', 'u', 't' or 'b'")
            }
        }
        return TupleData(values: values)
    }
}
