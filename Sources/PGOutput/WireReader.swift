/// A cursor over the bytes of one protocol message, reading PostgreSQL's big-endian wire types.
///
/// Every read checks the remaining length first and throws ``PGOutputError`` naming the message and field, so a
/// decoder written with it cannot read out of bounds.
public struct WireReader: Sendable {
    /// The message being read, used in error messages.
    public let messageName: String
    @usableFromInline let bytes: [UInt8]
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    /// Creates a reader over `bytes`, starting at `offset`.
    public init(_ bytes: [UInt8], offset: Int = 0, messageName: String) {
        self.bytes = bytes
        self.offset = offset
        self.messageName = messageName
    }

    /// The number of bytes not read yet.
    public var remaining: Int { bytes.count - offset }

    /// Throws unless every byte has been read.
    public func expectEnd() throws(PGOutputError) {
        if remaining != 0 {
            throw error(.trailingBytes, field: "end of message", detail: "\(remaining) extra byte(s)")
        }
    }

    /// Builds an error at the current offset.
    public func error(_ code: PGOutputError.Code, field: String, at offset: Int? = nil, detail: String = "") -> PGOutputError {
        PGOutputError(code: code, message: messageName, field: field, offset: offset ?? self.offset, detail: detail)
    }

    private func require(_ count: Int, _ field: @autoclosure () -> String) throws(PGOutputError) {
        guard count >= 0, remaining >= count else {
            throw error(.truncated, field: field(), detail: "needs \(count) byte(s), \(remaining) left")
        }
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: @autoclosure () -> String) throws(PGOutputError) -> UInt8 {
        try require(1, field())
        defer { offset += 1 }
        return bytes[offset]
    }

    private mutating func readBigEndian<T: FixedWidthInteger>(_ type: T.Type, _ field: @autoclosure () -> String) throws(PGOutputError) -> T {
        let size = MemoryLayout<T>.size
        try require(size, field())
        var value: T = 0
        for index in offset..<(offset + size) {
            value = value << 8 | T(truncatingIfNeeded: bytes[index])
        }
        offset += size
        return value
    }

    /// Reads a big-endian `Int16`.
    public mutating func readInt16(_ field: @autoclosure () -> String) throws(PGOutputError) -> Int16 { try readBigEndian(Int16.self, field()) }
    /// Reads a big-endian `Int32`.
    public mutating func readInt32(_ field: @autoclosure () -> String) throws(PGOutputError) -> Int32 { try readBigEndian(Int32.self, field()) }
    /// Reads a big-endian `UInt32` (an OID or a transaction id).
    public mutating func readUInt32(_ field: @autoclosure () -> String) throws(PGOutputError) -> UInt32 { try readBigEndian(UInt32.self, field()) }
    /// Reads a big-endian `Int64`.
    public mutating func readInt64(_ field: @autoclosure () -> String) throws(PGOutputError) -> Int64 { try readBigEndian(Int64.self, field()) }
    /// Reads a big-endian `UInt64`.
    public mutating func readUInt64(_ field: @autoclosure () -> String) throws(PGOutputError) -> UInt64 { try readBigEndian(UInt64.self, field()) }

    /// Reads a WAL position.
    public mutating func readLSN(_ field: @autoclosure () -> String) throws(PGOutputError) -> LSN { LSN(rawValue: try readUInt64(field())) }

    /// Reads a protocol timestamp.
    public mutating func readTimestamp(_ field: @autoclosure () -> String) throws(PGOutputError) -> PostgresTimestamp {
        PostgresTimestamp(rawValue: try readInt64(field()))
    }

    /// Reads `count` raw bytes.
    public mutating func readBytes(_ count: Int, _ field: @autoclosure () -> String) throws(PGOutputError) -> [UInt8] {
        try require(count, field())
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Reads every byte left.
    public mutating func readRemainingBytes() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }

    /// Reads a NUL-terminated UTF-8 string.
    public mutating func readCString(_ field: @autoclosure () -> String) throws(PGOutputError) -> String {
        let start = offset
        guard let end = bytes[offset...].firstIndex(of: 0) else {
            throw error(.truncated, field: field(), detail: "no NUL terminator")
        }
        guard let text = String(validating: bytes[start..<end], as: UTF8.self) else {
            throw error(.invalidValue, field: field(), detail: "not valid UTF-8")
        }
        offset = end + 1
        return text
    }
}
